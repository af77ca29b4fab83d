package openmetrics_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/telemetry/openmetrics"
	"github.com/gwpipe/gwpipe/pkg/testkit/promcheck"
)

func scrape(t testing.TB, reg *telemetry.Registry, accept string) (string, string) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	openmetrics.Handler(reg, nil).ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	return w.Body.String(), w.Header().Get("Content-Type")
}

func TestNames(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	reg.Counter("firehose.status", "Requests answered.", telemetry.L("code", "200")).Add(2)
	reg.Gauge("memory.held_bytes", "Bytes held.").Set(7)
	reg.Histogram("firehose.ack_latency", "Ack latency.").Observe(30 * time.Millisecond)
	reg.Stage("ingest").RecordsIn.Add(3)

	body, ctype := scrape(t, reg, "")
	assert.Contains(t, ctype, "text/plain")
	for _, line := range []string{
		"# TYPE gwpipe_firehose_status_total counter",
		`gwpipe_firehose_status_total{code="200"} 2`,
		"# HELP gwpipe_memory_held_bytes Bytes held.",
		"gwpipe_memory_held_bytes 7",
		"# TYPE gwpipe_firehose_ack_latency_seconds histogram",
		`gwpipe_firehose_ack_latency_seconds_bucket{le="0.025"} 0`,
		`gwpipe_firehose_ack_latency_seconds_bucket{le="0.05"} 1`,
		"gwpipe_firehose_ack_latency_seconds_count 1",
		"gwpipe_firehose_ack_latency_seconds_sum 0.03",
		`gwpipe_stage_records_in_total{stage="ingest"} 3`,
	} {
		assert.Contains(t, body, line+"\n")
	}
	assert.NotContains(t, body, "gwpipe_stage_queue_depth", "a source's queue depth is unknown: not exposed")

	// A scraper that asks for OpenMetrics gets it.
	body, ctype = scrape(t, reg, "application/openmetrics-text;version=1.0.0")
	assert.Contains(t, ctype, "application/openmetrics-text")
	assert.True(t, strings.HasSuffix(body, "# EOF\n"))
	assert.Contains(t, body, `gwpipe_firehose_status_total{code="200"} 2`)
}

// FuzzExpositionAgreesWithRegistry: whatever is registered and counted, the
// exposition parsed by Prometheus's text parser holds every series of the
// registry's snapshot with the same value, and nothing else; and /status's
// view holds the same values.
func FuzzExpositionAgreesWithRegistry(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte{3, 200, 3, 0, 9, 255, 1, 1, 6, 17, 6, 250})
	f.Add(bytes.Repeat([]byte{5, 80}, 40))
	f.Fuzz(func(t *testing.T, ops []byte) {
		reg := telemetry.NewRegistry()
		values := []string{"a", "deliver-logs", `q"u\ote`, "x y", "ünï"}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], int64(ops[i+1])
			v := values[int(op)/8%len(values)]
			switch op % 8 {
			case 0:
				reg.Counter("a.count", "A counter.").Add(arg)
			case 1:
				reg.Counter("b.by_code", "Labelled.", telemetry.L("code", v)).Add(arg)
			case 2:
				reg.Gauge("c.level", "A gauge.", telemetry.L("k", v)).Set(arg - 100)
			case 3:
				reg.Histogram("d.latency", "A histogram.", telemetry.L("k", v)).Observe(time.Duration(arg*arg*arg) * time.Millisecond)
			case 4:
				st := reg.Stage(v)
				st.RecordsIn.Add(arg)
				st.QueueDepth.Set(arg%3 - 1) // -1: unknown
			case 5:
				n := arg
				reg.CounterFunc("e.read", "Read at collection.", func() int64 { return n }, telemetry.L("k", v))
			case 6:
				reg.GaugeFunc("f.read", "Read at collection.", func() int64 { return -n(arg) })
			case 7:
				reg.Histogram("g.empty", "Never observed.")
			}
		}
		body, _ := scrape(t, reg, "")
		fams, err := promcheck.Parse(strings.NewReader(body))
		require.NoError(t, err, body)
		snap := reg.Snapshot()
		if err := promcheck.Agree(snap, fams); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}

		st := snap.Status()
		for _, fam := range snap.Families {
			for _, s := range fam.Series {
				key := telemetry.Key(fam.Name, s.LabelValues)
				switch {
				case strings.HasPrefix(fam.Name, "stage."):
				// A key missing from /status reads as 0, as a zero series
				// does: check that it is there before comparing.
				case fam.Kind == telemetry.KindCounter:
					v, ok := st.Counters[key]
					assert.True(t, ok, "counter %s not in /status", key)
					assert.Equal(t, s.Value, v, key)
				case fam.Kind == telemetry.KindGauge:
					v, ok := st.Gauges[key]
					assert.True(t, ok, "gauge %s not in /status", key)
					assert.Equal(t, s.Value, v, key)
				default:
					q, ok := st.Latencies[key]
					assert.True(t, ok, "histogram %s not in /status", key)
					assert.Equal(t, s.Value, q.Count, key)
				}
			}
		}
	})
}

func n(v int64) int64 { return v }
