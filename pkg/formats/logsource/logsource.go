// Package logsource names the Datadog source (ddsource) and service of a
// CloudWatch log that is not API Gateway's, from its log group and log
// stream, the way the Datadog Forwarder (DataDog/datadog-serverless-functions,
// aws/logs_monitoring: steps/common.py find_cloudwatch_source,
// steps/enums.py AwsCwEventSourcePrefix, awslogs_handler.py set_source) names
// them, so that Datadog's integration pipelines and facets recognise them
// as they would behind the Forwarder:
//
//   - source: the first known log-group prefix (lower-cased): /aws/lambda →
//     lambda, /aws/rds → rds (mysql, mariadb or postgresql when the group
//     names the engine), /aws/eks → eks, /aws/codebuild → codebuild,
//     /aws/appsync → appsync, /aws/docdb → docdb, /aws/fsx/windows →
//     aws.fsx, /aws/kinesis → kinesis, /aws/vendedlogs/states →
//     stepfunction, sns/ → sns, dms-tasks → dms, tgw-attach →
//     transitgateway, aws/bedrock/modelinvocations → bedrock; else a
//     service named anywhere in the group (network-firewall, route53, vpc,
//     fargate, cloudtrail, msk, elasticsearch, transitgateway,
//     verified-access, bedrock, cloudfront); the log stream overrides
//     (…_CloudTrail_… → cloudtrail, tgw-attach → transitgateway, Lambda's
//     "YYYY/MM/DD/<function>[version]<id>" streams in a custom group →
//     lambda, "states/…" → stepfunction; EKS control-plane streams →
//     kubernetes.audit, kube-apiserver, kube_scheduler,
//     kube-controller-manager, aws-iam-authenticator);
//   - service: the Lambda function's name (lower-cased) for Lambda logs,
//     else the source: the Forwarder's default when no "service" tag says
//     otherwise (gwpipe reads no log-group tags).
//
// When nothing is recognised, Name reports known false and the caller uses
// its own default source ("cloudwatch", parse.other_source), which is then
// the service too. API Gateway's own groups never reach here: package apigw
// routes them, and their service is apigateway or the stage's service tag.
package logsource

import (
	"strings"
)

// prefixes are the Forwarder's AwsCwEventSourcePrefix, in its order, minus
// API Gateway's (routed before this package is asked).
var prefixes = []struct{ prefix, source string }{
	{"/aws/appsync", "appsync"},
	{"aws/bedrock/modelinvocations", "bedrock"},
	{"/aws/codebuild", "codebuild"},
	{"dms-tasks", "dms"},
	{"/aws/docdb", "docdb"},
	{"/aws/eks", "eks"},
	{"/aws/fsx/windows", "aws.fsx"},
	{"/aws/kinesis", "kinesis"},
	{"/aws/lambda", "lambda"},
	{"/aws/rds", "rds"},
	{"sns/", "sns"},
	{"/aws/vendedlogs/states", "stepfunction"},
	{"tgw-attach", "transitgateway"},
}

// contained are the sources the Forwarder finds anywhere in a group name.
var contained = []string{"network-firewall", "route53", "vpc", "fargate", "cloudtrail", "msk",
	"elasticsearch", "transitgateway", "verified-access", "bedrock", "cloudfront"}

var eksStreams = []struct{ prefix, source string }{
	{"kube-apiserver-audit-", "kubernetes.audit"},
	{"kube-scheduler-", "kube_scheduler"},
	{"kube-apiserver-", "kube-apiserver"},
	{"kube-controller-manager-", "kube-controller-manager"},
	{"authenticator-", "aws-iam-authenticator"},
}

// Group is what a log group's name alone says; the log stream may refine
// it (Name). Callers cache it per log group.
type Group struct {
	source   string // "" when the group names no source
	function string // Lambda's function, for /aws/lambda/<function>
}

// OfGroup reads a log group's name.
func OfGroup(logGroup string) Group {
	g := Group{source: fromGroup(strings.ToLower(logGroup))}
	if g.source == "lambda" {
		if _, after, ok := strings.Cut(logGroup, "/lambda/"); ok {
			g.function = strings.ToLower(after)
		}
	}
	return g
}

// Name returns the ddsource and service of a log of logGroup and logStream;
// known is false when neither names a source (the caller's default
// applies, as source and as service).
func Name(logGroup, logStream string) (source, service string, known bool) {
	return OfGroup(logGroup).Name(logStream)
}

// Name refines the group's source with a log stream of it.
func (g Group) Name(logStream string) (source, service string, known bool) {
	source = g.source
	switch {
	case strings.Contains(logStream, "_CloudTrail_"):
		source = "cloudtrail"
	case strings.Contains(logStream, "tgw-attach"):
		source = "transitgateway"
	case strings.Contains(logStream, "aws/bedrock/modelinvocations"):
		source = "bedrock"
	}
	fn := ""
	if source == "lambda" {
		fn = g.function
	}
	if f, ok := lambdaFunction(logStream); ok {
		source, fn = "lambda", strings.ToLower(f)
	} else if strings.HasPrefix(logStream, "states/") {
		source = "stepfunction"
	}
	switch source {
	case "":
		return "", "", false
	case "lambda":
		if fn != "" {
			return source, fn, true
		}
	case "eks":
		for _, s := range eksStreams {
			if strings.HasPrefix(logStream, s.prefix) {
				source = s.source
				break
			}
		}
	}
	return source, source, true
}

func fromGroup(g string) string {
	for _, p := range prefixes {
		if strings.HasPrefix(g, p.prefix) {
			if p.source == "rds" {
				for _, engine := range []string{"mariadb", "mysql", "postgresql"} {
					if strings.Contains(g, engine) {
						return engine
					}
				}
			}
			return p.source
		}
	}
	for _, s := range contained {
		if strings.Contains(g, s) {
			return s
		}
	}
	return ""
}

// lambdaFunction recognises the log stream Lambda writes to a custom log
// group, "YYYY/MM/DD/<function>[<version>]<32 hex>", and returns the
// function's name.
func lambdaFunction(stream string) (string, bool) {
	// 2023/11/06/  = 11 bytes
	if len(stream) < 11+1+2+32 || stream[0] < '0' || stream[0] > '9' {
		return "", false
	}
	for i, c := range []byte(stream[:11]) {
		switch i {
		case 4, 7, 10:
			if c != '/' {
				return "", false
			}
		default:
			if c < '0' || c > '9' {
				return "", false
			}
		}
	}
	if stream[5] > '1' || stream[8] > '3' {
		return "", false
	}
	rest := stream[11:]
	open := strings.IndexByte(rest, '[')
	if open < 1 || open > 75 {
		return "", false
	}
	fn := rest[:open]
	for _, c := range []byte(fn) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "", false
		}
	}
	rest = rest[open+1:]
	end := strings.IndexByte(rest, ']')
	if end < 1 {
		return "", false
	}
	if v := rest[:end]; v != "$LATEST" {
		if len(v) > 129 {
			return "", false
		}
		for _, c := range []byte(v) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return "", false
			}
		}
	}
	id := rest[end+1:]
	if len(id) != 32 {
		return "", false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return fn, true
}
