output "pipeline_role_arn" {
  description = "eks.amazonaws.com/role-arn of the gwpipe ServiceAccount."
  value       = module.pipeline_role.role_arn
}

output "sqs_source_queue_url" {
  description = "gwpipe sources.sqs.queue_urls."
  value       = module.archive.notification_queue_url
}

output "archive_bucket" {
  description = "gwpipe replay --bucket."
  value       = module.archive.bucket_name
}

output "dlq_url" {
  description = "gwpipe dlq.url (GWPIPE_DLQ_URL), and gwpipe replay --dlq."
  value       = module.state.dlq_url
}

output "poller_state_url" {
  description = "gwpipe metrics.poller.state_url (GWPIPE_METRICS_POLLER_STATE_URL)."
  value       = module.state.poller_state_url
}

output "checkpoint_url_prefix" {
  description = "Start of gwpipe replay --checkpoint URLs (append <name>.json)."
  value       = module.state.checkpoint_url_prefix
}

output "reader_role_arns" {
  description = "Reader roles gwpipe assumes (enrich.role_template arn:aws:iam::{account}:role/gwpipe-reader)."
  value       = [module.prod_reader.role_arn, module.staging_reader.role_arn]
}

output "delivery_streams" {
  description = "Firehose delivery streams per source account."
  value = {
    prod    = module.prod_source.delivery_stream_arn
    staging = module.staging_source.delivery_stream_arn
  }
}
