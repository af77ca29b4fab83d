variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "gwpipe"
}

variable "endpoint_url" {
  description = "gwpipe's Firehose endpoint, e.g. https://firehose.gwpipe.example.com/ (Firehose delivers over HTTPS on port 443 only)."
  type        = string

  validation {
    condition     = can(regex("^https://[^/:]+(:443)?(/.*)?$", var.endpoint_url))
    error_message = "endpoint_url must be an https:// URL on port 443 (Firehose delivers to nothing else)."
  }
}

variable "access_key" {
  description = "Access key Firehose sends in X-Amz-Firehose-Access-Key; one of gwpipe's sources.firehose.access_keys."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.access_key) >= 1 && length(var.access_key) <= 4096
    error_message = "access_key must be 1 to 4096 characters."
  }
}

variable "backup_bucket_arn" {
  description = "ARN of the S3 bucket for the stream's backup (modules/archive in the pipeline account, or a bucket of this account)."
  type        = string
}

variable "backup_prefix" {
  description = "Key prefix of the backup objects; default firehose/<account id>/<region>/."
  type        = string
  default     = null
}

variable "s3_backup_mode" {
  description = "FailedDataOnly (only what gwpipe did not accept within the retry duration) or AllData (every record: a replay archive)."
  type        = string
  default     = "FailedDataOnly"

  validation {
    condition     = contains(["FailedDataOnly", "AllData"], var.s3_backup_mode)
    error_message = "s3_backup_mode must be FailedDataOnly or AllData."
  }
}

variable "buffering_size" {
  description = "Buffering hint in MiB (1-64). 4 MiB keeps a request well inside gwpipe's limits and is Firehose's recommendation for Datadog."
  type        = number
  default     = 4

  validation {
    condition     = var.buffering_size >= 1 && var.buffering_size <= 64
    error_message = "buffering_size must be 1 to 64 MiB."
  }
}

variable "buffering_interval" {
  description = "Buffering hint in seconds (0-900)."
  type        = number
  default     = 60

  validation {
    condition     = var.buffering_interval >= 0 && var.buffering_interval <= 900
    error_message = "buffering_interval must be 0 to 900 seconds."
  }
}

variable "retry_duration" {
  description = "How long Firehose retries a request gwpipe did not answer 200 before backing it up to S3, in seconds (0-7200)."
  type        = number
  default     = 3600

  validation {
    condition     = var.retry_duration >= 0 && var.retry_duration <= 7200
    error_message = "retry_duration must be 0 to 7200 seconds."
  }
}

variable "log_group_names" {
  description = "Log groups to subscribe by name (e.g. API Gateway access-log groups)."
  type        = list(string)
  default     = []
}

variable "log_group_prefixes" {
  description = "Log-group name prefixes whose existing groups are subscribed (discovered at plan time: apply again after new APIs or stages appear)."
  type        = list(string)
  default     = ["API-Gateway-Execution-Logs_"]
}

variable "filter_pattern" {
  description = "Subscription filter pattern; empty sends every event."
  type        = string
  default     = ""
}

variable "firehose_log_retention_days" {
  description = "Retention of the stream's own error log group."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
