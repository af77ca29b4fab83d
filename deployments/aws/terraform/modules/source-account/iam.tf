# Firehose -> S3 (backup) and its error log; CloudWatch Logs -> Firehose.

data "aws_iam_policy_document" "firehose_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }

    # Only Firehose acting for this account (confused-deputy protection).
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  # The archive bucket's policy admits roles named <name_prefix>-firehose-*.
  name               = "${var.name_prefix}-firehose-${local.region}"
  description        = "gwpipe: Firehose delivery stream ${local.stream_name} to S3 backup"
  assume_role_policy = data.aws_iam_policy_document.firehose_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid    = "BackupBucket"
    effect = "Allow"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetBucketLocation",
      "s3:GetObject",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:PutObject",
    ]
    resources = [
      var.backup_bucket_arn,
      "${var.backup_bucket_arn}/${local.backup_prefix}*",
    ]
  }

  statement {
    sid       = "ErrorLogs"
    effect    = "Allow"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "backup-and-logs"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

data "aws_iam_policy_document" "cloudwatch_logs_trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["logs.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "cloudwatch_logs" {
  name               = "${var.name_prefix}-cwl-to-firehose-${local.region}"
  description        = "gwpipe: CloudWatch Logs subscription filters to ${local.stream_name}"
  assume_role_policy = data.aws_iam_policy_document.cloudwatch_logs_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "cloudwatch_logs" {
  statement {
    effect    = "Allow"
    actions   = ["firehose:PutRecord", "firehose:PutRecordBatch"]
    resources = [aws_kinesis_firehose_delivery_stream.this.arn]
  }
}

resource "aws_iam_role_policy" "cloudwatch_logs" {
  name   = "put-records"
  role   = aws_iam_role.cloudwatch_logs.id
  policy = data.aws_iam_policy_document.cloudwatch_logs.json
}
