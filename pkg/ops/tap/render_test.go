package tap

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
)

func events(t *testing.T, topic string, b *record.Batch) []Event {
	t.Helper()
	var evs []Event
	Renderer{Topic: topic, Defaults: ddlogs.Defaults{Source: "apigateway"}}.Records("s", b, func(line []byte) bool {
		require.True(t, bytes.HasSuffix(line, []byte("\n")))
		var ev Event
		require.NoError(t, json.Unmarshal(line, &ev), "%s", line)
		evs = append(evs, ev)
		return true
	})
	return evs
}

// TestRenderRaw: a Firehose record (base64 of gzip) is shown as its text;
// bytes that are not text are shown by size only.
func TestRenderRaw(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"API Key: k3y"}]}`))
	require.NoError(t, zw.Close())
	b := &record.Batch{Records: []record.Record{
		{Kind: record.KindRaw, Message: []byte(base64.StdEncoding.EncodeToString(z.Bytes()))},
		{Kind: record.KindRaw, Message: []byte{0x1f, 0x8b, 0, 1, 2}}, // a broken gzip
		{Kind: record.KindRaw, Message: bytes.Repeat([]byte{0, 1, 2, 0xff}, 8)},
	}}
	evs := events(t, "raw", b)
	require.Len(t, evs, 3)
	require.NotNil(t, evs[0].Message)
	assert.True(t, evs[0].Gzip)
	assert.Equal(t, `{"messageType":"DATA_MESSAGE","logEvents":[{"message":"API Key: REDACTED"}]}`, *evs[0].Message)
	assert.Nil(t, evs[1].Message)
	assert.Nil(t, evs[2].Message)
	assert.Equal(t, 32, evs[2].Bytes)
}

// TestRenderParsedMasksSecretAttributes: a secret attribute's value is
// masked in the attribute and in the message; the rest is as delivered.
func TestRenderParsedMasksSecretAttributes(t *testing.T) {
	b := &record.Batch{Records: []record.Record{{
		Message: []byte("GET /pets key=s3cr3tvalue"),
		Attrs: []record.Attr{
			record.StringAttr("apigateway.identity.apiKey", []byte("s3cr3tvalue")),
			record.StringAttr("apigateway.identity.apiKeyId", []byte("id-1")),
			record.IntAttr("http.status_code", 200),
		},
	}}}
	evs := events(t, "enriched", b)
	require.Len(t, evs, 1)
	log := string(evs[0].Log)
	assert.NotContains(t, log, "s3cr3tvalue")
	assert.Contains(t, log, `"message":"GET /pets key=REDACTED"`)
	assert.Contains(t, log, `"apiKey":"REDACTED"`)
	assert.Contains(t, log, `"apiKeyId":"id-1"`)
	assert.Contains(t, log, `"status_code":200`)
}

// TestRenderDeadLettersAndMetrics: dead letters carry their reason (the
// record's, else the batch's); a raw dead letter is shown by size; metric
// points as points; emit returning false stops.
func TestRenderDeadLettersAndMetrics(t *testing.T) {
	b := &record.Batch{Reason: "batch reason", Records: []record.Record{
		{Kind: record.KindLine, Message: []byte("line"), Reason: "own reason"},
		{Kind: record.KindRaw, Message: []byte("AAAA")},
	}, Metrics: []record.Metric{{Name: "m", Kind: record.MetricCount, Value: 2}}}
	evs := events(t, "dlq", b)
	require.Len(t, evs, 3)
	assert.Equal(t, "own reason", evs[0].Reason)
	assert.Equal(t, "line", *evs[0].Message)
	assert.Equal(t, "batch reason", evs[1].Reason)
	assert.Nil(t, evs[1].Message)
	assert.Equal(t, 4, evs[1].Bytes)
	assert.Equal(t, "m", evs[2].Metric.Name)
	assert.Equal(t, "batch reason", evs[2].Reason)

	n := 0
	Renderer{Topic: "dlq"}.Records("s", b, func([]byte) bool { n++; return false })
	assert.Equal(t, 1, n)
}
