variable "role_name" {
  description = "Name of the reader role; gwpipe assumes arn:aws:iam::<account>:role/<role_name> (enrich.role_template)."
  type        = string
  default     = "gwpipe-reader"
}

variable "pipeline_role_arn" {
  description = "ARN of the pipeline's own role (modules/pipeline-role), the only principal allowed to assume this role."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.pipeline_role_arn))
    error_message = "pipeline_role_arn must be an IAM role ARN."
  }
}

variable "external_id" {
  description = "sts:ExternalId the pipeline must present (enrich.external_id)."
  type        = string

  validation {
    condition     = length(var.external_id) >= 2 && length(var.external_id) <= 1224
    error_message = "external_id must be 2 to 1224 characters."
  }
}

variable "max_session_duration" {
  description = "Maximum session duration of the role, in seconds."
  type        = number
  default     = 3600
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
