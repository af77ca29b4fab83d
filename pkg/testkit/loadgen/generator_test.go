package loadgen

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

const uuidRe = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

var (
	// The Datadog-recommended format, numbers unquoted, a bare - when missing.
	jsonAccessRe = regexp.MustCompile(`^\{"apiId":"([a-z0-9]{10})","stage":"([a-z0-9]+)","requestId":"(` + uuidRe + `)","ip":"([0-9a-f.:]+)","caller":"([^"]+)","user":"([^"]+)","requestTime":(\d{13}),"httpMethod":"(GET|POST|PUT|PATCH|DELETE|OPTIONS)","resourcePath":"(/[^"]*)","status":(\d{3}),"protocol":"HTTP/1\.1","responseLength":(\d+|-)\}$`)
	// The console's REST CLF format.
	clfAccessRe   = regexp.MustCompile(`^([0-9a-f.:]+) (\S+) (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(GET|POST|PUT|PATCH|DELETE|OPTIONS) (/\S*) HTTP/1\.1" (\d{3}) (\d+|-) (` + uuidRe + `) ([A-Za-z0-9]{15}=)$`)
	execLineRe    = regexp.MustCompile(`^\((` + uuidRe + `)\) (.+)$`)
	execGroupRe   = regexp.MustCompile(`^API-Gateway-Execution-Logs_([a-z0-9]{10})/([a-z0-9]+)$`)
	accessGroupRe = regexp.MustCompile(`^/aws/api-gateway/([a-z0-9]{10})/([a-z0-9]+)$`)
	streamRe      = regexp.MustCompile(`^[0-9a-f]{32}$`)
	eventIDRe     = regexp.MustCompile(`^[0-9]{56}$`)
	sourceARNRe   = regexp.MustCompile(`^arn:aws:firehose:([a-z0-9-]+):(\d{12}):deliverystream/([A-Za-z0-9_.-]+)$`)
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		errs   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"bad url", func(c *Config) { c.URL = "localhost:8088" }, []string{"url"}},
		{"negative events", func(c *Config) { c.Events = -1 }, []string{"events"}},
		{"negative rate", func(c *Config) { c.Rate = -5 }, []string{"rate"}},
		{"too many records", func(c *Config) { c.RecordsPerRequest = 10001 }, []string{"records per request"}},
		{"too many events", func(c *Config) { c.EventsPerRecord = -1 }, []string{"events per record"}},
		{"fewer apis than accounts", func(c *Config) { c.Accounts, c.APIs = 5, 4 }, []string{"apis"}},
		{"control rate", func(c *Config) { c.ControlRate = 2 }, []string{"control rate"}},
		{"gzip level", func(c *Config) { c.GzipLevel = 12 }, []string{"gzip level"}},
		{"direct without access kinds", func(c *Config) { c.Direct, c.Mix = true, Mix{Exec: 1} }, []string{"direct mode"}},
		{"backoff", func(c *Config) { c.InitialBackoff, c.MaxBackoff = time.Second, time.Millisecond }, []string{"backoff"}},
		{"several", func(c *Config) { c.Concurrency, c.Stages = -1, 1000 }, []string{"concurrency", "stages"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if len(tt.errs) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.errs {
				assert.Contains(t, err.Error(), want)
			}
			_, gerr := NewGenerator(cfg)
			assert.Error(t, gerr)
		})
	}
}

func TestParseMix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Mix
		err  bool
	}{
		{"json=6,clf=2,exec=2", Mix{6, 2, 2}, false},
		{" JSON = 1 , execution=3", Mix{JSON: 1, Exec: 3}, false},
		{"clf=1", Mix{CLF: 1}, false},
		{"", Mix{}, true},
		{"json", Mix{}, true},
		{"json=-1", Mix{}, true},
		{"json=0,clf=0", Mix{}, true},
		{"xml=1", Mix{}, true},
		{"json=1,json=2", Mix{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseMix(tt.in)
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, m)
			var back Mix
			require.NoError(t, back.Set(m.String()))
			assert.Equal(t, m, back)
		})
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	t.Parallel()
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			cfg := testConfig()
			cfg.Direct = direct
			cfg.GzipBody = true
			cfg.ControlRate = 0.3
			a, b := mustGenerator(t, cfg), mustGenerator(t, cfg)
			cfg.Seed++
			c := mustGenerator(t, cfg)
			differ := false
			for range 30 {
				ra, rb, rc := mustNext(t, a), mustNext(t, b), mustNext(t, c)
				require.Equal(t, ra.Body, rb.Body)
				require.Equal(t, ra.Header, rb.Header)
				require.Equal(t, ra.Events, rb.Events)
				differ = differ || ra.ID != rc.ID
			}
			assert.True(t, differ, "another seed gives other traffic")
		})
	}
}

func TestEventIDsUnique(t *testing.T) {
	t.Parallel()
	seen := make(map[string]struct{}, 200_000)
	for _, cfg := range []Config{
		{Seed: 1, Clock: fixedClock},
		{Seed: 2, Clock: fixedClock},              // another seed, same clock
		{Seed: 1, Instance: 1, Clock: fixedClock}, // same seed, another instance
		{Seed: 1, Direct: true, Clock: fixedClock, Instance: 2},
	} {
		g := mustGenerator(t, cfg)
		for _, ev := range collect(t, g, 100_000) {
			require.Regexp(t, eventIDRe, ev.ID)
			_, dup := seen[ev.ID]
			require.False(t, dup, "duplicate id %s (seed %d instance %d)", ev.ID, cfg.Seed, cfg.Instance)
			seen[ev.ID] = struct{}{}
		}
	}
}

// TestRequestsDecode decodes requests as an endpoint would and checks them
// against Request.Events.
func TestRequestsDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"cloudwatch", func(*Config) {}},
		{"cloudwatch gzip body and access key", func(c *Config) { c.GzipBody, c.AccessKey = true, "s3cr3t" }},
		{"cloudwatch control messages", func(c *Config) { c.ControlRate = 0.5 }},
		{"cloudwatch one event per record", func(c *Config) { c.EventsPerRecord = 1 }},
		{"cloudwatch exec only", func(c *Config) { c.Mix = Mix{Exec: 1} }},
		{"direct", func(c *Config) { c.Direct = true }},
		{"direct gzip body", func(c *Config) { c.Direct, c.GzipBody = true, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.mutate(&cfg)
			g := mustGenerator(t, cfg)
			controls := 0
			for range 40 {
				req := mustNext(t, g)
				controls += req.Controls
				checkRequest(t, g.Config(), req)
			}
			if cfg.ControlRate > 0 {
				assert.Positive(t, controls, "some control messages")
			} else {
				assert.Zero(t, controls)
			}
		})
	}
}

func checkRequest(t *testing.T, cfg Config, req *Request) {
	t.Helper()
	h := req.Header
	assert.Equal(t, "1.0", h.Get(HeaderProtocolVersion))
	assert.Equal(t, req.ID, h.Get(HeaderRequestID))
	assert.Equal(t, req.SourceARN, h.Get(HeaderSourceARN))
	assert.Equal(t, "application/json", h.Get("Content-Type"))
	if cfg.AccessKey != "" {
		assert.Equal(t, cfg.AccessKey, h.Get(HeaderAccessKey))
	} else {
		assert.NotContains(t, h, HeaderAccessKey)
	}
	if cfg.GzipBody {
		assert.Equal(t, "gzip", h.Get("Content-Encoding"))
	}
	m := sourceARNRe.FindStringSubmatch(req.SourceARN)
	require.NotNil(t, m, req.SourceARN)
	assert.Equal(t, []string{req.Region, req.Account, req.Stream}, m[1:])
	if cfg.Direct {
		assert.True(t, strings.HasPrefix(req.Stream, "amazon-apigateway-"), req.Stream)
	} else {
		assert.Equal(t, cfg.StreamName, req.Stream)
	}

	d := decodeWire(t, h, req.Body, cfg.Direct)
	assert.Regexp(t, "^"+uuidRe+"$", d.body.RequestID)
	assert.Equal(t, req.ID, d.body.RequestID)
	assert.Equal(t, testNow.UnixMilli(), d.body.Timestamp)
	assert.Equal(t, req.Timestamp, d.body.Timestamp)
	require.Len(t, d.body.Records, req.Records)
	assert.LessOrEqual(t, req.Records, cfg.RecordsPerRequest)

	if cfg.Direct {
		require.Len(t, req.Events, req.Records)
		for i, line := range d.lines {
			ev := req.Events[i]
			assert.Equal(t, ev.Message+"\n", line)
			assert.Empty(t, ev.LogGroup)
			assert.Empty(t, ev.LogStream)
			assert.Equal(t, req.Account, ev.Account)
			assert.Equal(t, "amazon-apigateway-"+ev.APIName+"-"+ev.Stage, req.Stream)
			checkAccessLine(t, ev)
		}
		return
	}

	i, controls := 0, 0
	for _, env := range d.envelopes {
		if env.MessageType == "CONTROL_MESSAGE" {
			controls++
			assert.Equal(t, corpus.Envelope{
				MessageType: "CONTROL_MESSAGE", Owner: "CloudwatchLogs", SubscriptionFilters: []string{},
				LogEvents: []corpus.LogEvent{{ID: "", Timestamp: req.Timestamp, Message: ControlMessage}},
			}, env)
			continue
		}
		require.Equal(t, "DATA_MESSAGE", env.MessageType)
		assert.Equal(t, req.Account, env.Owner)
		assert.Equal(t, []string{cfg.FilterName}, env.SubscriptionFilters)
		assert.Contains(t, []string{"", "ACCOUNT_LEVEL_POLICY"}, env.PolicyLevel)
		assert.Regexp(t, streamRe, env.LogStream)
		require.NotEmpty(t, env.LogEvents)
		assert.LessOrEqual(t, len(env.LogEvents), cfg.EventsPerRecord)
		for _, le := range env.LogEvents {
			require.Less(t, i, len(req.Events), "more events on the wire than in Request.Events")
			ev := req.Events[i]
			i++
			assert.Equal(t, ev.ID, le.ID)
			assert.Equal(t, ev.Timestamp, le.Timestamp)
			assert.Equal(t, ev.Message, le.Message)
			assert.Equal(t, ev.LogGroup, env.LogGroup)
			assert.Equal(t, ev.LogStream, env.LogStream)
			assert.Equal(t, req.Account, ev.Account)
			assert.InDelta(t, req.Timestamp, ev.Timestamp, 60_000, "event time near now")
			assert.LessOrEqual(t, ev.Timestamp, req.Timestamp)
			var gm []string
			if ev.Kind == Execution {
				gm = execGroupRe.FindStringSubmatch(env.LogGroup)
				checkExecLine(t, ev)
			} else {
				gm = accessGroupRe.FindStringSubmatch(env.LogGroup)
				checkAccessLine(t, ev)
			}
			require.NotNil(t, gm, "log group %q for %v", env.LogGroup, ev.Kind)
			assert.Equal(t, []string{ev.APIID, ev.Stage}, gm[1:])
		}
	}
	assert.Equal(t, len(req.Events), i, "Request.Events are exactly the events on the wire")
	assert.Equal(t, req.Controls, controls)
}

// checkAccessLine checks an access-log line against its event.
func checkAccessLine(t *testing.T, ev Event) {
	t.Helper()
	length := "-"
	if ev.ResponseLength >= 0 {
		length = strconv.Itoa(ev.ResponseLength)
	}
	switch ev.Kind {
	case AccessJSON:
		m := jsonAccessRe.FindStringSubmatch(ev.Message)
		require.NotNil(t, m, "JSON access line %q", ev.Message)
		assert.Equal(t, []string{ev.APIID, ev.Stage, ev.RequestID, ev.IP, ev.Caller, ev.User,
			strconv.FormatInt(ev.RequestTimeMs, 10), ev.Method, ev.Resource, strconv.Itoa(ev.Status), length}, m[1:])
		if ev.ResponseLength >= 0 {
			var v map[string]any
			require.NoError(t, json.Unmarshal([]byte(ev.Message), &v), "valid JSON unless a number is missing")
		} else {
			assert.True(t, strings.HasSuffix(ev.Message, `"responseLength":-}`))
		}
	case AccessCLF:
		m := clfAccessRe.FindStringSubmatch(ev.Message)
		require.NotNil(t, m, "CLF access line %q", ev.Message)
		ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[4])
		require.NoError(t, err)
		assert.Equal(t, ev.RequestTimeMs/1000, ts.Unix())
		assert.Equal(t, []string{ev.IP, ev.Caller, ev.User, ev.Method, ev.Resource, strconv.Itoa(ev.Status), length,
			ev.RequestID, ev.ExtendedRequestID}, append(m[1:4:4], m[5:]...))
	default:
		t.Fatalf("access line of kind %v", ev.Kind)
	}
	assert.Equal(t, ev.RequestTimeMs+int64(ev.LatencyMs), ev.Timestamp, "access log written at completion")
	assert.Empty(t, ev.ExecEvent)
}

func checkExecLine(t *testing.T, ev Event) {
	t.Helper()
	m := execLineRe.FindStringSubmatch(ev.Message)
	require.NotNil(t, m, "execution line %q", ev.Message)
	assert.Equal(t, ev.RequestID, m[1])
	assert.NotEmpty(t, ev.ExecEvent)
	assert.GreaterOrEqual(t, ev.Timestamp, ev.RequestTimeMs)
	assert.LessOrEqual(t, ev.Timestamp, ev.RequestTimeMs+int64(ev.LatencyMs))
}

// TestAccessLogVariety checks that traffic covers the cases parsers must
// handle: missing numbers, unset identities, all status classes, IPv6.
func TestAccessLogVariety(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mix = Mix{JSON: 1, CLF: 1}
	g := mustGenerator(t, cfg)
	statuses := map[int]int{}
	var missingJSON, missingCLF, caller, ipv6, slow int
	for _, ev := range collect(t, g, 20_000) {
		checkAccessLine(t, ev)
		statuses[ev.Status]++
		if ev.ResponseLength < 0 && ev.Kind == AccessJSON {
			missingJSON++
		}
		if ev.ResponseLength < 0 && ev.Kind == AccessCLF {
			missingCLF++
		}
		if ev.Caller != "-" {
			caller++
		}
		if strings.Contains(ev.IP, ":") {
			ipv6++
		}
		if ev.LatencyMs > 1000 {
			slow++
		}
		if ev.IntegrationLatencyMs >= 0 {
			assert.Less(t, ev.IntegrationLatencyMs, ev.LatencyMs)
		} else {
			assert.Equal(t, 429, ev.Status)
		}
	}
	for _, code := range []int{200, 201, 204, 304, 400, 403, 404, 429, 500, 502, 504} {
		assert.Positive(t, statuses[code], "status %d generated", code)
	}
	assert.Greater(t, statuses[200], 10_000/2, "mostly 2xx")
	for name, n := range map[string]int{"JSON missing length": missingJSON, "CLF missing length": missingCLF, "caller": caller, "IPv6": ipv6, "slow": slow} {
		assert.Positive(t, n, name)
	}
}

// TestExecutionSequences reassembles execution-log lines per request id and
// checks the §3.5 sequence, outcomes and truncation.
func TestExecutionSequences(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mix = Mix{Exec: 1}
	cfg.APIs, cfg.Accounts = 6, 1
	g := mustGenerator(t, cfg)
	byID := map[string][]Event{}
	var order []string
	for _, ev := range collect(t, g, 60_000) {
		require.Equal(t, Execution, ev.Kind)
		checkExecLine(t, ev)
		if _, ok := byID[ev.RequestID]; !ok {
			order = append(order, ev.RequestID)
		}
		byID[ev.RequestID] = append(byID[ev.RequestID], ev)
	}
	outcomes := map[string]int{}
	truncated := 0
	complete := 0
	for _, id := range order {
		lines := byID[id]
		last := lines[len(lines)-1]
		done := last.ExecEvent == ExecXRayTraceID || (last.ExecEvent == ExecMethodCompleted && last.Status >= 429)
		if !done {
			continue // the rest is still pending in its log stream
		}
		complete++
		var names []string
		text := map[string]string{}
		for i, ev := range lines {
			names = append(names, ev.ExecEvent)
			text[ev.ExecEvent] = strings.TrimPrefix(ev.Message, "("+id+") ")
			assert.Equal(t, lines[0].LogGroup, ev.LogGroup)
			assert.Equal(t, lines[0].LogStream, ev.LogStream)
			if i > 0 {
				assert.GreaterOrEqual(t, ev.Timestamp, lines[i-1].Timestamp, "lines in time order")
			}
			if strings.HasSuffix(ev.Message, " [TRUNCATED]") {
				truncated++
				assert.LessOrEqual(t, len(text[ev.ExecEvent]), TruncateAt+len(" [TRUNCATED]"))
			}
		}
		ev := lines[0]
		require.Equal(t, ExecExtendedRequestID, names[0])
		assert.Equal(t, "Extended Request Id: "+ev.ExtendedRequestID, text[ExecExtendedRequestID])
		assert.Regexp(t, `^Verifying Usage Plan for request: `+id+`\. API Key: (\*{10}[A-Za-z0-9]{6})? API Stage: `+ev.APIID+`/`+ev.Stage+`$`, text[ExecVerifyingUsagePlan])
		assert.Equal(t, "Method completed with status: "+strconv.Itoa(ev.Status), text[ExecMethodCompleted])
		assert.Equal(t, ExecMethodCompleted, names[slicesIndex(names, ExecMethodCompleted)])

		switch {
		case slicesIndex(names, ExecThrottled) >= 0:
			outcomes["throttled"]++
			assert.Equal(t, 429, ev.Status)
			assert.Regexp(t, `^API Key \*{10}[A-Za-z0-9]{6} exceeded throttle limit for API Stage `+ev.APIID+`/`+ev.Stage+`: Key throttle limit exceeded for Usage Plan ID [a-z0-9]{6}, RestApi `+ev.APIID+`, Stage `+ev.Stage+`, Resource [a-z0-9]{6}, HttpMethod `+ev.Method+`\. Limit: [0-9.]+ Burst: \d+$`, text[ExecThrottled])
			assert.Equal(t, []string{ExecExtendedRequestID, ExecVerifyingUsagePlan, ExecThrottled, ExecMethodCompleted}, names)
		case slicesIndex(names, ExecQuotaExceeded) >= 0:
			outcomes["quota"]++
			assert.Equal(t, 429, ev.Status)
		case slicesIndex(names, ExecTimeout) >= 0:
			outcomes["timeout"]++
			assert.Equal(t, 504, ev.Status)
			assert.Equal(t, "Execution failed due to a timeout error", text[ExecTimeout])
			assert.Equal(t, []string{ExecSendingRequest, ExecTimeout, ExecMethodCompleted}, names[len(names)-3:])
		case slicesIndex(names, ExecConfigError) >= 0:
			outcomes["malformed"]++
			assert.Equal(t, 502, ev.Status)
			assert.Equal(t, "Execution failed due to configuration error: Malformed Lambda proxy response", text[ExecConfigError])
			assert.Equal(t, []string{ExecEndpointResponseBody, ExecConfigError, ExecMethodCompleted}, names[len(names)-3:])
		default:
			outcomes["ok"]++
			want := []string{ExecExtendedRequestID, ExecVerifyingUsagePlan}
			if text[ExecVerifyingUsagePlan] == "Verifying Usage Plan for request: "+id+". API Key:  API Stage: "+ev.APIID+"/"+ev.Stage {
				want = append(want, ExecAPIKeyNotRequired)
				assert.Equal(t, "API Key  authorized because method '"+ev.Method+" "+ev.Resource+"' does not require API Key. Request will not contribute to throttle or quota limits", text[ExecAPIKeyNotRequired])
			}
			want = append(want, ExecUsagePlanOK, ExecStart, ExecHTTPMethod, ExecMethodRequestPath, ExecMethodRequestQuery,
				ExecMethodRequestHeaders, ExecMethodRequestBody, ExecEndpointRequestURI, ExecEndpointRequestHeaders,
				ExecEndpointRequestBody, ExecSendingRequest, ExecReceivedResponse, ExecEndpointResponseHdrs,
				ExecEndpointResponseBody, ExecMethodResponseBody, ExecMethodResponseHeaders, ExecSuccess,
				ExecMethodCompleted, ExecIntegrationRequestID, ExecXRayTraceID)
			require.Equal(t, want, names)
			assert.Equal(t, "Starting execution for request: "+id, text[ExecStart])
			assert.Equal(t, "HTTP Method: "+ev.Method+", Resource Path: "+ev.Path, text[ExecHTTPMethod])
			assert.Equal(t, "Received response. Status: 200, Integration latency: "+strconv.Itoa(ev.IntegrationLatencyMs)+" ms", text[ExecReceivedResponse])
			assert.Equal(t, "Successfully completed execution", text[ExecSuccess])
			assert.Regexp(t, `^AWS Integration Endpoint RequestId : `+uuidRe+`$`, text[ExecIntegrationRequestID])
			assert.Regexp(t, `^X-ray Tracing ID : 1-[0-9a-f]{8}-[0-9a-f]{24}$`, text[ExecXRayTraceID])
			assert.Regexp(t, `^Endpoint request URI: https://lambda\.`+ev.Region+`\.amazonaws\.com/2015-03-31/functions/arn:aws:lambda:`+ev.Region+`:`+ev.Account+`:function:.+/invocations$`, text[ExecEndpointRequestURI])
			assert.True(t, strings.HasPrefix(text[ExecMethodRequestHeaders], "Method request headers: {"))
		}
	}
	assert.Greater(t, complete, 1000)
	for _, o := range []string{"ok", "throttled", "quota", "timeout", "malformed"} {
		assert.Positive(t, outcomes[o], "outcome %s", o)
	}
	assert.Positive(t, truncated)
	t.Logf("%d complete sequences, outcomes %v, %d truncated lines", complete, outcomes, truncated)
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestExecutionSplitAcrossRecords checks that a request's lines that do not
// fit an envelope arrive, in order, in a later envelope of the same stream.
func TestExecutionSplitAcrossRecords(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mix = Mix{Exec: 1}
	cfg.EventsPerRecord = 7
	g := mustGenerator(t, cfg)
	split := 0
	seenIn := map[string]string{} // request id -> first stream
	for _, ev := range collect(t, g, 20_000) {
		if s, ok := seenIn[ev.RequestID]; ok {
			require.Equal(t, s, ev.LogStream)
		} else {
			seenIn[ev.RequestID] = ev.LogStream
		}
	}
	// Count requests whose lines span several envelopes.
	g = mustGenerator(t, cfg)
	for range 50 {
		req := mustNext(t, g)
		d := decodeWire(t, req.Header, req.Body, false)
		first := map[string]int{}
		for r, env := range d.envelopes {
			for _, le := range env.LogEvents {
				id := execLineRe.FindStringSubmatch(le.Message)[1]
				if f, ok := first[id]; ok && f != r {
					split++
				} else if !ok {
					first[id] = r
				}
			}
		}
	}
	assert.Positive(t, split)
}

func TestEventsPerRecordLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RecordsPerRequest, cfg.EventsPerRecord = 3, 5
	g := mustGenerator(t, cfg)
	for range 50 {
		req := mustNext(t, g)
		assert.LessOrEqual(t, len(req.Events), 15)
		assert.GreaterOrEqual(t, len(req.Events), 3*3, "records are at least half full")
	}
	// next(limit) caps the events of a request.
	for _, limit := range []int{1, 2, 7} {
		req, err := g.next(limit)
		require.NoError(t, err)
		assert.Len(t, req.Events, limit)
	}
}
