output "bucket_name" {
  description = "Name of the state bucket."
  value       = aws_s3_bucket.state.id
}

output "bucket_arn" {
  description = "ARN of the state bucket (state_bucket_arn of modules/pipeline-role)."
  value       = aws_s3_bucket.state.arn
}

output "prefixes" {
  description = "The prefixes gwpipe writes under (state_prefixes of modules/pipeline-role)."
  value       = [var.dlq_prefix, var.checkpoint_prefix, var.poller_prefix]
}

output "dlq_url" {
  description = "gwpipe dlq.url (GWPIPE_DLQ_URL), and gwpipe replay --dlq."
  value       = "s3://${aws_s3_bucket.state.id}/${var.dlq_prefix}"
}

output "checkpoint_url_prefix" {
  description = "Start of gwpipe replay --checkpoint URLs: append <name>.json."
  value       = "s3://${aws_s3_bucket.state.id}/${var.checkpoint_prefix}"
}

output "poller_state_url" {
  description = "gwpipe metrics.poller.state_url (GWPIPE_METRICS_POLLER_STATE_URL)."
  value       = "s3://${aws_s3_bucket.state.id}/${var.poller_prefix}"
}
