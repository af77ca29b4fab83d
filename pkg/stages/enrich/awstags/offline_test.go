package awstags

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags/awstagstest"
)

// ownTags are the tags a record carries by itself, whatever AWS says.
var ownKeys = []string{"apiid", "stage", "region", "aws_account"}

func ownTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		k, _, _ := strings.Cut(t, ":")
		if slices.Contains(ownKeys, k) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

func accessRecord(owner, region, group, apiID, stage, account string) *record.Record {
	rec := &record.Record{Origin: &record.Origin{Account: owner, Region: region, LogGroup: group}, Kind: record.KindAccess}
	for k, v := range map[string]string{attrAPIID: apiID, attrStage: stage, attrAccount: account} {
		if v != "" {
			rec.Attrs = append(rec.Attrs, record.StringAttr(k, []byte(v)))
		}
	}
	return rec
}

// TestOfflineTagsWhatTheRecordCarries: with enrich.aws_tags off an access
// log keeps the apiid and stage its own fields name, as it does with AWS.
func TestOfflineTagsWhatTheRecordCarries(t *testing.T) {
	o, err := NewOffline(Config{Mappings: []Mapping{{LogGroup: "/custom/*", APIID: "m1m2m3m4m5", Stage: "live"}}})
	require.NoError(t, err)
	tags := func(rec *record.Record) []string {
		key, _ := o.Resolve(rec)
		info, settled := o.Peek(key)
		assert.True(t, settled)
		assert.NotContains(t, info.Tags, PartialTag, "nothing is missing: AWS is not asked")
		return ownTags(info.Tags)
	}
	assert.Equal(t, []string{"apiid:a1b2c3d4e5", "aws_account:" + acctA, "region:" + usE1, "stage:prod"},
		tags(accessRecord(acctA, usE1, "api-gateway-access", "a1b2c3d4e5", "prod", "")), "the access log's fields")
	assert.Equal(t, []string{"apiid:u9zut7wlwj", "aws_account:" + acctA, "region:" + usE1, "stage:prod"},
		tags(&record.Record{Origin: &record.Origin{Account: acctA, Region: usE1, LogGroup: "API-Gateway-Execution-Logs_u9zut7wlwj/prod"}}), "the execution log group")
	assert.Equal(t, []string{"apiid:m1m2m3m4m5", "aws_account:" + acctA, "region:" + usE1, "stage:live"},
		tags(accessRecord(acctA, usE1, "/custom/x", "", "", "")), "a mapping")
	assert.Equal(t, []string{"apiid:a1b2c3d4e5", "stage:prod"},
		tags(accessRecord("", "", "api-gateway-access", "a1b2c3d4e5", "prod", "")), "no account nor region: the API and stage still")
	assert.Equal(t, []string{"aws_account:" + acctA, "region:" + usE1},
		tags(accessRecord(acctA, usE1, "api-gateway-access", "-", "-", "")), `"-" is an unset variable`)

	// One shared slice per stage: records of a stage cost no allocation.
	rec := accessRecord(acctA, usE1, "api-gateway-access", "a1b2c3d4e5", "prod", "")
	key, _ := o.Resolve(rec)
	first, _ := o.Peek(key)
	allocs := testing.AllocsPerRun(100, func() {
		key, _ := o.Resolve(rec)
		o.Peek(key)
	})
	assert.Zero(t, allocs)
	again, _ := o.Peek(key)
	assert.Same(t, &first.Tags[0], &again.Tags[0])
}

// FuzzOwnTagsDoNotDependOnAWS: for any record, the tags it carries by
// itself (apiid, stage, region, aws_account) are the same whether AWS is
// not asked (Offline) or asked and knows nothing of the stage (Tagger with
// an empty account); and an access log's own apiId field, when its log
// group does not name an API, is always among them.
func FuzzOwnTagsDoNotDependOnAWS(f *testing.F) {
	f.Add(acctA, usE1, "api-gateway-access", "a1b2c3d4e5", "prod", "")
	f.Add("", "", "/aws/http-api/x", "A1B2C3D4E5", "Prod Stage", acctA)
	f.Add(acctA, "", "API-Gateway-Execution-Logs_u9zut7wlwj/prod", "a1b2c3d4e5", "dev", "")
	f.Add("123", "moon-1", "", "-", "prod", "")
	f.Add(acctA, usE1, "/aws/apigateway/abcdefghij/prod/Canary", "", "", "")
	tg, err := New(context.Background(), Config{MaxWait: 5 * time.Second}, aws.Config{},
		WithClientFactory(cloudFactory(awstagstest.New())), WithSTSClient(awstagstest.New().STS()))
	require.NoError(f, err)
	f.Cleanup(func() { _ = tg.Close() })
	o, err := NewOffline(Config{})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, owner, region, group, apiID, stage, account string) {
		rec := accessRecord(owner, region, group, apiID, stage, account)
		okey, _ := o.Resolve(rec)
		tkey, _ := tg.Resolve(rec)
		require.Equal(t, okey, tkey, "one naming rule")
		off, _ := o.Peek(okey)
		aws, _ := tg.Lookup(context.Background(), tkey)
		require.Equal(t, ownTags(off.Tags), ownTags(aws.Tags), "record %+v", rec.Origin)
		if _, _, _, exec := apigw.ExecutionGroup(group); !exec && apiID != "" && apiID != "-" {
			if v := NormalizeValue(apiID); v != "" {
				require.Contains(t, off.Tags, "apiid:"+v)
			}
		}
	})
}
