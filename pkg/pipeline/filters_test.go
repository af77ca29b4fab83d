package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// The filters tests run generated traffic (client IPv4 and IPv6 addresses
// in every access log), and lines carrying e-mail addresses, through the
// Firehose endpoint into the fake intake, with and without filters.

var emailRE = regexp.MustCompile(`[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+`)

// addrToken splits text into the runs an address could be.
var addrToken = regexp.MustCompile(`[0-9A-Fa-f:.]+`)

// addresses lists the IP and e-mail addresses in s (the masks are not).
func addresses(s string) []string {
	var out []string
	for _, tok := range addrToken.FindAllString(s, -1) {
		tok = strings.Trim(tok, ".:")
		for _, cand := range []string{tok, strings.TrimSuffix(tok, ":"+lastPart(tok))} {
			if strings.ContainsAny(cand, ".:") && net.ParseIP(cand) != nil {
				out = append(out, cand)
				break
			}
		}
	}
	for _, m := range emailRE.FindAllString(s, -1) {
		if m != filter.EmailMask {
			out = append(out, m)
		}
	}
	return out
}

// lastPart is what follows the last ':' (a port after an IPv4 address).
func lastPart(s string) string { return s[strings.LastIndexByte(s, ':')+1:] }

// strings of a delivered log: its message and every string attribute.
func logStrings(t *testing.T, l fakeintake.Log) []string {
	var m map[string]any
	require.NoError(t, json.Unmarshal(l.Raw, &m))
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(m)
	return out
}

// personalLines are access logs in the JSON format whose fields carry
// addresses of every form.
var personalLines = []string{
	`{\"requestId\":\"p1\",\"ip\":\"198.51.100.23\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200,\"caller\":\"jane.doe+api@example.co.uk\"}`,
	`{\"requestId\":\"p2\",\"ip\":\"2001:db8:85a3::8a2e:370:7334\",\"httpMethod\":\"POST\",\"resourcePath\":\"/orders\",\"status\":201,\"user\":\"bob@corp.example\"}`,
	`{\"requestId\":\"p3\",\"ip\":\"::ffff:192.0.2.44\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":404,\"userAgent\":\"curl/8.0 (contact admin@example.org from 10.1.2.3)\"}`,
}

func sendPersonal(t *testing.T, h *harness) {
	t.Helper()
	var envs [][]byte
	for i, l := range personalLines {
		// The lines are written escaped, as they sit in an envelope's
		// message: not a format (envelopeOf's would add its id to them).
		envs = append(envs, fmt.Appendf(nil, `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1b2c3d4e5/prod",`+
			`"logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"personal-%d","timestamp":%d,"message":"%s"}]}`,
			i, time.Now().UnixMilli(), l))
	}
	status, resp := firehoseRequest(t, h.url, "personal", gz(recordsBody("personal", envs...)), map[string]string{"Content-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, status, "%v", resp)
}

// run is one run of the same traffic: what the intake holds after the
// pipeline drained.
type run struct {
	logs    []fakeintake.Log
	metrics map[string]float64 // apigateway.logs.* totals by name and tags, whatever the window
	status  map[string]int64
	events  map[string]loadgen.Event
}

func runTraffic(t *testing.T, events int64, now time.Time, mutate ...func(*config.Config)) run {
	// Whether an execution-log summary counts (metrics.summaries auto)
	// depends on whether its stage's access logs reached derive first,
	// which varies from run to run whatever the filters: compare the
	// access logs' metrics alone.
	noSummaries := func(c *config.Config) { c.Metrics.Summaries = derive.SummariesNever }
	h := start(t, append([]func(*config.Config){noSummaries}, mutate...)...)
	var mu sync.Mutex
	sent := map[string]loadgen.Event{}
	cfg := loadConfig(h, events, 16)
	cfg.Mix = loadgen.Mix{JSON: 6, CLF: 2, Exec: 2}
	cfg.Clock = func() time.Time { return now } // the same events, ids included, in every run
	rep, err := loadgen.Run(context.Background(), cfg, loadgen.WithEventCallback(func(e *loadgen.Event) {
		mu.Lock()
		sent[e.ID] = *e
		mu.Unlock()
	}))
	require.NoError(t, err)
	require.Equal(t, events, rep.EventsAcked, "%+v", rep)
	sendPersonal(t, h)
	h.shutdown(t, "drained: every window flushed")
	r := run{logs: h.intake.Logs(), metrics: map[string]float64{}, status: h.p.Status().Counters, events: sent}
	key := func(name string, tags []string) string {
		tags = append([]string(nil), tags...)
		sort.Strings(tags)
		return name + "|" + strings.Join(tags, ",")
	}
	for _, p := range h.intake.Series() {
		if strings.HasPrefix(p.Metric, "apigateway.logs.") {
			r.metrics[key(p.Metric, p.Tags)] += p.Value
		}
	}
	for _, d := range h.intake.Distributions() {
		if strings.HasPrefix(d.Metric, "apigateway.logs.") {
			k := key(d.Metric, d.Tags)
			r.metrics[k+"|count"] += float64(len(d.Values))
			for _, v := range d.Values {
				r.metrics[k+"|sum"] += v
			}
		}
	}
	return r
}

// TestFiltersThroughFirehose: with redaction, an exclude expression, a drop
// matcher and a sample rule on, no address reaches the intake, excluded,
// dropped and sampled-out logs are absent and counted, the sampled
// fraction is the rate within statistical bounds and each kept sampled log
// carries its rate; and the metrics derived from logs are those of the
// same traffic without filters.
func TestFiltersThroughFirehose(t *testing.T) {
	const events = 20_000
	now := time.Now()
	plain := runTraffic(t, events, now)
	const sampleRate = 0.3
	filtered := runTraffic(t, events, now, func(c *config.Config) {
		c.Filters = filter.Config{
			Redact:         []string{"ip", "email"},
			ExcludeAtMatch: `/search`,
			Drop:           []filter.Matcher{{Name: "health", Route: "/health", Method: "GET", Status: new(200)}},
			Sample:         []filter.Sample{{Matcher: filter.Matcher{Name: "ok", StatusClass: "2xx"}, Rate: ptr(sampleRate)}},
		}
	})

	// The same traffic: the generator is deterministic by seed.
	require.Len(t, filtered.events, len(plain.events))
	for id, e := range plain.events {
		require.Equal(t, e.RequestID, filtered.events[id].RequestID, "event %s", id)
	}
	assert.Equal(t, plain.metrics, filtered.metrics, "apigateway.logs.* count every request, filtered or not")
	require.NotEmpty(t, plain.metrics)

	// Without filters the addresses are there (the check can fail)...
	var found, personal int
	for _, l := range plain.logs {
		if strings.HasPrefix(logID(l), "personal-") {
			personal++
		}
		for _, s := range logStrings(t, l) {
			found += len(addresses(s))
		}
	}
	require.Greater(t, found, events/2, "the traffic carries addresses")
	require.Equal(t, len(personalLines), personal, "the lines carrying every form of address are delivered")
	// ...with them, none is left, in the message or in any attribute.
	for _, l := range filtered.logs {
		for _, s := range logStrings(t, l) {
			require.Empty(t, addresses(s), "log %s: %q", logID(l), s)
		}
	}

	// Each log's fate, from its unfiltered delivery.
	var excluded, dropped, matched, sampledOut int
	want := map[string]bool{}
	withEmail := map[string]bool{}
	for _, l := range plain.logs {
		id := logID(l)
		for _, s := range logStrings(t, l) {
			if emailRE.MatchString(s) {
				withEmail[id] = true
			}
		}
		route, _ := attr(l, "http.route").(string)
		method, _ := attr(l, "http.method").(string)
		status, _ := attr(l, "http.status_code").(float64)
		reqID, _ := attr(l, "http.request_id").(string)
		switch {
		case strings.Contains(l.Message, "/search"):
			excluded++
		case route == "/health" && method == "GET" && status == 200:
			dropped++
		case status >= 200 && status < 300:
			matched++
			if !filter.Sampled([]byte(reqID), sampleRate) {
				sampledOut++
				continue
			}
			want[id] = true
		default:
			want[id] = true
		}
	}
	require.Positive(t, excluded)
	require.Positive(t, dropped)
	got := map[string]bool{}
	for _, l := range filtered.logs {
		got[logID(l)] = true
		status, _ := attr(l, "http.status_code").(float64)
		rate, has := attr(l, filter.KeySampleRate).(float64)
		if status >= 200 && status < 300 {
			assert.True(t, has, "log %s: kept by the sample rule, carries its rate", logID(l))
			assert.Equal(t, sampleRate, rate)
		} else {
			assert.False(t, has, "log %s: not sampled", logID(l))
		}
	}
	assert.Equal(t, want, got, "exactly the logs neither excluded, dropped nor sampled out")
	assert.EqualValues(t, excluded, filtered.status["filters.dropped.exclude_at_match"])
	assert.EqualValues(t, dropped, filtered.status["filters.dropped.health"])
	assert.EqualValues(t, matched, filtered.status["filters.matched.ok"])
	assert.EqualValues(t, sampledOut, filtered.status["filters.sampled_out.ok"])
	assert.Positive(t, filtered.status["filters.redacted.ip"])
	var emailed int
	for id := range want {
		if withEmail[id] {
			emailed++
		}
	}
	assert.EqualValues(t, emailed, filtered.status["filters.matched.email"], "logs with an e-mail address, kept")
	// Binomial: the kept fraction within 5 standard deviations.
	sd := math.Sqrt(float64(matched) * sampleRate * (1 - sampleRate))
	assert.InDelta(t, float64(matched)*sampleRate, float64(matched-sampledOut), 5*sd)
}

func ptr[T any](v T) *T { return &v }

// TestFiltersForwarderVariables: the Datadog Forwarder's variables work as
// they do in the Forwarder, through the configuration gwpipe loads.
func TestFiltersForwarderVariables(t *testing.T) {
	cfg, err := config.Load("", []string{
		"REDACT_IP=true", "REDACT_EMAIL=", // set, whatever the value: the Forwarder tests presence
		`DD_SCRUBBING_RULE=customer-\d+`, "DD_SCRUBBING_RULE_REPLACEMENT=customer-XXXX",
		`EXCLUDE_AT_MATCH="status":404`, `INCLUDE_AT_MATCH="httpMethod":"(GET|POST)"`,
	})
	require.NoError(t, err)
	h := start(t, func(c *config.Config) { c.Filters = cfg.Filters })
	lines := []string{
		`{\"requestId\":\"%s\",\"ip\":\"198.51.100.23\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200,\"caller\":\"customer-1234 a@b.io\"}`,
		`{\"requestId\":\"%s\",\"ip\":\"198.51.100.24\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":404}`,
		`{\"requestId\":\"%s\",\"ip\":\"198.51.100.25\",\"httpMethod\":\"PUT\",\"resourcePath\":\"/pets\",\"status\":200}`,
	}
	var envs [][]byte
	for i, l := range lines {
		envs = append(envs, envelopeOf(l, fmt.Sprint("fwd-", i)))
	}
	status, resp := firehoseRequest(t, h.url, "fwd", recordsBody("fwd", envs...), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	logs := h.intake.Logs()
	require.Len(t, logs, 1, "the 404 excluded (exclude wins), the PUT not included")
	assert.Equal(t, `{"requestId":"fwd-0","ip":"xxx.xxx.xxx.xxx","httpMethod":"GET","resourcePath":"/pets","status":200,"caller":"customer-XXXX xxxxx@xxxxx.com"}`, logs[0].Message)
	assert.Equal(t, "xxx.xxx.xxx.xxx", attr(logs[0], "network.client.ip"))
	st := h.p.Status().Counters
	assert.EqualValues(t, 1, st["filters.dropped.exclude_at_match"])
	assert.EqualValues(t, 1, st["filters.dropped.include_at_match"])
	assert.EqualValues(t, 1, st["filters.matched.dd_scrubbing_rule"])
}

// TestFiltersInvalidConfigRefused: gwpipe refuses to start on a filter it
// cannot apply as written, saying which key and why.
func TestFiltersInvalidConfigRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gwpipe.yaml")
	require.NoError(t, os.WriteFile(path, []byte("filters:\n  drop:\n    - rout: /health\n"), 0o600))
	_, err := config.Load(path, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 3: unknown key filters.drop[0].rout (did you mean filters.drop[0].route?)")

	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{`GWPIPE_FILTERS_SAMPLE=[{"status_class":"2xx","rate":1.5},{"status_class":"4xx"}]`},
			[]string{"filters.sample[0].rate: must be 0 to 1, got 1.5", "filters.sample[1].rate: is required"}},
		{[]string{`GWPIPE_FILTERS_REDACT=ip,phone`, `EXCLUDE_AT_MATCH=(?!health)`},
			[]string{`filters.redact[1]: must be ip or email, got "phone"`, "filters.exclude_at_match (set by EXCLUDE_AT_MATCH): invalid or unsupported Perl syntax"}},
		{[]string{`DD_SCRUBBING_RULE=(?<=token=)\w+`},
			[]string{"filters.rules[0].pattern (set by DD_SCRUBBING_RULE): invalid named capture", "RE2 syntax"}},
		{[]string{`GWPIPE_FILTERS_DROP=[{}]`}, []string{"filters.drop[0]: gives no field to match: it would drop every log"}},
	} {
		cfg, err := config.Load("", tc.env)
		require.NoError(t, err, "%v", tc.env)
		cfg.Datadog.APIKey = intakeKey
		cfg.Sources.Firehose.AccessKeys = []string{firehoseKey}
		cfg.DLQ.Dir = t.TempDir()
		_, err = New(cfg, nil, nil)
		require.Error(t, err, "%v", tc.env)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w)
		}
	}
}

// TestFleetSampleKeepsRequestsTogether: two deliver-logs workers on a
// broker sample by request id, so that a request's access log and its
// execution-log lines, whichever worker each reaches, are kept or dropped
// together, and exactly the requests the rate selects are kept.
func TestFleetSampleKeepsRequestsTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	f := newFleet(t, brokers[0].env(t))
	f.start("decode,parse,enrich")
	sample := `GWPIPE_FILTERS_SAMPLE=[{"name":"half","rate":0.5}]`
	deliver := []*worker{f.startWith(StageDeliverLogs, sample), f.startWith(StageDeliverLogs, sample)}
	f.start(StageIngest)

	const events = 10_000
	var mu sync.Mutex
	reqOf := map[string]string{} // event id → request id
	cfg := loadgen.Config{URL: f.ingest, AccessKey: firehoseKey, Events: events, Concurrency: 4, Seed: 17,
		RecordsPerRequest: 10, EventsPerRecord: 20, Mix: loadgen.Mix{JSON: 4, CLF: 2, Exec: 4},
		InitialBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, RetryDuration: 2 * time.Minute, RequestTimeout: 30 * time.Second}
	rep, err := loadgen.Run(context.Background(), cfg, loadgen.WithEventCallback(func(e *loadgen.Event) {
		mu.Lock()
		reqOf[e.ID] = e.RequestID
		mu.Unlock()
	}))
	require.NoError(t, err)
	require.EqualValues(t, events, rep.EventsAcked)

	want := map[string]bool{}
	lines := map[string]int{} // request id → its lines sent
	for id, req := range reqOf {
		require.NotEmpty(t, req)
		lines[req]++
		if filter.Sampled([]byte(req), 0.5) {
			want[id] = true
		}
	}
	counter := func(name string) float64 { return deliver[0].counter(name) + deliver[1].counter(name) }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, waitFor(ctx, func() bool {
		return counter("filters.matched.half") == events && f.intake.Stats().LogsAccepted >= int64(len(want))
	}), "matched %v of %d; %d of %d delivered", counter("filters.matched.half"), events, f.intake.Stats().LogsAccepted, len(want))
	for _, w := range deliver {
		assert.Positive(t, w.counter("filters.matched.half"), "each worker sampled a share")
	}
	got := map[string]bool{}
	keptLines := map[string]int{}
	for _, l := range f.intake.Logs() {
		id := logID(l)
		got[id] = true
		keptLines[reqOf[id]]++
		assert.Equal(t, 0.5, attr(l, filter.KeySampleRate), "log %s", id)
	}
	assert.Equal(t, want, got, "exactly the requests the rate selects, in every worker")
	for req, n := range keptLines {
		assert.Equal(t, lines[req], n, "request %s: all its lines kept, or none", req)
	}
	assert.EqualValues(t, events-len(want), counter("filters.sampled_out.half"))
	sd := math.Sqrt(float64(len(lines)) * 0.25)
	assert.InDelta(t, float64(len(lines))/2, float64(len(keptLines)), 5*sd, "requests kept")
}

// TestSummaryCountsFilteredLogs: logs the filters keep from Datadog are in
// the exit summary, by rule, so that the logs parsed add up to the logs
// delivered and filtered; the intake holds exactly the others.
func TestSummaryCountsFilteredLogs(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Metrics.AllowedLateness = time.Hour
		c.Filters = filter.Config{
			ExcludeAtMatch: `/search`,
			Drop:           []filter.Matcher{{Name: "n404", Status: new(404)}},
			Sample:         []filter.Sample{{Matcher: filter.Matcher{Name: "none", Route: "/sampled"}, Rate: ptr(0.0)}},
		}
	})
	const line = `{\"requestId\":\"%s\",\"httpMethod\":\"GET\",\"resourcePath\":\"%s\",\"status\":%d}`
	body := recordsBody("f",
		gz(envelopeOf(fmt.Sprintf(line, "%s", "/pets", 200), "k1", "k2", "k3")),
		gz(envelopeOf(fmt.Sprintf(line, "%s", "/search", 200), "x1", "x2")),
		gz(envelopeOf(fmt.Sprintf(line, "%s", "/pets", 404), "d1", "d2", "d3", "d4")),
		gz(envelopeOf(fmt.Sprintf(line, "%s", "/sampled", 200), "s1")))
	status, resp := firehoseRequest(t, h.url, "f", body, nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	h.shutdown(t)

	require.Len(t, h.intake.Logs(), 3, "k1-k3")
	sum := summaryLines(t, h.p)
	assert.Equal(t, "10 (with request summaries folded from execution logs)", sum["events parsed"])
	assert.Equal(t, "3", sum["logs delivered (2xx)"])
	assert.Equal(t, "6 dropped by filters (exclude_at_match 2, n404 4), 1 sampled out (none 1) (not sent to Datadog; counted in the metrics from logs)",
		sum["logs filtered"])
}

// TestScopedScrubbingWhileAWSIsUnreachable: a scrubbing rule scoped to an
// API or a stage scrubs the logs whose API or stage could not be learned
// from AWS (their tags partial): they may be in its scope, and their
// secrets must not reach Datadog while AWS does not answer. A log whose
// API is known, another, is left as it is.
func TestScopedScrubbingWhileAWSIsUnreachable(t *testing.T) {
	moto.Unreachable(t) // every read fails: tags are partial
	h := start(t, func(c *config.Config) {
		c.Enrich.AWSTags = true
		c.Enrich.MaxWait = 10 * time.Millisecond
		c.Filters = filter.Config{Rules: []filter.Rule{
			{Name: "by_api", Pattern: `APISECRET\w+`, Replace: "[api]", APIIDs: []string{"a1b2c3d4e5"}},
			{Name: "by_stage", Pattern: `STAGESECRET\w+`, Replace: "[stage]", Stages: []string{"live"}},
		}}
	})
	envelope := func(group, id string) []byte {
		return fmt.Appendf(nil, `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":%q,"logStream":"s","subscriptionFilters":["f"],`+
			`"logEvents":[{"id":%q,"timestamp":%d,"message":"%s 203.0.113.7 GET /orders 200 APISECRET1 STAGESECRET2"}]}`, group, id, time.Now().UnixMilli(), id)
	}
	body := recordsBody("s",
		gz(envelope("/custom/orders", "unknown")),                           // a custom access-log group: its stage is known from AWS only
		gz(envelope("API-Gateway-Execution-Logs_b2c3d4e5f6/prod", "other"))) // API and stage named by the group
	status, resp := firehoseRequest(t, h.url, "s", body, nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	h.shutdown(t)

	byID := map[string]fakeintake.Log{}
	for _, l := range h.intake.Logs() {
		byID[strings.Fields(l.Message)[0]] = l
	}
	require.Len(t, byID, 2)
	unknown, other := byID["unknown"], byID["other"]
	require.Contains(t, unknown.Tags, "gwpipe_tags:partial", "AWS did not answer")
	assert.Equal(t, "unknown 203.0.113.7 GET /orders 200 [api] [stage]", unknown.Message, "its API and stage unknown: scrubbed")
	assert.Contains(t, other.Tags, "apiid:b2c3d4e5f6")
	assert.Contains(t, other.Message, "APISECRET1 STAGESECRET2", "another API, another stage: not in the scopes")
}
