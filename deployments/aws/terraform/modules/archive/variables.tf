variable "bucket_name" {
  description = "Name of the archive bucket (Firehose backups of every source account)."
  type        = string
}

variable "writer_account_ids" {
  description = "Source accounts whose Firehose roles (<writer_role_prefix>*) may write to the bucket."
  type        = list(string)

  validation {
    condition     = alltrue([for a in var.writer_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "writer_account_ids must be 12-digit account ids."
  }
}

variable "writer_role_prefix" {
  description = "Name prefix of the Firehose roles allowed to write (modules/source-account names them <name_prefix>-firehose-<region>)."
  type        = string
  default     = "gwpipe-firehose-"
}

variable "retention_days" {
  description = "Days an archived object is kept (the replay window)."
  type        = number
  default     = 30
}

variable "notification_queue_name" {
  description = "Name of the SQS queue receiving the bucket's object-created notifications (gwpipe sources.sqs.queue_urls)."
  type        = string
  default     = "gwpipe-archive-notifications"
}

variable "notification_filter_prefix" {
  description = "Only objects under this prefix are notified. Leave empty with FailedDataOnly backups (every object is data gwpipe has not delivered); with AllData backups, do not point gwpipe's SQS source at everything (it would deliver it twice): set a prefix, or use `gwpipe replay` instead."
  type        = string
  default     = ""
}

variable "max_receive_count" {
  description = "Receives of a notification before it moves to the dead-letter queue (redrive policy)."
  type        = number
  default     = 5
}

variable "visibility_timeout_seconds" {
  description = "Default visibility timeout of the notification queue (gwpipe asks for sources.sqs.visibility_timeout and renews it while working)."
  type        = number
  default     = 120
}

variable "message_retention_seconds" {
  description = "Retention of the notification queue."
  type        = number
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter queue (the maximum, 14 days, leaves time to redrive)."
  type        = number
  default     = 1209600
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
