package logsource

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The cases mirror the Datadog Forwarder's (aws/logs_monitoring tests and
// steps/common.py).
func TestName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		group, stream   string
		source, service string
		known           bool
	}{
		{"/aws/lambda/helloDatadog", "2023/11/06/[$LATEST]13e304cba4b9446eb7ef082a00038990", "lambda", "hellodatadog", true},
		{"/aws/lambda/My-Func", "", "lambda", "my-func", true},
		{"/my/shared/group", "2023/11/06/test-customized-log-group1[$LATEST]13e304cba4b9446eb7ef082a00038990", "lambda", "test-customized-log-group1", true},
		{"/my/shared/group", "2023/11/06/fn[42]13e304cba4b9446eb7ef082a00038990", "lambda", "fn", true},
		{"/aws/vendedlogs/states/my-machine", "states/my-machine/2023-11-06/abc", "stepfunction", "stepfunction", true},
		{"/custom/sfn", "states/x", "stepfunction", "stepfunction", true},
		{"/aws/rds/instance/db-1/postgresql", "db-1.0", "postgresql", "postgresql", true},
		{"/aws/rds/cluster/aurora-1/error", "s", "rds", "rds", true},
		{"/aws/rds/instance/my-mysql-db/error", "s", "mysql", "mysql", true},
		{"/aws/eks/prod/cluster", "kube-apiserver-audit-123", "kubernetes.audit", "kubernetes.audit", true},
		{"/aws/eks/prod/cluster", "kube-apiserver-123", "kube-apiserver", "kube-apiserver", true},
		{"/aws/eks/prod/cluster", "authenticator-1", "aws-iam-authenticator", "aws-iam-authenticator", true},
		{"/aws/eks/prod/cluster", "other", "eks", "eks", true},
		{"/aws/codebuild/proj", "", "codebuild", "codebuild", true},
		{"/aws/appsync/apis/xyz", "", "appsync", "appsync", true},
		{"/aws/kinesisfirehose/dev", "", "kinesis", "kinesis", true},
		{"/aws/fsx/windows/fs-1", "", "aws.fsx", "aws.fsx", true},
		{"/aws/docdb/c/profile", "", "docdb", "docdb", true},
		{"sns/us-east-1/123456789012/Topic", "", "sns", "sns", true},
		{"dms-tasks-test-instance", "", "dms", "dms", true},
		{"my-vpc-flow-logs", "eni-1-all", "vpc", "vpc", true},
		{"/aws/route53/example.com", "", "route53", "route53", true},
		{"aws-cloudtrail-logs-1", "", "cloudtrail", "cloudtrail", true},
		{"anything", "123456789012_CloudTrail_us-east-1", "cloudtrail", "cloudtrail", true},
		{"anything", "tgw-attach-1", "transitgateway", "transitgateway", true},
		{"aws/bedrock/modelinvocations", "", "bedrock", "bedrock", true},
		{"/ecs/orders", "ecs/orders/abc", "", "", false},
		{"/my/app", "", "", "", false},
		{"", "", "", "", false},
		// Almost Lambda streams are not.
		{"/my/app", "2023/11/06/fn[$LATEST]13e304cba4b9446eb7ef082a0003899", "", "", false},
		{"/my/app", "2023/23/06/fn[$LATEST]13e304cba4b9446eb7ef082a00038990", "", "", false},
		{"/my/app", "2023/11/06/f n[$LATEST]13e304cba4b9446eb7ef082a00038990", "", "", false},
	}
	for _, c := range cases {
		source, service, known := Name(c.group, c.stream)
		assert.Equal(t, c.known, known, "%s %s", c.group, c.stream)
		assert.Equal(t, c.source, source, "%s %s", c.group, c.stream)
		assert.Equal(t, c.service, service, "%s %s", c.group, c.stream)
	}
}

var sources = []string{"appsync", "bedrock", "codebuild", "dms", "docdb", "eks", "aws.fsx", "kinesis", "lambda", "rds", "mysql",
	"mariadb", "postgresql", "sns", "stepfunction", "transitgateway", "network-firewall", "route53", "vpc", "fargate", "cloudtrail",
	"msk", "elasticsearch", "verified-access", "cloudfront", "kubernetes.audit", "kube_scheduler", "kube-apiserver",
	"kube-controller-manager", "aws-iam-authenticator"}

// FuzzName: a source is one the Forwarder knows, never apigateway; a
// service is always set with a source, and is the source except for
// Lambda, whose service is its function's lower-cased name.
func FuzzName(f *testing.F) {
	f.Add("/aws/lambda/Fn", "")
	f.Add("/x", "2023/11/06/fn[$LATEST]13e304cba4b9446eb7ef082a00038990")
	f.Add("/aws/rds/instance/a/postgresql", "")
	f.Add("/aws/eks/c", "kube-scheduler-1")
	f.Fuzz(func(t *testing.T, group, stream string) {
		source, service, known := Name(group, stream)
		if !known {
			if source != "" || service != "" {
				t.Fatalf("unknown but named %q %q", source, service)
			}
			return
		}
		if !slices.Contains(sources, source) {
			t.Fatalf("source %q is not one of the Forwarder's", source)
		}
		if service == "" {
			t.Fatal("no service")
		}
		if source != "lambda" && service != source {
			t.Fatalf("service %q, want the source %q", service, source)
		}
		if source == "lambda" && service != strings.ToLower(service) {
			t.Fatalf("lambda service %q not lower-cased", service)
		}
	})
}
