# The pipeline's own role, in the account that runs gwpipe (EKS, IRSA): what
# every gwpipe worker may do in AWS. Tags of other accounts are read through
# their gwpipe-reader roles, never directly.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "GwpipeServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = var.keda_operator_role_arn == null ? [] : [var.keda_operator_role_arn]
    content {
      sid     = "KedaOperator"
      effect  = "Allow"
      actions = ["sts:AssumeRole", "sts:TagSession"]

      principals {
        type        = "AWS"
        identifiers = [statement.value]
      }
    }
  }
}

resource "aws_iam_role" "pipeline" {
  name               = var.role_name
  description        = "gwpipe: the pipeline's workers (IRSA ${var.namespace}/${var.service_account})"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "pipeline" {
  statement {
    sid       = "AssumeReaderRoles"
    effect    = "Allow"
    actions   = ["sts:AssumeRole"]
    resources = [for a in var.source_account_ids : "arn:${local.partition}:iam::${a}:role/${var.reader_role_name}"]
  }

  dynamic "statement" {
    for_each = length(var.source_queue_arns) > 0 ? [var.source_queue_arns] : []
    content {
      sid    = "SqsSource"
      effect = "Allow"
      actions = [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
      ]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = length(var.archive_bucket_arns) > 0 ? [var.archive_bucket_arns] : []
    content {
      sid       = "ArchiveRead"
      effect    = "Allow"
      actions   = ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]
      resources = concat(statement.value, [for b in statement.value : "${b}/*"])
    }
  }

  # The fleet's state (modules/state): dead letters, replay checkpoints
  # and ledgers, the CloudWatch poller's state, and the leases beside
  # them. Conditional writes (If-None-Match, If-Match) need s3:PutObject
  # alone; s3:ListBucket makes a missing key answer 404 rather than 403,
  # which is how a first lease, checkpoint or marker is told from a
  # refusal, and lists the archive for gwpipe replay.
  dynamic "statement" {
    for_each = var.state_bucket_arn == null ? [] : [var.state_bucket_arn]
    content {
      sid       = "StateObjects"
      effect    = "Allow"
      actions   = ["s3:GetObject", "s3:PutObject"]
      resources = [for p in var.state_prefixes : "${statement.value}/${p}*"]
    }
  }

  dynamic "statement" {
    for_each = var.state_bucket_arn == null ? [] : [var.state_bucket_arn]
    content {
      sid       = "StateList"
      effect    = "Allow"
      actions   = ["s3:ListBucket"]
      resources = [statement.value]

      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [for p in var.state_prefixes : "${p}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.transport == "sqs" ? ["sns"] : []
    content {
      sid    = "TransportTopics"
      effect = "Allow"
      actions = [
        "sns:CreateTopic",
        "sns:GetTopicAttributes",
        "sns:ListSubscriptionsByTopic",
        "sns:Publish",
        "sns:SetSubscriptionAttributes",
        "sns:Subscribe",
        "sns:TagResource",
      ]
      resources = ["arn:${local.partition}:sns:${local.region}:${local.account_id}:${var.transport_topic_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.transport == "sqs" ? ["sqs"] : []
    content {
      sid    = "TransportQueues"
      effect = "Allow"
      actions = [
        "sqs:ChangeMessageVisibility",
        "sqs:CreateQueue",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
        "sqs:SetQueueAttributes",
        "sqs:TagQueue",
      ]
      resources = ["arn:${local.partition}:sqs:${local.region}:${local.account_id}:${var.transport_topic_prefix}*"]
    }
  }

  dynamic "statement" {
    for_each = var.transport == "sqs" && var.claim_check_bucket_arn != null ? [var.claim_check_bucket_arn] : []
    content {
      sid       = "TransportClaimCheck"
      effect    = "Allow"
      actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
      resources = ["${statement.value}/*"]
    }
  }
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "gwpipe"
  role   = aws_iam_role.pipeline.id
  policy = data.aws_iam_policy_document.pipeline.json
}
