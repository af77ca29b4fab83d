package decode

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// outcome is everything a decoded record became, in order: records with
// their identity and origin, dead letters with their reasons, points, the
// parts the stage traced and its counters.
func outcome(t *testing.T, rec record.Record, slow bool) []string {
	t.Helper()
	s, reg := newStage()
	s.WithMetricStreams(fakeMetrics{})
	s.slowSplit = slow
	var out []string
	s.trace = func(_ []byte, p part) { out = append(out, fmt.Sprintf("part %+v", p)) }
	in := rawBatch()
	rec.Origin = in.Origin
	in.Records = []record.Record{rec}
	res := s.Decode(in)
	for _, b := range res.Batches {
		out = append(out, fmt.Sprintf("batch of %d records, %d points", len(b.Records), len(b.Metrics)))
		for _, r := range b.Records {
			out = append(out, fmt.Sprintf("record %q id %q ts %d kind %v origin %+v", r.Message, r.EventID, r.Timestamp, r.Kind, *r.Origin))
		}
		for _, m := range b.Metrics {
			out = append(out, fmt.Sprintf("point %+v", m))
		}
	}
	for _, d := range deadRecords(res) {
		out = append(out, fmt.Sprintf("dead %q reason %q kind %v origin %+v", d.Message, d.Reason, d.Kind, *d.Origin))
	}
	for _, c := range []string{"decode.control_messages", "decode.unknown_message_types", "decode.binary_records", "decode.non_text_lines", "decode.empty_records"} {
		out = append(out, fmt.Sprintf("%s %d", c, reg.Value(c)))
	}
	return out
}

// checkOnePass checks that the one-pass path (an envelope alone on its line
// parsed once, see decodeText) decodes rec exactly as the scan it skips.
func checkOnePass(t *testing.T, rec record.Record) {
	t.Helper()
	require.Equal(t, outcome(t, rec, true), outcome(t, rec, false), "record %q", rec.Message)
}

// The one-pass path changes nothing but the cost, on every shape of line
// that starts with '{': one envelope (with white space, '\r', events across
// pieces), envelopes back to back, an envelope and text, a nested
// messageType, invalid and truncated envelopes, documents across lines.
func TestOnePassDecodesAsTheScan(t *testing.T) {
	for _, d := range []string{
		env,
		"  " + env + " \t\r\n" + env + "\r",
		env + env,
		env + " " + control,
		env + " trailing text",
		`{"a":{"messageType":"DATA_MESSAGE"}}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"a"},{"id":2,"timestamp":2,"message":"b"},{"id":"3","timestamp":3,"message":"c"},{"id":"4","timestamp":4,"message":"d"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":7}]}`,
		`{"logEvents":[]}`,
		`{"messageType":"DATA_MESSAGE_V2","logEvents":[]}` + "\n" + env,
		`{"messageType":"DATA_MESSAGE","logEvents":[` + "\n" + `]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[`,
		`{"messageType": "DATA_MESSAGE", "x": "\"}{\\", "logEvents": []}`,
		`{"messageType":"CONTROL_MESSAGE"}{"metric_stream_name":"s"}`,
		`{"metric_stream_name":"s","messageType":1}`,
		"{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[{\"id\":\"1\",\"timestamp\":1,\"message\":\"\xff\"}]}",
	} {
		checkOnePass(t, record.Record{Kind: record.KindLine, Message: []byte(d), Timestamp: 42})
		checkOnePass(t, record.Record{Kind: record.KindRaw, Message: b64(gz(d)), Timestamp: 42})
	}
}
