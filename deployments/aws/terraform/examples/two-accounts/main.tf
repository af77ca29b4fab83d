# gwpipe across two source accounts (prod, staging) and the pipeline account.
#
#   prod / staging:  API Gateway log groups -> subscription filters -> Firehose
#                    -> HTTPS 443 -> gwpipe; failed data -> archive bucket.
#                    gwpipe-reader role (apigateway:GET, tag:GetResources).
#   pipeline:        archive bucket -> S3 notifications -> SQS (+ DLQ) -> gwpipe;
#                    gwpipe-pipeline role (IRSA) assuming the reader roles.

data "aws_caller_identity" "prod" {
  provider = aws.prod
}

data "aws_caller_identity" "staging" {
  provider = aws.staging
}

locals {
  source_account_ids = [
    data.aws_caller_identity.prod.account_id,
    data.aws_caller_identity.staging.account_id,
  ]
}

module "archive" {
  source    = "../../modules/archive"
  providers = { aws = aws.pipeline }

  bucket_name        = var.archive_bucket_name
  writer_account_ids = local.source_account_ids
  tags               = var.tags
}

# Dead letters, replay checkpoints and the CloudWatch poller's state, out of
# the workers' pods (gwpipe's dlq.url, --checkpoint s3://…, state_url).
module "state" {
  source    = "../../modules/state"
  providers = { aws = aws.pipeline }

  bucket_name = var.state_bucket_name
  tags        = var.tags
}

module "pipeline_role" {
  source    = "../../modules/pipeline-role"
  providers = { aws = aws.pipeline }

  oidc_provider_arn      = var.eks_oidc_provider_arn
  oidc_issuer            = var.eks_oidc_issuer
  source_account_ids     = local.source_account_ids
  source_queue_arns      = [module.archive.notification_queue_arn]
  archive_bucket_arns    = [module.archive.bucket_arn]
  state_bucket_arn       = module.state.bucket_arn
  state_prefixes         = module.state.prefixes
  keda_operator_role_arn = var.keda_operator_role_arn
  tags                   = var.tags
}

module "prod_reader" {
  source    = "../../modules/reader-role"
  providers = { aws = aws.prod }

  pipeline_role_arn = module.pipeline_role.role_arn
  external_id       = var.external_id
  tags              = var.tags
}

module "staging_reader" {
  source    = "../../modules/reader-role"
  providers = { aws = aws.staging }

  pipeline_role_arn = module.pipeline_role.role_arn
  external_id       = var.external_id
  tags              = var.tags
}

module "prod_source" {
  source    = "../../modules/source-account"
  providers = { aws = aws.prod }

  endpoint_url      = var.endpoint_url
  access_key        = var.firehose_access_key
  backup_bucket_arn = module.archive.bucket_arn
  s3_backup_mode    = var.s3_backup_mode
  tags              = var.tags
}

module "staging_source" {
  source    = "../../modules/source-account"
  providers = { aws = aws.staging }

  endpoint_url      = var.endpoint_url
  access_key        = var.firehose_access_key
  backup_bucket_arn = module.archive.bucket_arn
  s3_backup_mode    = var.s3_backup_mode
  # Staging also ships an access-log group of its own naming.
  log_group_names = ["/aws/apigateway/staging-access"]
  tags            = var.tags
}
