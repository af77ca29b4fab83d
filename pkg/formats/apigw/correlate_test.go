package apigw

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func execRecords(t testing.TB, group string, lines []string, ts0 int64) []record.Record {
	t.Helper()
	p := mustParser(t, Config{})
	o := &record.Origin{LogGroup: group}
	b := &record.Batch{}
	out := make([]record.Record, len(lines))
	for i, l := range lines {
		out[i] = record.Record{Origin: o, Message: []byte(l), Timestamp: ts0 + int64(i)}
		p.Parse(b, &out[i])
		require.Equal(t, record.KindExecution, out[i].Kind, l)
	}
	return out
}

func attrMap(rec *record.Record) map[string]any {
	m := map[string]any{}
	for _, a := range rec.Attrs {
		switch a.Kind {
		case record.Int:
			m[a.Key] = a.Int
		case record.Bool:
			m[a.Key] = a.Int != 0
		default:
			m[a.Key] = string(a.Str)
		}
	}
	return m
}

func TestCorrelatorSequence(t *testing.T) {
	cases := readCases(t, "testdata/exec_rest_sequence.txt")
	lines := make([]string, len(cases))
	for i, c := range cases {
		lines[i] = c.Line
	}
	recs := execRecords(t, cases[0].Group, lines, 1551194973000)
	c := NewCorrelator(CorrelatorConfig{})
	var sums []record.Record
	for i := range recs {
		if s, ok := c.Observe(&recs[i]); ok {
			sums = append(sums, s)
			require.Equal(t, 19, i, "summary emitted on Method completed")
		}
	}
	require.Len(t, sums, 1)
	require.Equal(t, 0, c.Len(), "trailing lines must not reopen the request")
	s := sums[0]
	require.Equal(t, record.KindSummary, s.Kind)
	require.Equal(t, "apigateway", s.Source)
	require.Equal(t, record.LevelInfo, s.Level)
	require.Equal(t, int64(1551194973000), s.Timestamp)
	require.NoError(t, recordAttrsOK(&s))
	require.Equal(t, map[string]any{
		"http.request_id":                    "515f1e99-39db-11e9-9e96-01e5c04505b9",
		"http.method":                        "POST",
		"http.route":                         "/verifyReceipt",
		"http.url_details.path":              "/verifyReceipt",
		"http.status_code":                   int64(200),
		"http.integration.latency_ms":        int64(40),
		"apigateway.integrationLatency":      "40",
		"apigateway.apiId":                   "h733q2j6gb",
		"apigateway.stage":                   "Prod",
		"apigateway.execution.truncated":     true,
		"apigateway.summary.first_timestamp": int64(1551194973000),
		"apigateway.summary.last_timestamp":  int64(1551194973019),
		"apigateway.summary.elapsed_ms":      int64(19),
		"apigateway.summary.lines":           int64(20),
		"apigateway.summary.reason":          "completed",
		"apigateway.summary.complete":        true,
	}, attrMap(&s))
	require.Equal(t, "(515f1e99-39db-11e9-9e96-01e5c04505b9) request summary: POST /verifyReceipt -> 200, integration 40 ms [completed]", string(s.Message))
	st := c.Stats()
	require.Equal(t, int64(1), st.Completed)
	require.Equal(t, int64(2), st.Ignored)
}

func TestCorrelatorOutcomes(t *testing.T) {
	id := "(3323ffe5-6ddf-45c8-896a-b45ec2284cc0) "
	tests := []struct {
		name  string
		lines []string
		want  map[string]any
		level record.Level
	}{
		{"throttled", []string{
			id + "Verifying Usage Plan for request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0. API Key: **********F0yrv6 API Stage: rohkz08x02/dev",
			id + "API Key **********F0yrv6 exceeded throttle limit for API Stage rohkz08x02/dev: Key throttle limit exceeded for Usage Plan ID nnpegc, RestApi rohkz08x02, Stage dev, Resource f646q2, HttpMethod GET. Limit: 5.00 Burst: 10",
			id + "Method completed with status: 429",
		}, map[string]any{"apigateway.execution.throttled": true, "http.status_code": int64(429), "error.kind": "THROTTLED", "http.method": "GET"}, record.LevelWarn},
		{"quota", []string{
			id + "API Key **********F0yrv6 exceeded quota limit for API Stage rohkz08x02/dev: Key quota exhausted for Usage Plan ID nnpegc. Limit: 500 Period: DAY",
			id + "Method completed with status: 429",
		}, map[string]any{"apigateway.execution.quota_exceeded": true, "error.kind": "QUOTA_EXCEEDED"}, record.LevelWarn},
		{"authorizer deny", []string{
			id + "Starting authorizer: 62mgrc for request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0",
			id + "Successfully completed authorizer execution",
			id + "The client is not authorized to perform this operation.",
			id + "Method completed with status: 403",
		}, map[string]any{"apigateway.authorizer.outcome": "deny", "http.status_code": int64(403)}, record.LevelWarn},
		{"malformed proxy", []string{
			id + "Starting execution for request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0",
			id + "HTTP Method: GET, Resource Path: /pets/1",
			id + "Received response. Status: 200, Integration latency: 12 ms",
			id + "Execution failed due to configuration error: Malformed Lambda proxy response",
			id + "Method completed with status: 502",
		}, map[string]any{"error.message": "Malformed Lambda proxy response", "error.kind": "configuration_error",
			"http.status_code": int64(502), "http.integration.status_code": int64(200), "http.url_details.path": "/pets/1"}, record.LevelError},
		{"completion only", []string{id + "Method completed with status: 200"},
			map[string]any{"http.status_code": int64(200), "apigateway.summary.lines": int64(1)}, record.LevelInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs := execRecords(t, "API-Gateway-Execution-Logs_rohkz08x02/dev/Canary", tc.lines, 1000)
			c := NewCorrelator(CorrelatorConfig{})
			var got []record.Record
			for i := range recs {
				if s, ok := c.Observe(&recs[i]); ok {
					got = append(got, s)
				}
			}
			require.Len(t, got, 1)
			m := attrMap(&got[0])
			for k, v := range tc.want {
				require.Equal(t, v, m[k], k)
			}
			require.Equal(t, true, m["apigateway.canary"])
			require.Equal(t, tc.level, got[0].Level)
			require.NoError(t, recordAttrsOK(&got[0]))
		})
	}
}

func TestCorrelatorInterleavedAcrossBatches(t *testing.T) {
	c := NewCorrelator(CorrelatorConfig{})
	p := mustParser(t, Config{})
	o := &record.Origin{LogGroup: "API-Gateway-Execution-Logs_abc/prod"}
	var sums []record.Record
	for step := 0; step < 3; step++ {
		b := &record.Batch{} // a new batch per step: summaries must not alias old ones
		for r := 0; r < 50; r++ {
			var line string
			switch step {
			case 0:
				line = fmt.Sprintf("(req-%d) HTTP Method: GET, Resource Path: /items/%d", r, r)
			case 1:
				line = fmt.Sprintf("(req-%d) Received response. Integration latency: %d ms", r, r)
			case 2:
				line = fmt.Sprintf("(req-%d) Method completed with status: %d", r, 200+r%3)
			}
			rec := record.Record{Origin: o, Message: []byte(line), Timestamp: int64(step)}
			p.Parse(b, &rec)
			if s, ok := c.Observe(&rec); ok {
				sums = append(sums, s)
			}
			for i := range rec.Message {
				rec.Message[i] = 'X' // the batch's bytes are reused
			}
		}
	}
	require.Len(t, sums, 50)
	for r, s := range sums {
		m := attrMap(&s)
		require.Equal(t, fmt.Sprintf("req-%d", r), m["http.request_id"])
		require.Equal(t, fmt.Sprintf("/items/%d", r), m["http.url_details.path"])
		require.Equal(t, int64(r), m["http.integration.latency_ms"])
		require.Equal(t, int64(200+r%3), m["http.status_code"])
	}
}

func TestCorrelatorExpireAndEvict(t *testing.T) {
	now := int64(0)
	c := NewCorrelator(CorrelatorConfig{MaxOpen: 4, Shards: 1, MaxAge: time.Second, Now: func() int64 { return now }})
	p := mustParser(t, Config{})
	o := &record.Origin{LogGroup: "API-Gateway-Execution-Logs_abc/prod"}
	observe := func(line string) (record.Record, bool) {
		rec := record.Record{Origin: o, Message: []byte(line)}
		p.Parse(nil, &rec)
		return c.Observe(&rec)
	}
	for i := 0; i < 4; i++ {
		now = int64(i * 100)
		_, ok := observe(fmt.Sprintf("(r%d) Starting execution for request: r%d", i, i))
		require.False(t, ok)
	}
	require.Equal(t, 4, c.Len())
	// a fifth request evicts the oldest
	now = 400
	s, ok := observe("(r4) Starting execution for request: r4")
	require.True(t, ok)
	require.Equal(t, "r0", attrMap(&s)["http.request_id"])
	require.Equal(t, "evicted", attrMap(&s)["apigateway.summary.reason"])
	require.Equal(t, false, attrMap(&s)["apigateway.summary.complete"])
	require.Equal(t, 4, c.Len())
	// r1 (opened at 100) and r2 (200) are older than 1 s at 1250
	exp := c.Expire(1250)
	require.Len(t, exp, 2)
	require.Equal(t, "r1", attrMap(&exp[0])["http.request_id"])
	require.Equal(t, "expired", attrMap(&exp[1])["apigateway.summary.reason"])
	require.Equal(t, 2, c.Len())
	require.Len(t, c.Flush(), 2)
	require.Equal(t, 0, c.Len())
	st := c.Stats()
	require.Equal(t, int64(1), st.Evicted)
	require.Equal(t, int64(2), st.Expired)
}

// TestCorrelatorMemoryBound opens millions of requests that never complete
// and checks the heap stays bounded by MaxOpen.
func TestCorrelatorMemoryBound(t *testing.T) {
	n := 2_000_000
	if testing.Short() {
		n = 200_000
	}
	const maxOpen = 20_000
	c := NewCorrelator(CorrelatorConfig{MaxOpen: maxOpen})
	id := []byte("00000000-0000-0000-0000-000000000000")
	route := []byte("/pets/{petId}/toys/{toyId}")
	rec := record.Record{Kind: record.KindExecution, Timestamp: 1, Attrs: []record.Attr{
		record.StringAttr(KeyExecEvent, eventValues[EventMethodRequest]),
		record.StringAttr(KeyRequestID, id),
		record.StringAttr(KeyMethod, []byte("GET")),
		record.StringAttr(KeyRoute, route),
	}}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var evicted int
	var atFull uint64
	for i := 0; i < n; i++ {
		// distinct id per request
		x := i
		for j := 35; j >= 28 && x > 0; j-- {
			id[j] = "0123456789abcdef"[x&15]
			x >>= 4
		}
		if _, ok := c.Observe(&rec); ok {
			evicted++
		}
		if i == 2*maxOpen {
			atFull = heap()
		}
	}
	require.LessOrEqual(t, c.Len(), maxOpen)
	require.Equal(t, n-c.Len(), evicted)
	end := heap()
	t.Logf("open=%d heap at 2×MaxOpen=%d MB, after %d requests=%d MB", c.Len(), atFull>>20, n, end>>20)
	require.Less(t, end, atFull+16<<20, "heap grew with the number of requests")
	require.Less(t, end, uint64(64<<20), "heap for 20k open requests")
}

func TestCorrelatorConcurrent(t *testing.T) {
	c := NewCorrelator(CorrelatorConfig{MaxOpen: 1000})
	p := mustParser(t, Config{})
	o := &record.Origin{LogGroup: "API-Gateway-Execution-Logs_abc/prod"}
	var mu sync.Mutex
	done := 0
	concurrently(8, func(g int) {
		b := &record.Batch{}
		for r := 0; r < 200; r++ {
			for _, l := range []string{"Starting execution for request: x", "Received response. Integration latency: 3 ms", "Method completed with status: 200"} {
				rec := record.Record{Origin: o, Message: []byte(fmt.Sprintf("(g%d-r%d) %s", g, r, l))}
				p.Parse(b, &rec)
				if s, ok := c.Observe(&rec); ok && attrMap(&s)["apigateway.summary.reason"] == "completed" {
					mu.Lock()
					done++
					mu.Unlock()
				}
			}
		}
	})
	require.Equal(t, 1600, done)
	require.Equal(t, 0, c.Len())
}

// observeAll feeds recs to c and returns the summaries it emitted.
func observeAll(c *Correlator, recs []record.Record) []record.Record {
	var sums []record.Record
	for i := range recs {
		if s, ok := c.Observe(&recs[i]); ok {
			sums = append(sums, s)
		}
	}
	return sums
}

// TestCorrelatorCompletionFirst: the lines of one request split across two
// batches that arrive in the wrong order (a Firehose retry, batches parsed
// concurrently) — "Method completed" and the lines that follow it first,
// the 19 lines before it next. The request is summarised once; the late
// lines open no second request, so nothing expires later as a partial
// summary of the same request.
func TestCorrelatorCompletionFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cases := readCases(t, "testdata/exec_rest_sequence.txt")
		lines := make([]string, len(cases))
		for i, c := range cases {
			lines[i] = c.Line
		}
		recs := execRecords(t, cases[0].Group, lines, 1551194973000)
		const completion = 19
		c := NewCorrelator(CorrelatorConfig{MaxAge: 30 * time.Second})

		sums := observeAll(c, recs[completion:])
		require.Len(t, sums, 1)
		m := attrMap(&sums[0])
		require.Equal(t, int64(200), m["http.status_code"])
		require.Equal(t, "completed", m["apigateway.summary.reason"])
		require.Equal(t, 1, c.Recent())

		time.Sleep(5 * time.Second) // the earlier batch, retried
		require.Empty(t, observeAll(c, recs[:completion]), "late lines make no second summary")
		require.Equal(t, 0, c.Len(), "late lines open no request")

		time.Sleep(time.Minute)
		require.Empty(t, c.Expire(time.Now().UnixMilli()))
		require.Empty(t, c.Flush())
		st := c.Stats()
		require.Equal(t, CorrelatorStats{Completed: 1, Ignored: 2, Late: completion}, st)
	})
}

// TestCorrelatorLateAfterPartial: a request already summarised partial —
// expired because its last batch came after max_age, or evicted to make
// room — is not summarised a second time by its late lines: one request,
// one summary.
func TestCorrelatorLateAfterPartial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCorrelator(CorrelatorConfig{MaxOpen: 2, Shards: 1, MaxAge: time.Second})
		o := "API-Gateway-Execution-Logs_abc/prod"
		start := func(id string) []record.Record {
			return execRecords(t, o, []string{"(" + id + ") Starting execution for request: " + id}, 0)
		}
		done := func(id string) []record.Record {
			return execRecords(t, o, []string{"(" + id + ") Method completed with status: 200"}, 0)
		}
		require.Empty(t, observeAll(c, start("r1")))
		time.Sleep(2 * time.Second)
		exp := c.Expire(time.Now().UnixMilli())
		require.Len(t, exp, 1)
		require.Equal(t, "expired", attrMap(&exp[0])["apigateway.summary.reason"])
		require.Empty(t, observeAll(c, done("r1")), "r1 was summarised when it expired")

		require.Empty(t, observeAll(c, start("r2")))
		require.Empty(t, observeAll(c, start("r3")))
		ev := observeAll(c, start("r4"))
		require.Len(t, ev, 1)
		require.Equal(t, "r2", attrMap(&ev[0])["http.request_id"])
		require.Empty(t, observeAll(c, done("r2")), "r2 was summarised when it was evicted")
		require.Len(t, observeAll(c, done("r3")), 1)
		require.Equal(t, int64(2), c.Stats().Late)
	})
}

// TestCorrelatorRecentBounds: summarised ids are remembered for max_age
// and at most max_open of them, oldest forgotten first; a line of a
// request forgotten opens a request as any other.
func TestCorrelatorRecentBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxOpen = 100
		c := NewCorrelator(CorrelatorConfig{MaxOpen: maxOpen, Shards: 1, MaxAge: time.Second})
		o := "API-Gateway-Execution-Logs_abc/prod"
		line := func(id int, text string) []record.Record {
			return execRecords(t, o, []string{fmt.Sprintf("(r%d) %s", id, text)}, 0)
		}
		for id := 0; id < 3*maxOpen; id++ {
			require.Len(t, observeAll(c, line(id, "Method completed with status: 200")), 1)
		}
		require.Equal(t, maxOpen, c.Recent(), "bounded by max_open")
		require.Empty(t, observeAll(c, line(3*maxOpen-1, "HTTP Method: GET, Resource Path: /a")), "the newest is remembered")
		require.Empty(t, observeAll(c, line(0, "HTTP Method: GET, Resource Path: /a")))
		require.Equal(t, 1, c.Len(), "the oldest was forgotten: its line opens a request")

		time.Sleep(2 * time.Second)
		require.Len(t, c.Expire(time.Now().UnixMilli()), 1)
		require.Equal(t, 1, c.Recent(), "ids summarised before max_age are forgotten, the one just expired is remembered")
		require.Empty(t, observeAll(c, line(3*maxOpen-1, "HTTP Method: GET, Resource Path: /a")))
		require.Equal(t, 1, c.Len(), "after max_age the id opens a request again")
	})
}

// TestCorrelatorRefusalStatus: a request API Gateway refused before its
// integration — usage plan throttle or quota, Lambda authorizer — whose
// lines end without "Method completed with status" is summarised with the
// status API Gateway answers it (401, 403, 429), marked inferred, so that
// it lands in its status class instead of "unknown". A status a line gave
// always wins.
func TestCorrelatorRefusalStatus(t *testing.T) {
	id := "(3323ffe5-6ddf-45c8-896a-b45ec2284cc0) "
	throttle := id + "API Key **********F0yrv6 exceeded throttle limit for API Stage rohkz08x02/dev: Key throttle limit exceeded for Usage Plan ID nnpegc, RestApi rohkz08x02, Stage dev, Resource f646q2, HttpMethod GET. Limit: 5.00 Burst: 10"
	quota := id + "API Key **********F0yrv6 exceeded quota limit for API Stage rohkz08x02/dev: Key quota exhausted for Usage Plan ID nnpegc. Limit: 500 Period: DAY"
	authorizer := id + "Starting authorizer: 62mgrc for request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0"
	tests := []struct {
		name     string
		lines    []string
		status   any // int64, or nil for none
		inferred bool
		reason   string
	}{
		{"throttled", []string{id + "Extended Request Id: AAAAAAAAAAAAAAA=", throttle}, int64(429), true, "expired"},
		{"quota", []string{quota}, int64(429), true, "expired"},
		{"authorizer unauthorized", []string{authorizer, id + "Unauthorized request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0"}, int64(401), true, "expired"},
		{"authorizer deny", []string{authorizer, id + "The client is not authorized to perform this operation."}, int64(403), true, "expired"},
		{"authorizer error", []string{authorizer, id + "Execution failed due to configuration error: Authorizer error"}, nil, false, "expired"},
		{"no refusal", []string{id + "Starting execution for request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0"}, nil, false, "expired"},
		{"throttled, completed", []string{throttle, id + "Method completed with status: 429"}, int64(429), false, "completed"},
		{"completion wins", []string{throttle, id + "Method completed with status: 200"}, int64(200), false, "completed"},
		{"gateway response wins", []string{authorizer, id + "Unauthorized request: 3323ffe5-6ddf-45c8-896a-b45ec2284cc0",
			id + "Gateway response type: ACCESS_DENIED with status code: 403"}, int64(403), false, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewCorrelator(CorrelatorConfig{MaxAge: time.Second})
				got := observeAll(c, execRecords(t, "API-Gateway-Execution-Logs_rohkz08x02/dev", tc.lines, 1000))
				time.Sleep(2 * time.Second)
				got = append(got, c.Expire(time.Now().UnixMilli())...)
				require.Len(t, got, 1)
				s := &got[0]
				require.NoError(t, recordAttrsOK(s))
				m := attrMap(s)
				require.Equal(t, tc.reason, m["apigateway.summary.reason"])
				require.Equal(t, tc.status, m["http.status_code"])
				if tc.inferred {
					require.Equal(t, true, m["apigateway.summary.status_inferred"])
					require.Contains(t, string(s.Message), fmt.Sprintf("-> %d (inferred)", tc.status))
					require.Equal(t, record.LevelWarn, s.Level)
				} else {
					require.NotContains(t, m, "apigateway.summary.status_inferred")
				}
			})
		})
	}
}
