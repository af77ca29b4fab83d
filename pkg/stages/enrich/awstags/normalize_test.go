package awstags

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalizeTag(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"plain", "team", "payments", "team:payments"},
		{"lower-cased", "Team", "Payments", "team:payments"},
		{"blank and symbols become _", "Cost Center", "R&D (EU)", "cost_center:r_d_eu"},
		{"runs of _ collapse", "a  b__c", "x!!y", "a_b_c:x_y"},
		{"colon in key becomes _", "aws:cloudformation:stack-name", "gw-prod", "aws_cloudformation_stack-name:gw-prod"},
		{"colon in value kept", "url", "https://example.com:8443/x", "url:https://example.com:8443/x"},
		{"leading digits and _ dropped from keys", "1st_owner", "1st", "st_owner:1st"},
		{"leading _ kept in values", "stage", "$default", "stage:_default"},
		{"trailing _ dropped", "name?", "value!", "name:value"},
		{"empty value: bare key", "critical", "", "critical"},
		{"value of only symbols: bare key", "owner", "@@", "owner"},
		{"key of only digits is dropped", "123", "x", ""},
		{"dots, slashes and dashes kept", "k8s.io/app-name", "web/api-1.2", "k8s.io/app-name:web/api-1.2"},
		{"unicode letters kept and lower-cased", "Équipe", "Zürich Ünit", "équipe:zürich_ünit"},
		{"non-word unicode replaced", "emoji", "ok👍", "emoji:ok"},
		{"email", "owner", "Alice@Example.com", "owner:alice_example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, NormalizeTag(tc.key, tc.value))
		})
	}
}

func TestNormalizeTagTruncatesTo200Characters(t *testing.T) {
	got := NormalizeTag("k", strings.Repeat("é", 300))
	assert.Equal(t, 200, len([]rune(got)))
	assert.True(t, strings.HasPrefix(got, "k:éé"))
}

func TestNormalizeCleanInputDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = NormalizeKey("team")
		_ = NormalizeValue("us-east-1")
		_ = NormalizeValue("a1b2c3d4e5")
	})
	assert.Zero(t, allocs)
}

func TestDestinationName(t *testing.T) {
	checkParse(t, DestinationName, []parseCase[string]{
		{"arn:aws:logs:us-east-1:111111111111:log-group:/aws/apigateway/access", "/aws/apigateway/access", true},
		{"arn:aws:logs:us-east-1:111111111111:log-group:API-Gateway-Access:*", "API-Gateway-Access", true},
		{"arn:aws-cn:logs:cn-north-1:111111111111:log-group:gw#1", "gw#1", true},
		{"arn:aws:firehose:eu-west-1:111111111111:deliverystream/amazon-apigateway-orders", "amazon-apigateway-orders", true},
		{"arn:aws:logs:us-east-1:111111111111:log-group:", "", false},
		{"arn:aws:s3:::bucket", "", false},
		{"not an arn", "", false},
	})
}

// parseCase is an input of a parser, what it should return and whether it
// should accept it.
type parseCase[T any] struct {
	in   string
	want T
	ok   bool
}

// checkParse runs parse on every case, each as a subtest named by its input.
func checkParse[T any](t *testing.T, parse func(string) (T, bool), cases []parseCase[T]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parse(tc.in)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseAPIGatewayARN(t *testing.T) {
	checkParse(t, parseAPIGatewayARN, []parseCase[apigwResource]{
		{"arn:aws:apigateway:us-east-1::/restapis/m5zr3vnks7/stages/test", apigwResource{region: "us-east-1", apiID: "m5zr3vnks7", stage: "test"}, true},
		{"arn:aws:apigateway:us-east-1::/restapis/m5zr3vnks7", apigwResource{region: "us-east-1", apiID: "m5zr3vnks7"}, true},
		{"arn:aws:apigateway:eu-west-1::/apis/a1b2c3/stages/$default", apigwResource{region: "eu-west-1", v2: true, apiID: "a1b2c3", stage: "$default"}, true},
		{"arn:aws:apigateway:eu-west-1::/apis/a1b2c3/stages/%24default", apigwResource{region: "eu-west-1", v2: true, apiID: "a1b2c3", stage: "$default"}, true},
		{"arn:aws-us-gov:apigateway:us-gov-west-1::/apis/a1b2c3", apigwResource{region: "us-gov-west-1", v2: true, apiID: "a1b2c3"}, true},
		{"arn:aws:apigateway:us-east-1::/restapis/m5zr3vnks7/deployments/abc", apigwResource{}, false},
		{"arn:aws:apigateway:us-east-1::/apis/a1b2c3/routes/r1", apigwResource{}, false},
		{"arn:aws:apigateway:us-east-1::/vpclinks/v1", apigwResource{}, false},
		{"arn:aws:lambda:us-east-1:111111111111:function:f", apigwResource{}, false},
	})
}

// The role assumed per account: an override first (empty: the pipeline's
// own credentials), else the template; the CloudWatch poller uses the same.
func TestRoleFor(t *testing.T) {
	c := &Config{RoleTemplate: "arn:aws:iam::{account}:role/gwpipe", RoleOverrides: map[string]string{
		"222222222222": "arn:aws:iam::222222222222:role/special",
		"123456789012": "",
	}}
	assert.Equal(t, "arn:aws:iam::111111111111:role/gwpipe", c.RoleFor("111111111111"))
	assert.Equal(t, "arn:aws:iam::222222222222:role/special", c.RoleFor("222222222222"))
	assert.Equal(t, "", c.RoleFor("123456789012"), "an empty override: the pipeline's own credentials")
	assert.Equal(t, "", (&Config{}).RoleFor("111111111111"), "no template: own credentials")
}
