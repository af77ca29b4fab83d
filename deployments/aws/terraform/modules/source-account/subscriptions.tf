# Subscription filters on the API Gateway log groups: execution logs
# (API-Gateway-Execution-Logs_<api id>/<stage>, discovered by prefix) and
# access-log groups (named, or discovered by prefix). A log group accepts at
# most two subscription filters.

data "aws_cloudwatch_log_groups" "by_prefix" {
  for_each              = toset(var.log_group_prefixes)
  log_group_name_prefix = each.value
}

locals {
  discovered_log_groups = flatten([for d in data.aws_cloudwatch_log_groups.by_prefix : tolist(d.log_group_names)])
  log_groups            = toset(concat(var.log_group_names, local.discovered_log_groups))
}

resource "aws_cloudwatch_log_subscription_filter" "this" {
  for_each = local.log_groups

  name            = "${var.name_prefix}-firehose"
  log_group_name  = each.value
  filter_pattern  = var.filter_pattern
  destination_arn = aws_kinesis_firehose_delivery_stream.this.arn
  role_arn        = aws_iam_role.cloudwatch_logs.arn

  depends_on = [aws_iam_role_policy.cloudwatch_logs]
}
