# The role gwpipe's enrich stage assumes in a source account to read the tags
# of API Gateway APIs and stages. Read-only: apigateway:GET and
# tag:GetResources, nothing else.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "GwpipePipeline"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.pipeline_role_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }
  }
}

resource "aws_iam_role" "reader" {
  name                 = var.role_name
  description          = "gwpipe: read API Gateway tags for log enrichment"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

data "aws_iam_policy_document" "read_tags" {
  statement {
    sid     = "ApiGatewayRead"
    effect  = "Allow"
    actions = ["apigateway:GET"]
    # REST APIs, HTTP/WebSocket APIs, their stages, and the tags API.
    resources = [
      "arn:${data.aws_partition.current.partition}:apigateway:*::/restapis",
      "arn:${data.aws_partition.current.partition}:apigateway:*::/restapis/*",
      "arn:${data.aws_partition.current.partition}:apigateway:*::/apis",
      "arn:${data.aws_partition.current.partition}:apigateway:*::/apis/*",
      "arn:${data.aws_partition.current.partition}:apigateway:*::/tags/*",
    ]
  }

  statement {
    sid       = "TaggingRead"
    effect    = "Allow"
    actions   = ["tag:GetResources"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "read_tags" {
  name   = "read-api-gateway-tags"
  role   = aws_iam_role.reader.id
  policy = data.aws_iam_policy_document.read_tags.json
}
