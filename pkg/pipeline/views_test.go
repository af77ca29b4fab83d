package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/telemetry/openmetrics"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/testkit/promcheck"
)

// The views tests hold the OpenMetrics endpoint and DogStatsD
// self-telemetry against /status, under real traffic: every series of one
// view is in the others with the same value.

// get is the body of a GET of url.
func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// serveGet is the body of a GET of path from h (a listener closed by the
// shutdown).
func serveGet(t *testing.T, h http.Handler, path string) []byte {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	require.Equal(t, http.StatusOK, w.Code, path)
	return w.Body.Bytes()
}

// flatten flattens a /status document to "stages.<name>.<field>",
// "counters.<name>", "gauges.<name>", "latencies.<name>.<field>" and so on.
func flatten(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	flat := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(prefix+k+".", x)
			}
		case []any:
			for _, x := range v {
				m := x.(map[string]any)
				name := m["name"].(string)
				for k, f := range m {
					if k != "name" {
						walk(prefix+name+".", map[string]any{k: f})
					}
				}
			}
		default:
			flat[strings.TrimSuffix(prefix, ".")] = v
		}
	}
	walk("", doc)
	return flat
}

// statusKey is where /status shows a series: stages.<stage>.<field> for
// the stage families, else <section>.<telemetry.Key>.
func statusKey(f telemetry.Family, labelValues []string) string {
	if field, ok := strings.CutPrefix(f.Name, "stage."); ok && slices.Equal(f.LabelKeys, []string{telemetry.StageLabel}) {
		return "stages." + labelValues[0] + "." + field
	}
	switch f.Kind {
	case telemetry.KindHistogram:
		return "latencies." + telemetry.Key(f.Name, labelValues) + ".count"
	case telemetry.KindGauge:
		return "gauges." + telemetry.Key(f.Name, labelValues)
	}
	return "counters." + telemetry.Key(f.Name, labelValues)
}

// assertMetricsAgreeWithStatus parses a /metrics body with Prometheus's
// text parser and checks that every sample is in /status with the same
// value, and that every counter, gauge and latency count of /status is in
// /metrics (a gauge only while known). meta tells each family's label
// order; the values come from the two documents only.
func assertMetricsAgreeWithStatus(t *testing.T, metrics []byte, status map[string]any, meta telemetry.Snapshot) {
	t.Helper()
	fams, err := promcheck.Parse(strings.NewReader(string(metrics)))
	require.NoError(t, err)
	byName := map[string]telemetry.Family{}
	for _, f := range meta.Families {
		byName[openmetrics.Name(f)] = f
	}
	seen := map[string]bool{}
	for name, pf := range fams {
		f, ok := byName[name]
		if !assert.True(t, ok, "/metrics has %s, which no component registered", name) {
			continue
		}
		for _, m := range pf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			values := make([]string, len(f.LabelKeys))
			for i, k := range f.LabelKeys {
				values[i] = labels[k]
			}
			key := statusKey(f, values)
			seen[key] = true
			var got float64
			switch pf.GetType() {
			case dto.MetricType_COUNTER:
				got = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				got = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				got = float64(m.GetHistogram().GetSampleCount())
			}
			want, ok := status[key]
			if assert.True(t, ok, "/metrics %s{%s} is not in /status (%s)", name, promcheck.LabelKey(m), key) {
				assert.EqualValues(t, want, got, "/metrics %s{%s} against /status %s", name, promcheck.LabelKey(m), key)
			}
		}
	}
	for key, v := range status {
		section, _, _ := strings.Cut(key, ".")
		switch {
		case section == "counters", section == "gauges", section == "stages" && !strings.HasSuffix(key, ".queue_depth"),
			section == "latencies" && strings.HasSuffix(key, ".count"):
			assert.True(t, seen[key], "/status %s = %v is not in /metrics", key, v)
		case section == "stages":
			assert.Equal(t, v.(float64) >= 0, seen[key], "/status %s = %v: in /metrics while known", key, v)
		}
	}
}

// TestMetricsEndpointAgreesWithStatus: real traffic through the Firehose
// endpoint into the fake intake (generated requests; requests refused,
// duplicated, dead-lettered by decode and by the intake; control
// messages; a metric stream), then /status and /metrics (on both
// listeners, through Prometheus's text parser) at a quiescent moment, and
// again after the shutdown: every counter, gauge and latency count agrees.
func TestMetricsEndpointAgreesWithStatus(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Admin.HealthListen = "127.0.0.1:0"
		// Nothing that time drives changes a figure while the test reads
		// them: windows and request summaries wait for the drain.
		c.Metrics.AllowedLateness = time.Hour
		c.Parse.Correlation.MaxAge = time.Hour
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadgen.Run(ctx, loadConfig(h, 5_000, 3))
	require.NoError(t, err)
	require.Zero(t, rep.RequestsFailed)

	send := func(id string, body []byte, headers map[string]string) int {
		status, _ := firehoseRequest(t, h.url, id, body, headers)
		return status
	}
	truncated := gz(accessEnvelope("x1"))
	require.Equal(t, http.StatusOK, send("a", recordsBody("a", gz(accessEnvelope("a1", "a2")), gz(controlEnvelope()), truncated[:len(truncated)-8]), nil))
	require.Equal(t, http.StatusOK, send("a", recordsBody("a", gz(accessEnvelope("a1", "a2"))), nil), "a duplicate")
	require.Equal(t, http.StatusUnauthorized, send("k", recordsBody("k", gz(accessEnvelope("k1"))), map[string]string{"X-Amz-Firehose-Access-Key": "wrong"}))
	require.Equal(t, http.StatusBadRequest, send("j", []byte(`{"requestId":"j","records":[`), nil))
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 400, Count: 1, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointLogs}}))
	require.Equal(t, http.StatusOK, send("r", recordsBody("r", gz(accessEnvelope("r1"))), nil))
	h.intake.ClearFailure()
	stream := fmt.Sprintf(`{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway",`+
		`"metric_name":"Count","dimensions":{"ApiName":"petstore","Stage":"prod"},"timestamp":%d,"value":{"max":3,"min":0,"sum":30,"count":60},"unit":"Count"}`+"\n",
		time.Now().Add(-3*time.Minute).Truncate(time.Minute).UnixMilli())
	require.Equal(t, http.StatusOK, send("m", recordsBody("m", []byte(stream)), nil))

	// Quiescent: every request answered (after delivery), nothing in flight.
	require.NoError(t, h.p.rt.Drain(ctx))
	meta := h.p.Metrics().Snapshot()
	status := flatten(t, get(t, "http://"+h.p.AdminAddr()+"/status"))
	for _, addr := range []string{h.p.AdminAddr(), h.p.HealthAddr()} {
		assertMetricsAgreeWithStatus(t, get(t, "http://"+addr+"/metrics"), status, meta)
	}
	// Figures that must have moved for the comparison to mean something.
	for _, key := range []string{
		"counters.firehose.status.200", "counters.firehose.status.400", "counters.firehose.status.401", "counters.firehose.duplicate_requests",
		"counters.decode.control_messages", "stages.decode.dead_lettered", "stages.deliver-logs.dead_lettered",
		"counters.deliver_logs.logs_accepted", "counters.deliver_logs.logs_rejected", "counters.metricstream.datums.metric_stream",
		"counters.correlator.completed", "counters.enrich.records_tagged", "latencies.firehose.ack_latency.count", "gauges.memory.peak_bytes",
	} {
		assert.Positive(t, status[key], key)
	}

	h.shutdown(t)
	meta = h.p.Metrics().Snapshot()
	status = flatten(t, serveGet(t, h.p.adminHandler(), "/status"))
	assertMetricsAgreeWithStatus(t, serveGet(t, h.p.healthHandler(), "/metrics"), status, meta)
	assert.Positive(t, status["counters.deliver_metrics.series_accepted"], "the windows were flushed at the drain")
}

// TestSelfTelemetryAgreesWithStatusAfterAShutdown: DogStatsD reports every
// 200 ms while requests wait for an intake that is down; the drain's time
// runs out and the records are handed back, metric points lost. The counts
// sent add up, series by series, to /status's counters — handed_back and
// lost included, which only the last report, sent on close, carries — and
// the last gauges are /status's.
func TestSelfTelemetryAgreesWithStatusAfterAShutdown(t *testing.T) {
	sd := listenDogStatsD(t)
	h := start(t, func(c *config.Config) {
		c.Metrics.AllowedLateness = time.Hour
		c.Sources.Firehose.AckTimeout = time.Minute
		c.Metrics.Telemetry.Enabled = true
		c.Metrics.Telemetry.DogStatsDAddr = sd.conn.LocalAddr().String()
		// A few periodic reports before the last: a lost datagram would
		// make the counts fall short, so not too many.
		c.Metrics.Telemetry.Interval = 200 * time.Millisecond
		c.Metrics.Telemetry.Tags = []string{"worker:views-test"}
	})
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 503}))
	const requests = 4
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			id := fmt.Sprint("r", i)
			status, _ := firehoseRequest(t, h.url, id, recordsBody(id, gz(accessEnvelope(id+"-1", id+"-2"))), nil)
			assert.Equal(t, http.StatusServiceUnavailable, status)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, waitFor(ctx, func() bool { return h.intake.Stats().FailuresInjected > 0 }))
	require.NoError(t, waitFor(ctx, func() bool { return h.p.metrics.Value("stage.records_in", StageDeliverLogs) == 2*requests }))

	sctx, scancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer scancel()
	require.NoError(t, h.p.Shutdown(sctx))
	require.True(t, h.p.HandedBack())
	wg.Wait()

	sd.stop()
	counts, gauges := sd.counts, sd.gauges
	snap := h.p.Metrics().Snapshot()
	status := flatten(t, serveGet(t, h.p.adminHandler(), "/status"))
	require.Equal(t, float64(requests), status["stages.ingest.handed_back"])
	require.Positive(t, status["stages.derive.lost"])
	for _, f := range snap.Families {
		for _, s := range f.Series {
			var tags []string
			for i, k := range f.LabelKeys {
				tags = append(tags, k+":"+s.LabelValues[i])
			}
			slices.Sort(tags)
			name, key := "gwpipe."+f.Name, statusKey(f, s.LabelValues)
			// A key /status lacks reads as 0, as does a count never sent:
			// without this, a series /status omits would agree with nothing.
			if _, ok := status[key]; !ok && (f.Kind != telemetry.KindGauge || f.Known(s)) {
				t.Errorf("%s %v is not in /status (%s)", name, tags, key)
			}
			switch f.Kind {
			case telemetry.KindCounter:
				assert.EqualValues(t, status[key], counts[name+"|"+strings.Join(tags, ",")], "DogStatsD counts of %s %v against /status %s", name, tags, key)
			case telemetry.KindHistogram:
				assert.EqualValues(t, status[key], counts[name+".count|"+strings.Join(tags, ",")], "DogStatsD counts of %s.count %v against /status %s", name, tags, key)
			case telemetry.KindGauge:
				v, sent := gauges[name+"|"+strings.Join(tags, ",")]
				if f.Known(s) {
					assert.True(t, sent, "%s %v never sent", name, tags)
					assert.EqualValues(t, status[key], v, "the last DogStatsD gauge %s %v against /status %s", name, tags, key)
				} else {
					assert.False(t, sent, "%s %v is unknown: not sent", name, tags)
				}
			}
		}
	}
}
