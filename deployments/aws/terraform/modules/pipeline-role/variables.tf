variable "role_name" {
  description = "Name of the pipeline role (the gwpipe ServiceAccount's eks.amazonaws.com/role-arn)."
  type        = string
  default     = "gwpipe-pipeline"
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider."
  type        = string
}

variable "oidc_issuer" {
  description = "The cluster's OIDC issuer without https:// (e.g. oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE)."
  type        = string

  validation {
    condition     = !startswith(var.oidc_issuer, "https://")
    error_message = "oidc_issuer must not start with https://."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the gwpipe ServiceAccount."
  type        = string
  default     = "gwpipe"
}

variable "service_account" {
  description = "Name of the gwpipe ServiceAccount."
  type        = string
  default     = "gwpipe"
}

variable "reader_role_name" {
  description = "Name of the reader role in every source account (modules/reader-role)."
  type        = string
  default     = "gwpipe-reader"
}

variable "source_account_ids" {
  description = "Accounts whose API Gateway tags gwpipe reads (it may assume <reader_role_name> there)."
  type        = list(string)

  validation {
    condition     = alltrue([for a in var.source_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "source_account_ids must be 12-digit account ids."
  }
}

variable "source_queue_arns" {
  description = "SQS queues of gwpipe's SQS source (sources.sqs.queue_urls), e.g. the archive's notification queue."
  type        = list(string)
  default     = []
}

variable "archive_bucket_arns" {
  description = "Buckets gwpipe reads objects from (SQS source, gwpipe replay)."
  type        = list(string)
  default     = []
}

variable "state_bucket_arn" {
  description = "The fleet's state bucket (modules/state): dead letters (dlq.url), replay checkpoints in S3, the CloudWatch poller's state (metrics.poller.state_url); null grants nothing."
  type        = string
  default     = null
}

variable "state_prefixes" {
  description = "Prefixes of the state bucket gwpipe reads and writes (outputs.prefixes of modules/state)."
  type        = list(string)
  default     = ["dlq/", "replays/", "cwpoller/"]

  validation {
    condition     = alltrue([for p in var.state_prefixes : p != "" && !startswith(p, "/")])
    error_message = "state_prefixes must be non-empty prefixes not starting with /: an empty one would grant the whole bucket."
  }
}

variable "transport" {
  description = "gwpipe's transport.kind: sqs grants the SNS topics and SQS queues of the fleet (<transport_topic_prefix>*); nats and memory need no AWS permission."
  type        = string
  default     = "nats"

  validation {
    condition     = contains(["memory", "nats", "sqs"], var.transport)
    error_message = "transport must be memory, nats or sqs."
  }
}

variable "transport_topic_prefix" {
  description = "transport.sqs.topic_prefix: names of the fleet's SNS topics and SQS queues."
  type        = string
  default     = "gwpipe-"
}

variable "claim_check_bucket_arn" {
  description = "transport.sqs.claim_check_bucket (batches over the SNS/SQS message limit), or null."
  type        = string
  default     = null
}

variable "keda_operator_role_arn" {
  description = "Role of the KEDA operator, allowed to assume this role to read queue lengths (TriggerAuthentication podIdentity aws, identityOwner workload), or null."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
