output "delivery_stream_arn" {
  description = "ARN of the Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.this.arn
}

output "delivery_stream_name" {
  description = "Name of the Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.this.name
}

output "firehose_role_arn" {
  description = "ARN of the role Firehose uses (S3 backup, error logs)."
  value       = aws_iam_role.firehose.arn
}

output "cloudwatch_logs_role_arn" {
  description = "ARN of the role CloudWatch Logs uses to put records into the stream."
  value       = aws_iam_role.cloudwatch_logs.arn
}

output "backup_prefix" {
  description = "Key prefix of this stream's objects in the backup bucket."
  value       = local.backup_prefix
}

output "subscribed_log_groups" {
  description = "Log groups subscribed to the stream."
  value       = sort(tolist(local.log_groups))
}
