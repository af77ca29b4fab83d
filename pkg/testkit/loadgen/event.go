package loadgen

import (
	"math"
	"unicode/utf8"
)

// Event is one generated log event together with the ground truth a parser
// should be able to extract from it (or from its request's other events).
type Event struct {
	ID        string // CloudWatch event id: 56 decimal digits, unique per run and seed/instance
	Timestamp int64  // event time, ms since the epoch
	Kind      Kind
	Message   string // the log line as it is shipped (no trailing newline)

	Account, Region, APIID, APIName, Stage string
	LogGroup, LogStream                    string // empty in direct mode

	RequestID         string // $context.requestId
	ExtendedRequestID string // $context.extendedRequestId
	RequestTimeMs     int64  // $context.requestTimeEpoch
	Method            string
	Resource          string // $context.resourcePath, template form: /pets/{petId}
	Path              string // the concrete path: /pets/123
	Protocol          string
	Status            int // final method status
	LatencyMs         int
	// IntegrationLatencyMs is -1 when the request never reached the
	// integration (throttled).
	IntegrationLatencyMs int
	ResponseLength       int // -1 when missing (rendered as a bare "-")
	IP, UserAgent        string
	Caller, User         string // "-" when unset

	// ExecEvent names the kind of an execution-log line (ExecStart,
	// ExecMethodCompleted, ...); empty for access logs.
	ExecEvent string
}

// Names of execution-log lines (Event.ExecEvent), in the order they appear.
const (
	ExecExtendedRequestID      = "extended_request_id"
	ExecVerifyingUsagePlan     = "verifying_usage_plan"
	ExecAPIKeyNotRequired      = "api_key_not_required"
	ExecThrottled              = "throttle_limit_exceeded"
	ExecQuotaExceeded          = "quota_limit_exceeded"
	ExecUsagePlanOK            = "usage_plan_check_succeeded"
	ExecStart                  = "starting_execution"
	ExecHTTPMethod             = "http_method"
	ExecMethodRequestPath      = "method_request_path"
	ExecMethodRequestQuery     = "method_request_query_string"
	ExecMethodRequestHeaders   = "method_request_headers"
	ExecMethodRequestBody      = "method_request_body"
	ExecEndpointRequestURI     = "endpoint_request_uri"
	ExecEndpointRequestHeaders = "endpoint_request_headers"
	ExecEndpointRequestBody    = "endpoint_request_body"
	ExecSendingRequest         = "sending_request"
	ExecTimeout                = "execution_failed_timeout"
	ExecReceivedResponse       = "received_response"
	ExecEndpointResponseHdrs   = "endpoint_response_headers"
	ExecEndpointResponseBody   = "endpoint_response_body"
	ExecConfigError            = "execution_failed_configuration"
	ExecMethodResponseBody     = "method_response_body"
	ExecMethodResponseHeaders  = "method_response_headers"
	ExecSuccess                = "successfully_completed"
	ExecMethodCompleted        = "method_completed"
	ExecIntegrationRequestID   = "integration_request_id"
	ExecXRayTraceID            = "xray_trace_id"
)

// TruncateAt is the length after which execution-log line contents are cut
// and suffixed with " [TRUNCATED]".
const TruncateAt = 1024

type outcome uint8

const (
	outcomeOK outcome = iota
	outcomeThrottled
	outcomeQuota
	outcomeTimeout
	outcomeMalformed
)

type span struct{ a, b int }

// fix remembers where the strings of a freshly generated event live in the
// generator's arena until the arena is turned into one string.
type fix struct {
	id, msg span
	hit     int // index into Generator.hitSpans
}

type hitSpan struct{ rid, ext, path span }

// hit is one API request being rendered; Generator reuses a single one.
type hit struct {
	api    *api
	st     *stage
	rt     *route
	cl     *client
	caller string
	user   string
	key    string // masked API key, "" for APIs that need none

	outcome        outcome
	status         int
	latency, integ int
	respLen        int
	start, end     int64

	spans   hitSpan
	spanIdx int
	params  [4]struct {
		name string
		val  span
	}
	nparams int
	id      uint64 // a number for bodies and ids
	intID   [36]byte
	trace   [35]byte // 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx
}

var statusTable = []struct {
	code int
	w    float64
}{
	{200, 80}, {204, 2}, {301, 0.4}, {302, 1}, {304, 2.5}, {400, 3}, {401, 1.5},
	{403, 2.5}, {404, 5}, {409, 0.5}, {422, 0.5}, {500, 1}, {503, 0.5},
}

var statusCum = func() []float64 {
	w := make([]float64, len(statusTable))
	for i, s := range statusTable {
		w[i] = s.w
	}
	return cumulative(w)
}()

// newHit draws one API request on (a, st) and writes its request id,
// extended request id and concrete path into the arena.
func (g *Generator) newHit(a *api, st *stage, endMs int64) *hit {
	r := g.r
	h := &g.h
	*h = hit{api: a, st: st}
	h.rt = &a.routes[pick(r, a.routeW)]
	h.cl = &g.u.clients[r.IntN(len(g.u.clients))]
	h.caller, h.user = "-", "-"
	if r.IntN(12) == 0 {
		c := g.u.callers[r.IntN(len(g.u.callers))]
		h.caller, h.user = c, c
	}
	if a.keyed {
		h.key = a.keys[r.IntN(len(a.keys))]
	}
	h.id = 1 + r.Uint64N(99999)

	// Outcome and status.
	u := r.Float64()
	switch {
	case a.keyed && u < 0.025:
		h.outcome, h.status = outcomeThrottled, 429
		if r.IntN(10) == 0 {
			h.outcome = outcomeQuota
		}
	case u < 0.033:
		h.outcome, h.status = outcomeTimeout, 504
	case u < 0.041:
		h.outcome, h.status = outcomeMalformed, 502
	default:
		h.status = statusTable[pick(r, statusCum)].code
		switch m := h.rt.method; {
		case m == "OPTIONS":
			h.status = 200
		case h.status == 304 && m != "GET":
			h.status = 200
		case h.status == 200 && m == "POST" && r.IntN(5) < 3:
			h.status = 201
		case h.status == 200 && m == "DELETE" && r.IntN(2) == 0:
			h.status = 204
		}
	}

	// Latencies: long-tailed, integration latency below total latency.
	overhead := 2 + int(r.ExpFloat64()*6)
	switch h.outcome {
	case outcomeThrottled, outcomeQuota:
		h.integ = -1
		h.latency = 1 + r.IntN(5)
	case outcomeTimeout:
		h.integ = a.timeoutMs + r.IntN(30)
		h.latency = h.integ + overhead
	default:
		integ := math.Exp(math.Log(30) + 0.9*r.NormFloat64())
		if r.IntN(100) == 0 {
			integ += r.ExpFloat64() * 1500
		}
		h.integ = max(1, min(int(integ), a.timeoutMs-1))
		h.latency = h.integ + overhead
	}

	// Response length (sometimes missing).
	switch {
	case r.IntN(25) == 0:
		h.respLen = -1
	case h.status == 204 || h.status == 304 || h.status == 301 || h.status == 302:
		h.respLen = 0
	case h.status == 429:
		h.respLen = 31 // {"message":"Too Many Requests"}
	case h.status == 502:
		h.respLen = 36 // {"message": "Internal server error"}
	case h.status == 504:
		h.respLen = 41 // {"message": "Endpoint request timed out"}
	case h.status >= 400:
		h.respLen = 20 + r.IntN(100)
	case h.rt.method == "GET":
		h.respLen = min(500000, int(math.Exp(math.Log(800)+1.2*r.NormFloat64())))
	default:
		h.respLen = 40 + r.IntN(260)
	}

	h.end = endMs
	h.start = endMs - int64(h.latency)

	// Request id, extended request id and path go to the arena.
	ar := g.arena
	h.spans.rid.a = len(ar)
	ar = appendUUID(ar, r.Uint64(), r.Uint64())
	h.spans.rid.b = len(ar)
	h.spans.ext.a = len(ar)
	for i := 0; i < 15; i++ {
		ar = append(ar, mixedAlnum[r.IntN(len(mixedAlnum))])
	}
	ar = append(ar, '=')
	h.spans.ext.b = len(ar)
	h.spans.path.a = len(ar)
	if len(h.rt.segs) == 0 {
		ar = append(ar, '/')
	}
	for _, s := range h.rt.segs {
		ar = append(ar, '/')
		if s.param == "" {
			ar = append(ar, s.lit...)
			continue
		}
		p := &h.params[h.nparams]
		p.name = s.param
		p.val.a = len(ar)
		switch s.param {
		case "category":
			ar = append(ar, categoryPool[r.IntN(len(categoryPool))]...)
		case "provider":
			ar = append(ar, providerPool[r.IntN(len(providerPool))]...)
		default:
			ar = appendUint(ar, 1+r.Uint64N(99999), 1)
		}
		p.val.b = len(ar)
		h.nparams++
	}
	h.spans.path.b = len(ar)
	g.arena = ar
	g.hitSpans = append(g.hitSpans, h.spans)
	h.spanIdx = len(g.hitSpans) - 1

	appendUUID(h.intID[:0], r.Uint64(), r.Uint64())
	t := append(h.trace[:0], "1-"...)
	t = appendHex(t, uint64(h.start/1000), 8)
	t = append(t, '-')
	t = appendHex(t, r.Uint64(), 16)
	appendHex(t, r.Uint64(), 8)
	return h
}

// addEvent appends a new event of h to the request being built; its message
// occupies msg in the arena, and its id is appended to the arena.
func (g *Generator) addEvent(h *hit, kind Kind, ts int64, msg span, execEvent string) {
	a, st := h.api, h.st
	ev := Event{
		Timestamp:            ts,
		Kind:                 kind,
		Account:              a.account,
		Region:               a.region,
		APIID:                a.id,
		APIName:              a.name,
		Stage:                st.name,
		RequestTimeMs:        h.start,
		Method:               h.rt.method,
		Resource:             h.rt.resource,
		Protocol:             "HTTP/1.1",
		Status:               h.status,
		LatencyMs:            h.latency,
		IntegrationLatencyMs: h.integ,
		ResponseLength:       h.respLen,
		IP:                   h.cl.ip,
		UserAgent:            h.cl.ua,
		Caller:               h.caller,
		User:                 h.user,
		ExecEvent:            execEvent,
		LogGroup:             g.group,
		LogStream:            g.stream,
	}
	f := fix{msg: msg, hit: h.spanIdx}
	f.id.a = len(g.arena)
	g.arena = g.appendEventID(g.arena, ts)
	f.id.b = len(g.arena)
	g.events = append(g.events, ev)
	g.fixes = append(g.fixes, f)
}

// appendEventID appends a 56-digit id: 13 digits of timestamp, 20 of seed,
// 5 of instance and 18 of a per-generator counter.
func (g *Generator) appendEventID(dst []byte, ts int64) []byte {
	g.counter++
	if ts < 0 {
		ts = 0
	}
	dst = appendUint(dst, uint64(ts)%1e13, 13)
	dst = append(dst, g.idMiddle[:]...)
	return appendUint(dst, g.counter%1e18, 18)
}

// resolve sets the string fields of ev that live in s, where s holds the
// arena from byte offset base on.
func resolve(ev *Event, f fix, hs []hitSpan, s string, base int) {
	ev.ID = s[f.id.a-base : f.id.b-base]
	ev.Message = s[f.msg.a-base : f.msg.b-base]
	h := hs[f.hit]
	ev.RequestID = s[h.rid.a-base : h.rid.b-base]
	ev.ExtendedRequestID = s[h.ext.a-base : h.ext.b-base]
	ev.Path = s[h.path.a-base : h.path.b-base]
}

// ---- access logs ----

// renderJSON writes the Datadog-recommended JSON access-log line.
func (g *Generator) renderJSON(h *hit) {
	ar := g.arena
	a := len(ar)
	ar = append(ar, `{"apiId":"`...)
	ar = append(ar, h.api.id...)
	ar = append(ar, `","stage":"`...)
	ar = append(ar, h.st.name...)
	ar = append(ar, `","requestId":"`...)
	ar = append(ar, ar[h.spans.rid.a:h.spans.rid.b]...)
	ar = append(ar, `","ip":"`...)
	ar = append(ar, h.cl.ip...)
	ar = append(ar, `","caller":"`...)
	ar = append(ar, h.caller...)
	ar = append(ar, `","user":"`...)
	ar = append(ar, h.user...)
	ar = append(ar, `","requestTime":`...)
	ar = appendInt(ar, h.start)
	ar = append(ar, `,"httpMethod":"`...)
	ar = append(ar, h.rt.method...)
	ar = append(ar, `","resourcePath":"`...)
	ar = append(ar, h.rt.resource...)
	ar = append(ar, `","status":`...)
	ar = appendInt(ar, int64(h.status))
	ar = append(ar, `,"protocol":"HTTP/1.1","responseLength":`...)
	ar = appendLength(ar, h.respLen)
	ar = append(ar, '}')
	g.arena = ar
	g.addEvent(h, AccessJSON, h.end, span{a, len(ar)}, "")
}

// renderCLF writes the console's REST CLF access-log line.
func (g *Generator) renderCLF(h *hit) {
	ar := g.arena
	a := len(ar)
	ar = append(ar, h.cl.ip...)
	ar = append(ar, ' ')
	ar = append(ar, h.caller...)
	ar = append(ar, ' ')
	ar = append(ar, h.user...)
	ar = append(ar, " ["...)
	ar = appendCLFTime(ar, h.start)
	ar = append(ar, `] "`...)
	ar = append(ar, h.rt.method...)
	ar = append(ar, ' ')
	ar = append(ar, h.rt.resource...)
	ar = append(ar, ` HTTP/1.1" `...)
	ar = appendInt(ar, int64(h.status))
	ar = append(ar, ' ')
	ar = appendLength(ar, h.respLen)
	ar = append(ar, ' ')
	ar = append(ar, ar[h.spans.rid.a:h.spans.rid.b]...)
	ar = append(ar, ' ')
	ar = append(ar, ar[h.spans.ext.a:h.spans.ext.b]...)
	g.arena = ar
	g.addEvent(h, AccessCLF, h.end, span{a, len(ar)}, "")
}

func appendLength(dst []byte, n int) []byte {
	if n < 0 {
		return append(dst, '-')
	}
	return appendInt(dst, int64(n))
}

// ---- execution logs ----

var (
	requestBodies = []string{
		`{"name":"Rex","type":"dog","price":249.99}`,
		`{"name":"Café ☕ Crème","tags":["naïve","日本"],"qty":2}`,
		`{"items":[{"sku":"A-1","qty":1},{"sku":"B-22","qty":3}],"note":"leave at \"door\""}`,
		`{"email":"jane@example.com","password":"********"}`,
		`{"event":"push","ref":"refs/heads/main","path":"C:\\temp\\x"}`,
	}
	responseBodies = []string{
		`{"id":4711,"status":"ok"}`,
		`{"items":[],"next":null}`,
		`{"message":"not found"}`,
		`{"id":12,"name":"Rex","type":"dog","price":249.99}`,
	}
)

// line starts an execution-log line in the arena and returns its start.
func (g *Generator) line(h *hit) int {
	a := len(g.arena)
	g.arena = append(g.arena, '(')
	g.arena = append(g.arena, g.arena[h.spans.rid.a:h.spans.rid.b]...)
	g.arena = append(g.arena, ") "...)
	return a
}

// endLine finishes a line started at a, truncating long contents.
func (g *Generator) endLine(h *hit, a int, ts int64, name string) {
	content := a + 3 + (h.spans.rid.b - h.spans.rid.a)
	if len(g.arena)-content > TruncateAt {
		cut := content + TruncateAt
		for cut > content && !utf8.RuneStart(g.arena[cut]) {
			cut--
		}
		g.arena = append(g.arena[:cut], " [TRUNCATED]"...)
	}
	g.addEvent(h, Execution, ts, span{a, len(g.arena)}, name)
}

func (g *Generator) execSimple(h *hit, ts int64, name string, parts ...string) {
	a := g.line(h)
	for _, p := range parts {
		g.arena = append(g.arena, p...)
	}
	g.endLine(h, a, ts, name)
}

// renderExec writes the execution-log lines of one request (docs/wire-formats.md#execution-logs).
func (g *Generator) renderExec(h *hit) {
	r := g.r
	a, st := h.api, h.st
	rid := func() []byte { return g.arena[h.spans.rid.a:h.spans.rid.b] }
	t := h.start
	pre := int64(max(0, (h.latency-max(h.integ, 0))/2))
	step := func() int64 {
		if pre > 0 && r.IntN(3) == 0 {
			t++
			pre--
		}
		return t
	}

	var l int
	l = g.line(h)
	g.arena = append(g.arena, "Extended Request Id: "...)
	g.arena = append(g.arena, g.arena[h.spans.ext.a:h.spans.ext.b]...)
	g.endLine(h, l, t, ExecExtendedRequestID)

	l = g.line(h)
	g.arena = append(g.arena, "Verifying Usage Plan for request: "...)
	g.arena = append(g.arena, rid()...)
	g.arena = append(g.arena, ". API Key: "...)
	g.arena = append(g.arena, h.key...)
	g.arena = append(g.arena, " API Stage: "...)
	g.arena = append(g.arena, a.id...)
	g.arena = append(g.arena, '/')
	g.arena = append(g.arena, st.name...)
	g.endLine(h, l, step(), ExecVerifyingUsagePlan)

	switch h.outcome {
	case outcomeThrottled:
		g.execSimple(h, step(), ExecThrottled,
			"API Key ", h.key, " exceeded throttle limit for API Stage ", a.id, "/", st.name,
			": Key throttle limit exceeded for Usage Plan ID ", a.usagePlan,
			", RestApi ", a.id, ", Stage ", st.name, ", Resource ", h.rt.resourceID,
			", HttpMethod ", h.rt.method, ". Limit: 50.00 Burst: 100")
		g.methodCompleted(h, h.end)
		return
	case outcomeQuota:
		g.execSimple(h, step(), ExecQuotaExceeded,
			"API Key ", h.key, " exceeded quota limit for API Stage ", a.id, "/", st.name,
			": Key quota exhausted for Usage Plan ID ", a.usagePlan, ". Limit: 100000 Period: DAY")
		g.methodCompleted(h, h.end)
		return
	}

	if !a.keyed {
		g.execSimple(h, step(), ExecAPIKeyNotRequired,
			"API Key  authorized because method '", h.rt.method, " ", h.rt.resource,
			"' does not require API Key. Request will not contribute to throttle or quota limits")
	}
	g.execSimple(h, step(), ExecUsagePlanOK,
		"Usage Plan check succeeded for API Key ", h.key, " and API Stage ", a.id, "/", st.name)

	l = g.line(h)
	g.arena = append(g.arena, "Starting execution for request: "...)
	g.arena = append(g.arena, rid()...)
	g.endLine(h, l, step(), ExecStart)

	l = g.line(h)
	g.arena = append(g.arena, "HTTP Method: "...)
	g.arena = append(g.arena, h.rt.method...)
	g.arena = append(g.arena, ", Resource Path: "...)
	g.arena = append(g.arena, g.arena[h.spans.path.a:h.spans.path.b]...)
	g.endLine(h, l, step(), ExecHTTPMethod)

	l = g.line(h)
	g.arena = append(g.arena, "Method request path: {"...)
	for i := 0; i < h.nparams; i++ {
		if i > 0 {
			g.arena = append(g.arena, ", "...)
		}
		g.arena = append(g.arena, h.params[i].name...)
		g.arena = append(g.arena, '=')
		g.arena = append(g.arena, g.arena[h.params[i].val.a:h.params[i].val.b]...)
	}
	g.arena = append(g.arena, '}')
	g.endLine(h, l, step(), ExecMethodRequestPath)

	l = g.line(h)
	g.arena = append(g.arena, "Method request query string: {"...)
	if h.rt.hasQuery {
		g.arena = append(g.arena, "limit="...)
		g.arena = appendInt(g.arena, int64(10*(1+r.IntN(10))))
		if r.IntN(2) == 0 {
			g.arena = append(g.arena, ", q=dog food"...)
		}
	}
	g.arena = append(g.arena, '}')
	g.endLine(h, l, step(), ExecMethodRequestQuery)

	// Method request headers: long ones (cookies, tokens) get truncated.
	l = g.line(h)
	g.arena = append(g.arena, "Method request headers: {Accept=application/json, Accept-Encoding=gzip, deflate, br, CloudFront-Forwarded-Proto=https, CloudFront-Is-Desktop-Viewer=true, CloudFront-Viewer-Country=US, Host="...)
	g.arena = append(g.arena, a.host...)
	g.arena = append(g.arena, ", User-Agent="...)
	g.arena = append(g.arena, h.cl.ua...)
	g.arena = append(g.arena, ", Via=2.0 "...)
	g.arena = appendHex(g.arena, r.Uint64(), 16)
	g.arena = appendHex(g.arena, r.Uint64(), 16)
	g.arena = append(g.arena, ".cloudfront.net (CloudFront), X-Amz-Cf-Id="...)
	for i := 0; i < 56; i++ {
		g.arena = append(g.arena, mixedAlnum[r.IntN(len(mixedAlnum))])
	}
	g.arena = append(g.arena, "==, X-Amzn-Trace-Id=Root="...)
	g.arena = append(g.arena, h.trace[:]...)
	g.arena = append(g.arena, ", X-Forwarded-For="...)
	g.arena = append(g.arena, h.cl.ip...)
	g.arena = append(g.arena, ", 130.176."...)
	g.arena = appendInt(g.arena, int64(r.IntN(256)))
	g.arena = append(g.arena, '.')
	g.arena = appendInt(g.arena, int64(r.IntN(256)))
	g.arena = append(g.arena, ", X-Forwarded-Port=443, X-Forwarded-Proto=https"...)
	if h.key != "" {
		g.arena = append(g.arena, ", x-api-key="...)
		g.arena = append(g.arena, h.key...)
	}
	if r.IntN(8) == 0 {
		g.arena = append(g.arena, ", Cookie=session="...)
		for i := 0; i < 300+r.IntN(600); i++ {
			g.arena = append(g.arena, mixedAlnum[r.IntN(len(mixedAlnum))])
		}
	}
	g.arena = append(g.arena, '}')
	g.endLine(h, l, step(), ExecMethodRequestHeaders)

	body := ""
	if h.rt.hasBody {
		body = requestBodies[r.IntN(len(requestBodies))]
	}
	g.execSimple(h, step(), ExecMethodRequestBody, "Method request body before transformations: ", body)
	g.execSimple(h, step(), ExecEndpointRequestURI, "Endpoint request URI: ", st.lambdaURI)

	l = g.line(h)
	g.arena = append(g.arena, "Endpoint request headers: {x-amzn-lambda-integration-tag="...)
	g.arena = append(g.arena, rid()...)
	g.arena = append(g.arena, ", Authorization=********************************************************************************************************************************************************************************************************************************************************************************************"...)
	g.arena = appendHex(g.arena, r.Uint64(), 6)
	g.arena = append(g.arena, ", X-Amz-Date="...)
	g.arena = appendAmzDate(g.arena, t)
	g.arena = append(g.arena, ", x-amzn-apigateway-api-id="...)
	g.arena = append(g.arena, a.id...)
	g.arena = append(g.arena, ", X-Amz-Source-Arn="...)
	g.arena = append(g.arena, st.sourceARN...)
	g.arena = append(g.arena, "/"...)
	g.arena = append(g.arena, h.rt.method...)
	g.arena = append(g.arena, h.rt.resource...)
	g.arena = append(g.arena, ", Accept=application/json, User-Agent=AmazonAPIGateway_"...)
	g.arena = append(g.arena, a.id...)
	g.arena = append(g.arena, ", X-Amz-Security-Token="...)
	g.arena = append(g.arena, st.token...)
	g.arena = append(g.arena, '}')
	g.endLine(h, l, step(), ExecEndpointRequestHeaders)

	l = g.line(h)
	g.arena = append(g.arena, `Endpoint request body after transformations: {"resource":"`...)
	g.arena = append(g.arena, h.rt.resource...)
	g.arena = append(g.arena, `","path":"`...)
	g.arena = append(g.arena, g.arena[h.spans.path.a:h.spans.path.b]...)
	g.arena = append(g.arena, `","httpMethod":"`...)
	g.arena = append(g.arena, h.rt.method...)
	g.arena = append(g.arena, `","headers":{"Accept":"application/json","Host":"`...)
	g.arena = append(g.arena, a.host...)
	g.arena = append(g.arena, `","User-Agent":"`...)
	g.arena = appendJSONString(g.arena, h.cl.ua)
	g.arena = append(g.arena, `","X-Forwarded-For":"`...)
	g.arena = append(g.arena, h.cl.ip...)
	g.arena = append(g.arena, `"},"requestContext":{"resourceId":"`...)
	g.arena = append(g.arena, h.rt.resourceID...)
	g.arena = append(g.arena, `","resourcePath":"`...)
	g.arena = append(g.arena, h.rt.resource...)
	g.arena = append(g.arena, `","httpMethod":"`...)
	g.arena = append(g.arena, h.rt.method...)
	g.arena = append(g.arena, `","extendedRequestId":"`...)
	g.arena = append(g.arena, g.arena[h.spans.ext.a:h.spans.ext.b]...)
	g.arena = append(g.arena, `","requestTime":"`...)
	g.arena = appendCLFTime(g.arena, h.start)
	g.arena = append(g.arena, `","path":"/`...)
	g.arena = append(g.arena, st.name...)
	g.arena = append(g.arena, g.arena[h.spans.path.a:h.spans.path.b]...)
	g.arena = append(g.arena, `","accountId":"`...)
	g.arena = append(g.arena, a.account...)
	g.arena = append(g.arena, `","protocol":"HTTP/1.1","stage":"`...)
	g.arena = append(g.arena, st.name...)
	g.arena = append(g.arena, `","domainPrefix":"`...)
	g.arena = append(g.arena, a.id...)
	g.arena = append(g.arena, `","requestTimeEpoch":`...)
	g.arena = appendInt(g.arena, h.start)
	g.arena = append(g.arena, `,"requestId":"`...)
	g.arena = append(g.arena, rid()...)
	g.arena = append(g.arena, `","identity":{"sourceIp":"`...)
	g.arena = append(g.arena, h.cl.ip...)
	g.arena = append(g.arena, `","userAgent":"`...)
	g.arena = appendJSONString(g.arena, h.cl.ua)
	g.arena = append(g.arena, `"},"domainName":"`...)
	g.arena = append(g.arena, a.host...)
	g.arena = append(g.arena, `","apiId":"`...)
	g.arena = append(g.arena, a.id...)
	g.arena = append(g.arena, `"},"body":`...)
	if body == "" {
		g.arena = append(g.arena, "null"...)
	} else {
		g.arena = append(g.arena, '"')
		g.arena = appendJSONString(g.arena, body)
		g.arena = append(g.arena, '"')
	}
	g.arena = append(g.arena, `,"isBase64Encoded":false}`...)
	g.endLine(h, l, step(), ExecEndpointRequestBody)

	g.execSimple(h, step(), ExecSendingRequest, "Sending request to ", st.lambdaURI)

	if h.outcome == outcomeTimeout {
		g.execSimple(h, h.end, ExecTimeout, "Execution failed due to a timeout error")
		g.methodCompleted(h, h.end)
		return
	}

	t += int64(h.integ)
	l = g.line(h)
	g.arena = append(g.arena, "Received response. Status: 200, Integration latency: "...)
	g.arena = appendInt(g.arena, int64(h.integ))
	g.arena = append(g.arena, " ms"...)
	g.endLine(h, l, t, ExecReceivedResponse)

	respBody := responseBodies[h.id%uint64(len(responseBodies))]
	l = g.line(h)
	g.arena = append(g.arena, "Endpoint response headers: {Date="...)
	g.arena = appendHTTPDate(g.arena, t)
	g.arena = append(g.arena, ", Content-Type=application/json, Content-Length="...)
	g.arena = appendInt(g.arena, int64(60+len(respBody)))
	g.arena = append(g.arena, ", Connection=keep-alive, x-amzn-RequestId="...)
	g.arena = append(g.arena, h.intID[:]...)
	g.arena = append(g.arena, ", x-amzn-Remapped-Content-Length=0, X-Amz-Executed-Version=$LATEST, X-Amzn-Trace-Id=root="...)
	g.arena = append(g.arena, h.trace[:]...)
	g.arena = append(g.arena, ";sampled=0}"...)
	g.endLine(h, l, step(), ExecEndpointResponseHdrs)

	l = g.line(h)
	g.arena = append(g.arena, "Endpoint response body before transformations: "...)
	if h.outcome == outcomeMalformed {
		g.arena = append(g.arena, `{"status":"ok","result":`...)
		g.arena = append(g.arena, respBody...)
		g.arena = append(g.arena, '}')
	} else {
		g.arena = append(g.arena, `{"statusCode":`...)
		g.arena = appendInt(g.arena, int64(h.status))
		g.arena = append(g.arena, `,"headers":{"Content-Type":"application/json"},"body":"`...)
		g.arena = appendJSONString(g.arena, respBody)
		g.arena = append(g.arena, `"}`...)
	}
	g.endLine(h, l, step(), ExecEndpointResponseBody)

	if h.outcome == outcomeMalformed {
		g.execSimple(h, h.end, ExecConfigError, "Execution failed due to configuration error: Malformed Lambda proxy response")
		g.methodCompleted(h, h.end)
		return
	}

	g.execSimple(h, step(), ExecMethodResponseBody, "Method response body after transformations: ", respBody)
	l = g.line(h)
	g.arena = append(g.arena, "Method response headers: {X-Amzn-Trace-Id=Root="...)
	g.arena = append(g.arena, h.trace[:]...)
	g.arena = append(g.arena, ";Sampled=0, Content-Type=application/json}"...)
	g.endLine(h, l, step(), ExecMethodResponseHeaders)
	g.execSimple(h, h.end, ExecSuccess, "Successfully completed execution")
	g.methodCompleted(h, h.end)

	l = g.line(h)
	g.arena = append(g.arena, "AWS Integration Endpoint RequestId : "...)
	g.arena = append(g.arena, h.intID[:]...)
	g.endLine(h, l, h.end, ExecIntegrationRequestID)
	l = g.line(h)
	g.arena = append(g.arena, "X-ray Tracing ID : "...)
	g.arena = append(g.arena, h.trace[:]...)
	g.endLine(h, l, h.end, ExecXRayTraceID)
}

func (g *Generator) methodCompleted(h *hit, ts int64) {
	l := g.line(h)
	g.arena = append(g.arena, "Method completed with status: "...)
	g.arena = appendInt(g.arena, int64(h.status))
	g.endLine(h, l, ts, ExecMethodCompleted)
}
