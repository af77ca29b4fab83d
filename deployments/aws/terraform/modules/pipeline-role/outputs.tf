output "role_arn" {
  description = "ARN of the pipeline role: the gwpipe ServiceAccount's eks.amazonaws.com/role-arn and every reader role's trusted principal."
  value       = aws_iam_role.pipeline.arn
}

output "role_name" {
  description = "Name of the pipeline role (PIPELINE_ROLE_NAME of kubernetes/base/params.yaml)."
  value       = aws_iam_role.pipeline.name
}
