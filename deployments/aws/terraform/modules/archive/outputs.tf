output "bucket_name" {
  description = "Name of the archive bucket (gwpipe replay --bucket)."
  value       = aws_s3_bucket.archive.id
}

output "bucket_arn" {
  description = "ARN of the archive bucket (backup_bucket_arn of modules/source-account)."
  value       = aws_s3_bucket.archive.arn
}

output "notification_queue_url" {
  description = "URL of the notification queue: gwpipe's sources.sqs.queue_urls."
  value       = aws_sqs_queue.notifications.id
}

output "notification_queue_arn" {
  description = "ARN of the notification queue (source_queue_arns of modules/pipeline-role)."
  value       = aws_sqs_queue.notifications.arn
}

output "notification_dlq_url" {
  description = "URL of the notification queue's dead-letter queue."
  value       = aws_sqs_queue.notifications_dlq.id
}
