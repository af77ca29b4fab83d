package awstags

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags/awstagstest"
)

func newTestResolver(t *testing.T, cfg Config) *Tagger {
	t.Helper()
	tg, err := New(context.Background(), cfg, aws.Config{}, WithClientFactory(cloudFactory(awstagstest.New())), WithSTSClient(awstagstest.New().STS()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tg.Close() })
	return tg
}

func TestResolve(t *testing.T) {
	tg := newTestResolver(t, Config{
		DefaultRegion: "us-west-2",
		SourceRegions: map[string]string{"replay": "eu-central-1", "arn:aws:s3:::archive": "ap-southeast-2"},
		Mappings: []Mapping{
			{LogGroup: "/custom/orders-*", APIID: "o1o2o3o4o5", Stage: "prod"},
			{LogGroup: "legacy", APIID: "l1l2l3l4l5", Account: "333333333333", Region: "sa-east-1"},
		},
	})
	str := func(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }
	tests := []struct {
		name string
		rec  record.Record
		want StageKey
		ok   bool
	}{
		{
			name: "execution log group",
			rec:  record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "API-Gateway-Execution-Logs_u9zut7wlwj/prod"}},
			want: StageKey{Account: acctA, Region: usE1, APIID: "u9zut7wlwj", Stage: "prod"}, ok: true,
		},
		{
			name: "WebSocket execution log group",
			rec:  record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "/aws/apigateway/abcde12345/live"}},
			want: StageKey{Account: acctA, Region: usE1, APIID: "abcde12345", Stage: "live"}, ok: true,
		},
		{
			name: "access-log fields",
			rec: record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "/gw/access"},
				Attrs: []record.Attr{str("http.method", "GET"), str(attrAPIID, "a1b2c3d4e5"), str(attrStage, "$default")}},
			want: StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "$default"}, ok: true,
		},
		{
			name: "unset fields ('-') are ignored; the log group is the key",
			rec: record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "/gw/access"},
				Attrs: []record.Attr{str(attrAPIID, "-"), str(attrStage, "prod")}},
			want: StageKey{Account: acctA, Region: usE1, LogGroup: "/gw/access"}, ok: true,
		},
		{
			name: "direct Firehose delivery: account and region from the stream ARN, the stream is the key",
			rec: record.Record{Origin: &record.Origin{Source: "firehose", Stream: "amazon-apigateway-orders",
				SourceARN: "arn:aws:firehose:eu-west-1:222222222222:deliverystream/amazon-apigateway-orders"}},
			want: StageKey{Account: acctB, Region: euW1, LogGroup: "amazon-apigateway-orders"}, ok: true,
		},
		{
			name: "account from the access log's accountId",
			rec: record.Record{Origin: &record.Origin{Source: "s3", SourceARN: "arn:aws:s3:::archive"},
				Attrs: []record.Attr{str(attrAccount, acctA), str(attrAPIID, "a1b2c3d4e5"), str(attrStage, "prod")}},
			want: StageKey{Account: acctA, Region: "ap-southeast-2", APIID: "a1b2c3d4e5", Stage: "prod"}, ok: true,
		},
		{
			name: "region per source",
			rec:  record.Record{Origin: &record.Origin{Source: "replay", Account: acctA, LogGroup: "API-Gateway-Execution-Logs_u9zut7wlwj/prod"}},
			want: StageKey{Account: acctA, Region: "eu-central-1", APIID: "u9zut7wlwj", Stage: "prod"}, ok: true,
		},
		{
			name: "default region",
			rec:  record.Record{Origin: &record.Origin{Source: "sqs", Account: acctA, LogGroup: "API-Gateway-Execution-Logs_u9zut7wlwj/prod"}},
			want: StageKey{Account: acctA, Region: "us-west-2", APIID: "u9zut7wlwj", Stage: "prod"}, ok: true,
		},
		{
			name: "configured mapping",
			rec:  record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "/custom/orders-v2"}},
			want: StageKey{Account: acctA, Region: usE1, APIID: "o1o2o3o4o5", Stage: "prod"}, ok: true,
		},
		{
			name: "mapping overriding account and region",
			rec:  record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "legacy"}},
			want: StageKey{Account: "333333333333", Region: "sa-east-1", APIID: "l1l2l3l4l5"}, ok: true,
		},
		{
			name: "no account",
			rec:  record.Record{Origin: &record.Origin{LogGroup: "API-Gateway-Execution-Logs_u9zut7wlwj/prod"}},
			want: StageKey{Region: "us-west-2", APIID: "u9zut7wlwj", Stage: "prod"}, ok: false,
		},
		{
			name: "no origin",
			rec:  record.Record{},
			want: StageKey{Region: "us-west-2"}, ok: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tg.Resolve(&tc.rec)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestResolveDoesNotAllocate(t *testing.T) {
	tg := newTestResolver(t, Config{Mappings: []Mapping{{LogGroup: "/custom/*", APIID: "o1o2o3o4o5"}}})
	recs := []record.Record{
		{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "API-Gateway-Execution-Logs_u9zut7wlwj/prod"}},
		{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "/gw/access"},
			Attrs: []record.Attr{record.StringAttr(attrAPIID, []byte("a1b2c3d4e5")), record.StringAttr(attrStage, []byte("prod"))}},
		{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "/custom/x"}},
	}
	tg.Resolve(&recs[2]) // memoise the mapping decision
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range recs {
			tg.Resolve(&recs[i])
		}
	})
	assert.Zero(t, allocs)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero value", Config{}, ""},
		{"full", Config{RoleTemplate: "arn:aws:iam::{account}:role/gwpipe-reader", ExternalID: "x",
			RoleOverrides: map[string]string{acctA: "arn:aws:iam::111111111111:role/r"}, DefaultRegion: "us-east-1",
			Mappings: []Mapping{{LogGroup: "/a/*", APIID: "x"}}}, ""},
		{"template without placeholder", Config{RoleTemplate: "arn:aws:iam::111111111111:role/r"}, "must contain {account}"},
		{"template not a role", Config{RoleTemplate: "gwpipe-{account}"}, "not an IAM role ARN"},
		{"override account", Config{RoleOverrides: map[string]string{"12": "arn:aws:iam::12:role/r"}}, "12-digit"},
		{"region", Config{DefaultRegion: "mars"}, "not a region name"},
		{"negative duration", Config{TTL: -1}, "ttl: must be positive"},
		{"jitter", Config{Jitter: 1.5}, "below 1"},
		{"mapping without api", Config{Mappings: []Mapping{{LogGroup: "x"}}}, "mappings[0].api_id: is required"},
		{"mapping bad glob", Config{Mappings: []Mapping{{LogGroup: "[", APIID: "x"}}}, "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults().Validate() // as the constructors see it
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
	assert.NoError(t, DefaultConfig().Validate())
	assert.ErrorContains(t, Config{}.Validate(), "ttl: must be positive", "a configuration is validated as given")
	_, err := New(context.Background(), Config{TTL: -1}, aws.Config{})
	assert.ErrorContains(t, err, "invalid configuration")
}
