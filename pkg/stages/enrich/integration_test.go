package enrich

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// accessRecord is a parsed access log of a stage, as the parse stage
// leaves it.
func accessRecord(o *record.Origin, apiID, stage string) record.Record {
	str := func(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }
	return record.Record{
		Origin: o, Kind: record.KindAccess, Timestamp: 1732850000000,
		Message: []byte(`{"requestId":"c0475a28","apiId":"` + apiID + `","stage":"` + stage + `","status":200}`),
		Attrs: []record.Attr{
			str("http.request_id", "c0475a28-8de8-11e7-8d3f-4183da788f0f"), str("network.client.ip", "203.0.113.7"),
			str("http.method", "GET"), str("http.route", "/pets/{petId}"), record.IntAttr("http.status_code", 200),
			str("http.version", "HTTP/1.1"), record.IntAttr("network.bytes_written", 512), record.IntAttr("duration", 31000000),
			str("apigateway.requestId", "c0475a28-8de8-11e7-8d3f-4183da788f0f"), str("apigateway.extendedRequestId", "Dt6vFHHzNjMFahw="),
			str("apigateway.identity.sourceIp", "203.0.113.7"), str("apigateway.httpMethod", "GET"),
			str("apigateway.resourcePath", "/pets/{petId}"), str("apigateway.protocol", "HTTP/1.1"),
			str("apigateway.apiId", apiID), str("apigateway.stage", stage),
		},
	}
}

func TestEnrichWithAWSTagger(t *testing.T) {
	f := newFleet([]string{"111111111111", "222222222222", "333333333333"}, []string{"us-east-1", "eu-west-1"}, 5)
	f.Gate.Hold()
	tg, events := newFleetTagger(t, f, awstags.Config{})
	st, err := New(tg, Config{MaxWait: 30 * time.Millisecond})
	require.NoError(t, err)

	batch := func() *record.Batch {
		var recs []record.Record
		for _, a := range f.accounts {
			for _, r := range f.regions {
				o := &record.Origin{Source: "firehose", Account: a, Region: r, LogGroup: "/custom/access"}
				id := f.apiID(a, r, 3)
				recs = append(recs, accessRecord(o, id, "prod"), accessRecord(o, id, "dev"))
				// No fields of its own: found through the stage's destination.
				recs = append(recs, record.Record{Origin: &record.Origin{Account: a, Region: r, LogGroup: fmt.Sprintf("/gw/%s/prod", id)}})
			}
		}
		recs = append(recs, record.Record{Origin: &record.Origin{Account: "111111111111", Region: "us-east-1", LogGroup: "/aws/lambda/other"}})
		return &record.Batch{Records: recs}
	}

	// Cold: every account is being read; the batch waits 30ms once and goes
	// on, flagged partial. Nothing is held back, nothing is lost.
	cold := batch()
	out := &captureOutput{}
	start := time.Now()
	require.NoError(t, st.Handle(context.Background(), cold, out))
	assert.Less(t, time.Since(start), 5*time.Second)
	require.Len(t, out.emitted, 1)
	require.Len(t, cold.Records, 19)
	for _, r := range cold.Records {
		// Even the Lambda log: until the account is read, nobody knows
		// whether its group is some stage's access-log destination.
		assert.Contains(t, r.Tags, awstags.PartialTag)
		assert.Contains(t, r.Tags, "aws_account:"+r.Origin.Account)
	}

	// The reads finish: the next batch is complete.
	f.Gate.Release()
	awaitReads(t, f, events)
	warm := batch()
	require.NoError(t, st.Handle(context.Background(), warm, out))
	id := f.apiID("222222222222", "eu-west-1", 3)
	want := []string{"apiid:" + id, "apiname:service_3", "stage:prod", "region:eu-west-1", "aws_account:222222222222",
		"cost_center:1003", "env:production", "service:svc-" + id, "team:team-3"}
	r := warm.Records[9]
	assert.Equal(t, want, r.Tags)
	assert.Equal(t, "svc-"+id, r.Service)
	assert.Equal(t, want, warm.Records[11].Tags, "resolved through its log group")
	assert.Same(t, &r.Tags[0], &warm.Records[11].Tags[0], "one slice per stage")
	for _, r := range warm.Records {
		assert.NotContains(t, r.Tags, awstags.PartialTag)
	}
	assert.Equal(t, []string{"region:us-east-1", "aws_account:111111111111"}, warm.Records[18].Tags)
	s := st.Stats()
	assert.Equal(t, int64(19), s.Partial)
	assert.Equal(t, int64(1), s.Waits)
}
