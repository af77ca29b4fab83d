package decode

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
)

// A record that starts with a UTF-8 byte-order mark (as a .NET or
// PowerShell producer may write it) is read as if it had none, as the S3
// reader reads an object's first line: its first metric-stream datum was
// delivered to the logs intake as a log line, "\ufeff{"metric_stream_name"…",
// and only the second of two datums became points; a first envelope was a
// log line too, and a JSON log kept the mark, which Datadog cannot parse.
func TestAByteOrderMarkStartsNoItem(t *testing.T) {
	t.Parallel()
	const bom = "\ufeff"
	datum := func(stage string) string {
		return `{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count",` +
			`"dimensions":{"ApiName":"petstore","Stage":"` + stage + `"},"timestamp":1611929640000,"value":{"max":1,"min":1,"sum":3,"count":3},"unit":"Count"}`
	}
	decoder, err := metricstream.NewDecoder(metricstream.DefaultConfig())
	require.NoError(t, err)
	for name, c := range map[string]struct {
		rec    string
		points int
		logs   []string
	}{
		"metric-stream datums":      {bom + datum("a") + "\n" + datum("b") + "\n", 2, nil},
		"datums back to back":       {bom + datum("a") + datum("b"), 2, nil},
		"an envelope":               {bom + envelopeOf("g", "e1"), 0, []string{"event e1"}},
		"a json log":                {bom + `{"requestId":"r1","status":"200"}` + "\nline 2", 0, []string{`{"requestId":"r1","status":"200"}`, "line 2"}},
		"the mark on its own line":  {bom + "\n" + datum("a"), 1, nil},
		"the mark and nothing else": {bom, 0, nil},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := newStage()
			s.WithMetricStreams(MetricStreams(decoder))
			res := s.Decode(rawBatch(b64([]byte(c.rec))))
			assert.Empty(t, deadRecords(res))
			assert.Len(t, points(res), c.points)
			assert.Equal(t, c.logs, nilIfEmpty(messages(all(res))))
		})
	}
}
