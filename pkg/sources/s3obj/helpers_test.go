package s3obj

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

type ev struct {
	id  string
	ts  int64
	msg string
}

func envelopeDoc(group, stream string, evs ...ev) []byte {
	doc := corpus.Envelope{MessageType: "DATA_MESSAGE", Owner: "123456789012", LogGroup: group, LogStream: stream, SubscriptionFilters: []string{"f"}}
	for _, e := range evs {
		doc.LogEvents = append(doc.LogEvents, corpus.LogEvent{ID: e.id, Timestamp: e.ts, Message: e.msg})
	}
	b, _ := json.Marshal(doc)
	return b
}

const controlDoc = `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1741312971934,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}`

func zst(p []byte) []byte {
	zw, _ := zstd.NewWriter(nil)
	return zw.EncodeAll(p, nil)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func b64(p []byte) string { return base64.StdEncoding.EncodeToString(p) }

func dlqLine(t testing.TB, e dlq.Entry) []byte {
	t.Helper()
	e.V = 1
	e.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	return append(b, '\n')
}

// readAll reads every chunk and checks the numbering invariants.
func readAll(t testing.TB, data []byte, obj Object, cfg Config) (events, dead []record.Record, st Stats) {
	t.Helper()
	out := readObject(t, data, obj, cfg)
	return out.events, out.dead, out.stats
}

// readOut is what a Reader made of an object.
type readOut struct {
	events, dead []record.Record
	points       []record.Metric
	stats        Stats
}

// readObject reads every chunk and checks the numbering invariants.
func readObject(t testing.TB, data []byte, obj Object, cfg Config) readOut {
	t.Helper()
	r := NewReader(bytes.NewReader(data), obj, cfg)
	defer r.Close()
	var out readOut
	next := int64(0)
	eachChunk(t, r, func(c Chunk) {
		require.NotZero(t, c.Batch.Len(), "a chunk is never empty")
		require.False(t, len(c.Batch.Records) > 0 && len(c.Batch.Metrics) > 0, "events and points never share a chunk")
		require.Equal(t, next, c.First, "items are numbered consecutively")
		next += int64(c.Batch.Len())
		switch {
		case c.Dead:
			for _, d := range c.Batch.Records {
				require.NotEmpty(t, d.Reason, "a dead letter says why")
				require.Equal(t, record.KindRaw, d.Kind, "a dead letter is raw data a replay decodes again")
			}
			out.dead = append(out.dead, c.Batch.Records...)
		case len(c.Batch.Metrics) > 0:
			out.points = append(out.points, c.Batch.Metrics...)
		default:
			for _, e := range c.Batch.Records {
				require.Equal(t, record.KindLine, e.Kind)
				require.NotNil(t, e.Origin)
			}
			out.events = append(out.events, c.Batch.Records...)
		}
	})
	out.stats = r.Stats()
	require.EqualValues(t, len(out.events), out.stats.Events)
	require.EqualValues(t, len(out.points), out.stats.Points)
	require.EqualValues(t, len(out.dead), out.stats.DeadLetters)
	return out
}

// eachChunk reads r to its end (Next's io.EOF), handing every chunk to fn;
// any other error fails the test.
func eachChunk(t testing.TB, r *Reader, fn func(Chunk)) {
	t.Helper()
	for {
		c, err := r.Next()
		if err == io.EOF {
			return
		}
		require.NoError(t, err)
		fn(c)
	}
}

func messages(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Message)
	}
	return out
}

func ids(recs []record.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.EventID
	}
	return out
}

// manyEvents builds n events with unique ids and messages.
func manyEvents(n int, ts int64) []ev {
	evs := make([]ev, n)
	for i := range evs {
		evs[i] = ev{id: fmt.Sprint(1000 + i), ts: ts + int64(i), msg: fmt.Sprintf(`{"requestId":"r-%d","httpMethod":"GET","status":200}`, i)}
	}
	return evs
}

// failingReader returns data, then err instead of EOF.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
