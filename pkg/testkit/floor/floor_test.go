package floor

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

func benchConfig() loadgen.Config {
	return loadgen.Config{Seed: 1, Mix: loadgen.Mix{JSON: 1}, RecordsPerRequest: 10, EventsPerRecord: 500,
		Clock: func() time.Time { return time.UnixMilli(1_700_000_000_000) }}
}

// capture keeps every payload a worker writes, decompressed.
type capture struct{ payloads [][]byte }

func (w *Worker) flushTo(t *testing.T, c *capture) {
	t.Helper()
	if w.inBatch == 0 {
		return
	}
	var buf bytes.Buffer
	w.zw.Reset(&buf)
	w.payload = append(w.payload, ']')
	_, err := w.zw.Write(w.payload)
	require.NoError(t, err)
	require.NoError(t, w.zw.Close())
	zr, err := gzip.NewReader(&buf)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	c.payloads = append(c.payloads, plain)
	w.payload, w.inBatch = w.payload[:0], 0
}

// TestFloorWritesEveryEventAsValidLog checks that the loop does the work it
// claims: every generated event becomes one valid Datadog log carrying its
// message and id, in payloads of at most LogsPerPayload.
func TestFloorWritesEveryEventAsValidLog(t *testing.T) {
	cfg := benchConfig()
	c, err := NewCorpus(cfg, 3000)
	require.NoError(t, err)
	require.GreaterOrEqual(t, c.Events, 3000)

	g, err := loadgen.NewGenerator(cfg)
	require.NoError(t, err)
	var want []loadgen.Event
	for len(want) < c.Events {
		req, err := g.NextRequest()
		require.NoError(t, err)
		want = append(want, req.Events...)
	}

	w := NewWorker()
	var got capture
	for _, rec := range c.Records {
		w.src.Reset(nil)
		// Record flushes full payloads itself; capture them by flushing
		// before a record could fill one.
		if w.inBatch > LogsPerPayload-cfg.EventsPerRecord {
			w.flushTo(t, &got)
		}
		require.NoError(t, w.Record(rec))
	}
	w.flushTo(t, &got)

	var logs []map[string]any
	for _, p := range got.payloads {
		var batch []map[string]any
		require.NoError(t, json.Unmarshal(p, &batch), "payload is JSON")
		assert.LessOrEqual(t, len(batch), LogsPerPayload)
		logs = append(logs, batch...)
	}
	require.Len(t, logs, c.Events)
	assert.Equal(t, c.Events, w.Logs)
	withAttrs := 0
	for i, l := range logs {
		assert.Equal(t, want[i].Message, l["message"], "log %d", i)
		assert.Equal(t, want[i].ID, l["id"], "log %d", i)
		if _, ok := l["apigateway"].(map[string]any); ok {
			withAttrs++
		}
	}
	assert.Greater(t, withAttrs, len(logs)/2, "most messages are valid JSON whose fields are attributes")
}

func TestRunCountsEvents(t *testing.T) {
	c, err := NewCorpus(benchConfig(), 1000)
	require.NoError(t, err)
	r, err := Run(c, 2)
	require.NoError(t, err)
	assert.Equal(t, 2*c.Events, r.Events)
	assert.Positive(t, r.OutBytes)
}

// BenchmarkFloor reports the floor's events per CPU-second (run with -cpu 1).
func BenchmarkFloor(b *testing.B) {
	c, err := NewCorpus(benchConfig(), 20000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var r Result
	for b.Loop() {
		if r, err = Run(c, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.EventsPerCPUSecond(), "events/cpu-s")
}
