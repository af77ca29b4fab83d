package dlq

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func TestArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := Open(dir)
	require.NoError(t, err)
	a.now = func() time.Time { return time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC) }
	o := &record.Origin{Source: "firehose", RequestID: "req-1", Account: "123456789012", Region: "eu-west-1", LogGroup: "g"}
	b := &record.Batch{Stage: "decode", Reason: "batch reason", Records: []record.Record{
		{Origin: o, Kind: record.KindRaw, Message: []byte("H4sI\x00\xff"), Reason: "gunzip: truncated gzip"},
		{Origin: o, Kind: record.KindLine, Message: []byte("line"), EventID: "77", Timestamp: 5},
	}}
	require.NoError(t, a.Write(b))
	require.NoError(t, a.Write(&record.Batch{Stage: "deliver-logs", Records: []record.Record{{Message: []byte("x"), Reason: "intake 400: bad"}}}))
	require.NoError(t, a.Write(&record.Batch{Stage: "deliver-metrics", Reason: "api 400", Metrics: []record.Metric{{Name: "apigateway.logs.count", Kind: record.MetricCount, Timestamp: 17, Interval: 10, Value: 3, Tags: []string{"stage:prod"}}}}))
	require.NoError(t, a.Close())

	files, err := Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 1)
	f, err := os.Open(files[0])
	require.NoError(t, err)
	defer f.Close()
	var got []Entry
	st, err := Read(f, func(e Entry) error { got = append(got, e); return nil })
	require.NoError(t, err)
	assert.Zero(t, st.Partial)
	require.Len(t, got, 4)
	require.NotNil(t, got[3].Metric, "refused metric points are archived too")
	assert.Equal(t, "metric", got[3].Kind)
	assert.Equal(t, "apigateway.logs.count", got[3].Metric.Name)
	assert.Equal(t, "count", got[3].Metric.Type)
	assert.Equal(t, 3.0, got[3].Metric.Value)
	assert.Equal(t, "api 400", got[3].Reason)
	assert.Equal(t, "decode", got[0].Stage)
	assert.Equal(t, "gunzip: truncated gzip", got[0].Reason)
	assert.Equal(t, []byte("H4sI\x00\xff"), got[0].Data, "raw bytes survive, binary included")
	assert.Equal(t, "raw", got[0].Kind)
	assert.Equal(t, "req-1", got[0].Origin.RequestID)
	assert.Equal(t, "batch reason", got[1].Reason, "the batch's reason applies when the record has none")
	assert.Equal(t, "77", got[1].EventID)
	assert.Equal(t, "intake 400: bad", got[2].Reason)
	assert.Equal(t, 1, got[2].V)
}

func TestOpenFailsClearly(t *testing.T) {
	t.Parallel()
	f, err := os.CreateTemp(t.TempDir(), "file")
	require.NoError(t, err)
	_, err = Open(f.Name() + "/sub")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dead-letter archive")
}
