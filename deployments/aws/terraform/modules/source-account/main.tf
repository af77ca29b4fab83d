# One source account (and region): its API Gateway log groups are subscribed
# to a Firehose delivery stream whose HTTP endpoint destination is gwpipe.
#
#   log groups --subscription filter--> Firehose --HTTPS 443--> gwpipe ingest
#                                          \--> S3 backup (failed data, or all)

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  stream_name   = "${var.name_prefix}-apigateway-logs"
  backup_prefix = coalesce(var.backup_prefix, "firehose/${local.account_id}/${local.region}/")
}

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/aws/kinesisfirehose/${local.stream_name}"
  retention_in_days = var.firehose_log_retention_days
  tags              = var.tags
}

resource "aws_cloudwatch_log_stream" "destination" {
  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_cloudwatch_log_stream" "backup" {
  name           = "BackupDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_kinesis_firehose_delivery_stream" "this" {
  name        = local.stream_name
  destination = "http_endpoint"
  tags        = var.tags

  server_side_encryption {
    enabled  = true
    key_type = "AWS_OWNED_CMK"
  }

  http_endpoint_configuration {
    name       = "gwpipe"
    url        = var.endpoint_url
    access_key = var.access_key
    role_arn   = aws_iam_role.firehose.arn

    # 4 MiB / 60 s: small requests, acknowledged well within Firehose's
    # 3-minute response timeout (gwpipe answers within ack_timeout, 120 s).
    buffering_size     = var.buffering_size
    buffering_interval = var.buffering_interval
    # Retries after the first failed attempt (a 503 while gwpipe drains or
    # Datadog refuses the key, a 429 under back-pressure); then S3 backup.
    retry_duration = var.retry_duration
    s3_backup_mode = var.s3_backup_mode

    request_configuration {
      content_encoding = "GZIP"

      common_attributes {
        name  = "aws_account"
        value = local.account_id
      }
    }

    s3_configuration {
      role_arn           = aws_iam_role.firehose.arn
      bucket_arn         = var.backup_bucket_arn
      prefix             = local.backup_prefix
      buffering_size     = 16
      buffering_interval = 300
      compression_format = "GZIP"

      cloudwatch_logging_options {
        enabled         = true
        log_group_name  = aws_cloudwatch_log_group.firehose.name
        log_stream_name = aws_cloudwatch_log_stream.backup.name
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.destination.name
    }
  }

  depends_on = [aws_iam_role_policy.firehose]
}
