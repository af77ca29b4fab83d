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
