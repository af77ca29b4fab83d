variable "region" {
  description = "Region of the pipeline and of the source accounts' API Gateway log groups."
  type        = string
  default     = "us-east-1"
}

variable "pipeline_profile" {
  description = "AWS CLI profile of the pipeline account (null: the default credential chain)."
  type        = string
  default     = null
}

variable "prod_profile" {
  description = "AWS CLI profile of the first source account."
  type        = string
  default     = null
}

variable "staging_profile" {
  description = "AWS CLI profile of the second source account."
  type        = string
  default     = null
}

variable "endpoint_url" {
  description = "gwpipe's public Firehose endpoint (the Ingress host), e.g. https://firehose.gwpipe.example.com/."
  type        = string
}

variable "firehose_access_key" {
  description = "Access key the delivery streams send; the firehose-access-keys entry of the gwpipe-secrets Secret."
  type        = string
  sensitive   = true
}

variable "external_id" {
  description = "sts:ExternalId of the reader roles; the external-id entry of the gwpipe-secrets Secret."
  type        = string
}

variable "archive_bucket_name" {
  description = "Name of the archive bucket in the pipeline account."
  type        = string
}

variable "s3_backup_mode" {
  description = "FailedDataOnly, or AllData to keep a replay archive of everything."
  type        = string
  default     = "FailedDataOnly"
}

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (pipeline account)."
  type        = string
}

variable "eks_oidc_issuer" {
  description = "OIDC issuer of the EKS cluster, without https://."
  type        = string
}

variable "keda_operator_role_arn" {
  description = "KEDA operator's role, when the SQS transport's ScaledObjects read queue lengths as the workload (null otherwise)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = { "app" = "gwpipe" }
}

variable "state_bucket_name" {
  description = "Name of the bucket of gwpipe's fleet state (dead letters, replay checkpoints, the CloudWatch poller's state)."
  type        = string
}
