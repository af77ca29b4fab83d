package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// dashboardPath is the Datadog dashboard shipped with the deployments.
var dashboardPath = filepath.Join("..", "..", "deployments", "datadog", "dashboard.json")

// queryMetric finds "<aggregator>:<metric>{filters} [by {tags}]" in a
// Datadog metric query.
var queryMetric = regexp.MustCompile(`(?:^|[^\w.])(?:avg|sum|min|max|count|p\d+):([A-Za-z][\w.]*)\{[^}]*\}(?:\s*by\s*\{([^}]*)\})?`)

// dashboardQuery is one metric a widget queries and the tags it groups by.
type dashboardQuery struct {
	metric string
	by     []string
}

// dashboardQueries returns every metric query of the dashboard: the values
// of every "query" and "q" key, wherever they are nested (timeseries,
// query values, toplists, formulas).
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(data, &doc))
	var out []dashboardQuery
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "query" || k == "q") {
					ms := queryMetric.FindAllStringSubmatch(s, -1)
					if len(ms) == 0 {
						t.Errorf("dashboard query %q names no metric this test can read", s)
					}
					for _, m := range ms {
						q := dashboardQuery{metric: m[1]}
						for tag := range strings.SplitSeq(m[2], ",") {
							if tag = strings.TrimSpace(tag); tag != "" {
								q.by = append(q.by, tag)
							}
						}
						out = append(out, q)
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	require.NotEmpty(t, out, "the dashboard queries no metric")
	return out
}

// dogstatsd records the metric names and tag keys of DogStatsD datagrams,
// and adds up the counts and keeps the last gauge of each series (by
// "name|tags", the tags sorted, the worker's left out).
type dogstatsd struct {
	conn net.PacketConn
	done chan struct{}

	mu      sync.Mutex
	metrics map[string]map[string]bool // name → tag keys
	counts  map[string]float64
	gauges  map[string]float64
}

func listenDogStatsD(t *testing.T) *dogstatsd {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	if u, ok := conn.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(8 << 20) // a report is a burst of datagrams
	}
	d := &dogstatsd{conn: conn, done: make(chan struct{}), metrics: map[string]map[string]bool{}, counts: map[string]float64{}, gauges: map[string]float64{}}
	go d.read()
	t.Cleanup(func() { conn.Close(); <-d.done })
	return d
}

func (d *dogstatsd) read() {
	defer close(d.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		d.mu.Lock()
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			keys := d.metrics[name]
			if keys == nil {
				keys = map[string]bool{}
				d.metrics[name] = keys
			}
			var tags []string
			for field := range strings.SplitSeq(rest, "|") {
				if list, ok := strings.CutPrefix(field, "#"); ok {
					for tag := range strings.SplitSeq(list, ",") {
						k, _, _ := strings.Cut(tag, ":")
						keys[k] = true
						if k != "worker" {
							tags = append(tags, tag)
						}
					}
				}
			}
			d.add(name, tags, rest)
		}
		d.mu.Unlock()
	}
}

// add counts one datagram's value.
func (d *dogstatsd) add(name string, tags []string, rest string) {
	fields := strings.Split(rest, "|")
	if len(fields) < 2 {
		return
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return
	}
	slices.Sort(tags)
	key := name + "|" + strings.Join(tags, ",")
	switch fields[1] {
	case "c":
		d.counts[key] += v
	case "g":
		d.gauges[key] = v
	}
}

// stop waits for what was sent, then stops reading. The sender has
// flushed and closed its client: loopback datagrams are already in the
// socket buffer, and the short deadline only bounds the last, empty read.
func (d *dogstatsd) stop() map[string]map[string]bool {
	_ = d.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.metrics
}

// dashboardFamilies are where the dashboard's metrics come from; a query
// of any other metric fails, so that every one is checked by a test here.
var dashboardFamilies = []string{"gwpipe.", "apigateway.logs.", "aws.apigateway."}

func TestDashboardQueriesKnownMetrics(t *testing.T) {
	for _, q := range dashboardQueries(t) {
		if !slices.ContainsFunc(dashboardFamilies, func(f string) bool { return strings.HasPrefix(q.metric, f) }) {
			t.Errorf("%s: not a metric gwpipe emits (%v)", q.metric, dashboardFamilies)
		}
	}
}

// checkEmitted fails for every query of a family whose metric was not
// emitted, or not with a tag the widget groups by.
func checkEmitted(t *testing.T, family, where string, emitted map[string]map[string]bool) {
	t.Helper()
	var errs []error
	seen := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		key := q.metric + " by " + strings.Join(q.by, ",")
		if !strings.HasPrefix(q.metric, family) || seen[key] {
			continue
		}
		seen[key] = true
		tags, ok := emitted[q.metric]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: never sent to %s", q.metric, where))
			continue
		}
		for _, tag := range q.by {
			if !tags[tag] {
				errs = append(errs, fmt.Errorf("%s: grouped by %s, a tag it never carries (tags: %v)", q.metric, tag, slices.Sorted(maps.Keys(tags))))
			}
		}
	}
	require.NotEmpty(t, seen, "the dashboard queries no %s metric", family)
	require.NoError(t, errors.Join(errs...), "metrics the dashboard queries and gwpipe does not emit")
}

// seriesTags is what reached the metrics API: metric name → tag keys.
func seriesTags(h *harness) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(name string, tags []string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, tag := range tags {
			k, _, _ := strings.Cut(tag, ":")
			out[name][k] = true
		}
	}
	for _, p := range h.intake.Series() {
		add(p.Metric, p.Tags)
	}
	for _, p := range h.intake.Distributions() {
		add(p.Metric, p.Tags)
	}
	return out
}

// Every gwpipe.* metric the dashboard queries is in the DogStatsD output of
// a real run (self-telemetry through datadog-go, captured on a UDP port)
// with generated traffic flowing, with the tags the widgets group by.
func TestDashboardTelemetryIsEmitted(t *testing.T) {
	sd := listenDogStatsD(t)
	h := start(t, func(c *config.Config) {
		c.Metrics.Telemetry.Enabled = true
		c.Metrics.Telemetry.DogStatsDAddr = sd.conn.LocalAddr().String()
		c.Metrics.Telemetry.Interval = 50 * time.Millisecond
		c.Metrics.Telemetry.Tags = []string{"worker:dashboard-test"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadgen.Run(ctx, loadConfig(h, 20_000, 7))
	require.NoError(t, err)
	require.Zero(t, rep.RequestsFailed)

	// Shutting down sends a last report and closes the client.
	h.shutdown(t)
	checkEmitted(t, "gwpipe.", "DogStatsD", sd.stop())
}

// Every apigateway.logs.* and aws.apigateway.* metric the dashboard queries
// reaches the metrics API (the fake intake) from real traffic: generated
// requests, the access-log lines of what the generator does not produce
// (WebSocket, cache, integration errors), and a metric stream, with the
// stage's name and tags read from API Gateway (moto).
func TestDashboardAPIGatewayMetricsAreEmitted(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto_server")
	}
	moto.Start(t)
	apiID := restStage(t, "petstore", "prod", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	h := start(t, func(c *config.Config) {
		c.Enrich.AWSTags = true
		c.Enrich.MaxWait = 10 * time.Second // moto answers in time: no partial tags
	})

	// The stage's tags are read from moto before the lines that need them:
	// a first line asks for them, and the others follow once they are
	// cached. Asked for by those lines themselves, moto's answers (several
	// calls, at most 10 a second) can come after enrich.max_wait (10 s,
	// its highest) on a loaded machine, and the lines go on without the
	// API's name (partial): the test failed so under CPU load.
	warm := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/%s/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`+
		`{"id":"warm","timestamp":%d,"message":"{\"requestId\":\"warm\",\"apiId\":\"%s\",\"stage\":\"prod\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200}"}]}`,
		apiID, time.Now().UnixMilli(), apiID)
	status, resp := firehoseRequest(t, h.url, "dashboard-warm", recordsBody("dashboard-warm", gz([]byte(warm))), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	require.NoError(t, waitFor(ctx, func() bool { return h.p.Status().Gauges["awstags.stages"] >= 1 }),
		"the stage's tags are read from moto: %v", h.p.Status().Counters)

	// Access-log lines of the stage in moto (the generator's stages are
	// not there, so its metrics lack the API's name): one per kind of
	// request the dashboard shows by API, and the kinds the generator does
	// not make.
	now := time.Now().UnixMilli()
	lines := []string{
		`"httpMethod":"GET","resourcePath":"/pets","status":200,"cacheStatus":"hit","responseLatency":3,"responseLength":512`,
		`"httpMethod":"GET","resourcePath":"/pets","status":200,"cacheStatus":"miss","responseLatency":40`,
		`"httpMethod":"GET","resourcePath":"/pets","status":429,"responseLatency":1`,
		`"httpMethod":"GET","resourcePath":"/pets","status":502,"integrationErrorMessage":"Lambda timed out","integrationStatus":"504"`,
		`"eventType":"CONNECT","routeKey":"$connect","status":200`,
		`"eventType":"MESSAGE","routeKey":"sendmessage","status":200`,
		`"eventType":"MESSAGE","routeKey":"sendmessage","status":403`,
		`"eventType":"MESSAGE","routeKey":"sendmessage","status":500`,
		`"eventType":"DISCONNECT","routeKey":"$disconnect","status":200`,
	}
	var events strings.Builder
	for i, l := range lines {
		if i > 0 {
			events.WriteByte(',')
		}
		msg := fmt.Sprintf(`{"requestId":"dash-%d","apiId":%q,"stage":"prod",%s}`, i, apiID, l)
		fmt.Fprintf(&events, `{"id":"dash-%d","timestamp":%d,"message":%q}`, i, now, msg)
	}
	env := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/%s/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[%s]}`,
		apiID, events.String())
	status, resp = firehoseRequest(t, h.url, "dashboard-logs", recordsBody("dashboard-logs", gz([]byte(env))), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)

	// API Gateway's CloudWatch metrics, from a metric stream on the same
	// endpoint.
	ts := time.Now().Add(-3 * time.Minute).Truncate(time.Minute)
	var stream strings.Builder
	for _, m := range []string{"CacheHitCount", "CacheMissCount", "Count", "Latency"} {
		fmt.Fprintf(&stream, `{"metric_stream_name":"gwpipe","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway",`+
			`"metric_name":%q,"dimensions":{"ApiName":"petstore","Stage":"prod"},"timestamp":%d,"value":{"max":3,"min":0,"sum":30,"count":60},"unit":"Count"}`+"\n",
			m, ts.UnixMilli())
	}
	status, resp = firehoseRequest(t, h.url, "dashboard-metrics", recordsBody("dashboard-metrics", []byte(stream.String())), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)

	// The generator's traffic comes after the stage in moto has its tags:
	// AWS calls are limited to 10 a second, and the lookups of the
	// generator's stages (which moto does not know) would otherwise queue
	// ahead of it on a loaded machine, past max_wait.
	rep, err := loadgen.Run(ctx, loadConfig(h, 5_000, 11))
	require.NoError(t, err)
	require.Zero(t, rep.RequestsFailed)

	// Shutting down flushes every open window.
	h.shutdown(t)
	emitted := seriesTags(h)
	checkEmitted(t, "apigateway.logs.", "the metrics API", emitted)
	checkEmitted(t, "aws.apigateway.", "the metrics API", emitted)
}
