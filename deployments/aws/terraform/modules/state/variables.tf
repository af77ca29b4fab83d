variable "bucket_name" {
  description = "Name of the state bucket (dead letters, replay checkpoints, the CloudWatch poller's state)."
  type        = string
}

variable "dlq_prefix" {
  description = "Prefix of the dead-letter archive (dlq.url s3://<bucket>/<dlq_prefix>)."
  type        = string
  default     = "dlq/"

  validation {
    condition     = endswith(var.dlq_prefix, "/") && !startswith(var.dlq_prefix, "/")
    error_message = "dlq_prefix must be a folder: end with / and not start with one."
  }
}

variable "checkpoint_prefix" {
  description = "Prefix of replay checkpoints (gwpipe replay --checkpoint s3://<bucket>/<checkpoint_prefix><name>.json)."
  type        = string
  default     = "replays/"
}

variable "poller_prefix" {
  description = "Prefix of the CloudWatch poller's state and leases (metrics.poller.state_url s3://<bucket>/<poller_prefix>)."
  type        = string
  default     = "cwpoller/"
}

variable "dlq_retention_days" {
  description = "Days a dead-letter object (and its ledger marker) is kept: the time left to fix and replay it."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
