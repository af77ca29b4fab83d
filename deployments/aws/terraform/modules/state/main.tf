# gwpipe's fleet state, in the pipeline account: what must outlive the
# worker that wrote it.
#
#   dlq/       dead letters (dlq.url s3://<bucket>/dlq/): gzip JSON-lines
#              objects named by host, time and sequence; beside them the
#              ledger of the replays (<key>.replayed), their lease
#              (replay.lease) and the archives of letters that failed again
#              (replay-<time>-<host>-<pid>/).
#   replays/   replay checkpoints (gwpipe replay --checkpoint
#              s3://<bucket>/replays/<name>.json) and their leases
#              (<name>.json.lease).
#   cwpoller/  the CloudWatch poller's state and leases
#              (metrics.poller.state_url s3://<bucket>/cwpoller/): one
#              <account>-<region>.json and one <account>-<region>.lease per
#              target.
#
# Every write is a conditional PutObject (If-None-Match / If-Match), which
# S3 decides atomically: no DynamoDB table, no lock service.

resource "aws_s3_bucket" "state" {
  bucket = var.bucket_name
  tags   = var.tags
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    # SSE-S3: the workers need no KMS grant (with SSE-KMS, grant the
    # pipeline role kms:GenerateDataKey and kms:Decrypt on the key).
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Versioning stays off: a lease or a checkpoint is rewritten every few
# seconds, and old versions would only cost.
resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    id     = "expire-dead-letters"
    status = "Enabled"
    filter {
      prefix = var.dlq_prefix
    }
    expiration {
      days = var.dlq_retention_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "state" {
  bucket = aws_s3_bucket.state.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.state]
}
