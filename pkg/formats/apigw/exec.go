package apigw

import (
	"bytes"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// ExecEvent identifies a recognised execution-log line.
type ExecEvent uint8

// Execution-log events; their names (apigateway.execution.event) are stable.
const (
	EventUnknown ExecEvent = iota
	EventExtendedRequestID
	EventUsagePlanVerify
	EventAPIKeyNotRequired
	EventAPIKeyNotAuthorized
	EventAPIKeyInvalid
	EventUsagePlanCheckSucceeded
	EventThrottled
	EventQuotaExceeded
	EventAPIKey
	EventAPIKeyID
	EventAuthorizerStarted
	EventAuthorizerIncomingIdentity
	EventAuthorizerResultBody
	EventAuthorizerPolicy
	EventAuthorizerSucceeded
	EventAuthorizerUnauthorized
	EventAuthorizerDenied
	EventAuthorizerError
	EventExecutionStarted
	EventMethodRequest
	EventMethodRequestPath
	EventMethodRequestQueryString
	EventMethodRequestHeaders
	EventMethodRequestBody
	EventRequestValidationSucceeded
	EventRequestValidationFailed
	EventEndpointRequestURI
	EventEndpointRequestHeaders
	EventEndpointRequestBody
	EventSendingRequest
	EventReceivedResponse
	EventEndpointResponseBody
	EventEndpointResponseHeaders
	EventMethodResponseBody
	EventMethodResponseHeaders
	EventExecutionSucceeded
	EventMethodCompleted
	EventExecutionFailedTimeout
	EventExecutionFailedConfiguration
	EventExecutionFailed
	EventEndpointRequestTimeout
	EventLambdaFunctionError
	EventLambdaInvocationFailed
	EventIntegrationRequestID
	EventXRayTraceID
	EventGatewayResponse
	EventGatewayResponseBody
	EventGatewayResponseHeaders
	EventWebSocketRoute
	numEvents
)

var execEventNames = [numEvents]string{
	EventUnknown:                      "unknown",
	EventExtendedRequestID:            "extended_request_id",
	EventUsagePlanVerify:              "usage_plan_verify",
	EventAPIKeyNotRequired:            "api_key_not_required",
	EventAPIKeyNotAuthorized:          "api_key_not_authorized",
	EventAPIKeyInvalid:                "api_key_invalid",
	EventUsagePlanCheckSucceeded:      "usage_plan_check_succeeded",
	EventThrottled:                    "throttled",
	EventQuotaExceeded:                "quota_exceeded",
	EventAPIKey:                       "api_key",
	EventAPIKeyID:                     "api_key_id",
	EventAuthorizerStarted:            "authorizer_started",
	EventAuthorizerIncomingIdentity:   "authorizer_incoming_identity",
	EventAuthorizerResultBody:         "authorizer_result_body",
	EventAuthorizerPolicy:             "authorizer_policy",
	EventAuthorizerSucceeded:          "authorizer_succeeded",
	EventAuthorizerUnauthorized:       "authorizer_unauthorized",
	EventAuthorizerDenied:             "authorizer_denied",
	EventAuthorizerError:              "authorizer_error",
	EventExecutionStarted:             "execution_started",
	EventMethodRequest:                "method_request",
	EventMethodRequestPath:            "method_request_path",
	EventMethodRequestQueryString:     "method_request_query_string",
	EventMethodRequestHeaders:         "method_request_headers",
	EventMethodRequestBody:            "method_request_body",
	EventRequestValidationSucceeded:   "request_validation_succeeded",
	EventRequestValidationFailed:      "request_validation_failed",
	EventEndpointRequestURI:           "endpoint_request_uri",
	EventEndpointRequestHeaders:       "endpoint_request_headers",
	EventEndpointRequestBody:          "endpoint_request_body",
	EventSendingRequest:               "sending_request",
	EventReceivedResponse:             "received_response",
	EventEndpointResponseBody:         "endpoint_response_body",
	EventEndpointResponseHeaders:      "endpoint_response_headers",
	EventMethodResponseBody:           "method_response_body",
	EventMethodResponseHeaders:        "method_response_headers",
	EventExecutionSucceeded:           "execution_succeeded",
	EventMethodCompleted:              "method_completed",
	EventExecutionFailedTimeout:       "execution_failed_timeout",
	EventExecutionFailedConfiguration: "execution_failed_configuration",
	EventExecutionFailed:              "execution_failed",
	EventEndpointRequestTimeout:       "endpoint_request_timeout",
	EventLambdaFunctionError:          "lambda_function_error",
	EventLambdaInvocationFailed:       "lambda_invocation_failed",
	EventIntegrationRequestID:         "integration_request_id",
	EventXRayTraceID:                  "xray_trace_id",
	EventGatewayResponse:              "gateway_response",
	EventGatewayResponseBody:          "gateway_response_body",
	EventGatewayResponseHeaders:       "gateway_response_headers",
	EventWebSocketRoute:               "websocket_route",
}

// String returns the event's stable snake_case name.
func (e ExecEvent) String() string {
	if e < numEvents {
		return execEventNames[e]
	}
	return "unknown"
}

// EventNames lists every execution event name, in ExecEvent order.
func EventNames() []string { return append([]string(nil), execEventNames[:]...) }

// eventValues are the attribute values of apigateway.execution.event; shared
// read-only byte slices so emitting an event never allocates.
var eventValues = func() (v [numEvents][]byte) {
	for i, n := range execEventNames {
		v[i] = []byte(n)
	}
	return
}()

// EventOf returns the event of a parsed execution record.
func EventOf(rec *record.Record) ExecEvent {
	a, ok := rec.Attr(KeyExecEvent)
	if !ok {
		return EventUnknown
	}
	return eventOfValue(a.Str)
}

// Execution-only attribute keys.
const (
	KeyExecEndpointURI  = "apigateway.execution.endpoint_uri"
	KeyExecUsagePlanID  = "apigateway.execution.usage_plan_id"
	KeyExecLimit        = "apigateway.execution.limit"
	KeyExecBurst        = "apigateway.execution.burst"
	KeyExecPeriod       = "apigateway.execution.period"
	KeyExecAuthorizerID = "apigateway.authorizer.id"
	KeyExecContentType  = "apigateway.execution.content_type"
)

var (
	vExtendedRequestID = knownVars["extendedRequestId"]
	vAPIID             = knownVars["apiId"]
	vStage             = knownVars["stage"]
	vAPIKey            = knownVars["identity.apiKey"]
	vAPIKeyID          = knownVars["identity.apiKeyId"]
	vResourceID        = knownVars["resourceId"]
	vIntegrationLat    = knownVars["integrationLatency"]
	vIntegrationStatus = knownVars["integrationStatus"]
	vIntegrationReqID  = knownVars["integration.requestId"]
	vXRay              = knownVars["xrayTraceId"]
	vStatus            = knownVars["status"]
	vPrincipalID       = knownVars["authorizer.principalId"]
	vRouteKey          = knownVars["routeKey"]
)

var (
	outcomeAllow        = []byte("allow")
	outcomeDeny         = []byte("deny")
	outcomeUnauthorized = []byte("unauthorized")
	outcomeError        = []byte("error")

	kindTimeout       = []byte("timeout")
	kindConfiguration = []byte("configuration_error")
	kindExecution     = []byte("execution_failed")
	kindLambda        = []byte("lambda_function_error")
	kindLambdaInvoke  = []byte("lambda_invocation_failed")
	kindValidation    = []byte("request_validation_failed")
	kindThrottled     = []byte("THROTTLED")
	kindQuota         = []byte("QUOTA_EXCEEDED")
)

const truncatedSuffix = " [TRUNCATED]"

// ParseExecutionLine classifies one execution-log line without a Parser
// (for tools and tests): it returns the request id (empty when the line has
// no "(id) " prefix), the event, and whether the line was understood.
func ParseExecutionLine(line []byte) (requestID []byte, ev ExecEvent, ok bool) {
	s := getScratch(nil)
	s.beginOwn()
	defer putScratch(s)
	id, rest, _ := splitExecPrefix(line)
	ev = classifyExec(rest, s)
	return id, ev, ev != EventUnknown || id != nil
}

// splitExecPrefix strips the trailing " [TRUNCATED]" marker and the
// "(<requestId>) " prefix.
func splitExecPrefix(line []byte) (id, rest []byte, truncated bool) {
	for len(line) > 0 && isSpace(line[len(line)-1]) {
		line = line[:len(line)-1]
	}
	if bytes.HasSuffix(line, []byte(truncatedSuffix)) {
		line = line[:len(line)-len(truncatedSuffix)]
		truncated = true
	}
	rest = line
	if len(line) > 2 && line[0] == '(' {
		lim := len(line)
		if lim > 130 {
			lim = 130
		}
		if j := bytes.IndexByte(line[1:lim], ')'); j > 0 && validReqID(line[1:1+j]) {
			id = line[1 : 1+j]
			rest = line[2+j:]
			if len(rest) > 0 && rest[0] == ' ' {
				rest = rest[1:]
			}
		}
	}
	return id, rest, truncated
}

// validReqID accepts the ids API Gateway prefixes execution lines with:
// REST's UUIDs (any of [A-Za-z0-9._:-], as before), and the base64 ids of
// WebSocket and HTTP APIs ("Dwz4lGRyvHcF0KQ="). '+', '/' and '=' are taken
// only in a well-formed base64 text, so that a parenthesis opening ordinary
// text ("(/pets) …", "(a=b) …") is not mistaken for a prefix.
func validReqID(b []byte) bool {
	b64 := false
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':':
		case c == '+' || c == '/' || c == '=':
			b64 = true
		default:
			return false
		}
	}
	return !b64 || isBase64(b)
}

// isBase64 reports whether b is standard base64 with its padding: a
// multiple of 4 bytes, '=' only as the last one or two.
func isBase64(b []byte) bool {
	if len(b) == 0 || len(b)%4 != 0 {
		return false
	}
	n := len(b)
	if b[n-1] == '=' {
		n--
		if b[n-1] == '=' {
			n--
		}
	}
	for _, c := range b[:n] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// parseExecution parses an execution-log line into s. It returns false when
// the line is neither prefixed with a request id nor a known line.
func parseExecution(rec *record.Record, s *scratch) bool {
	id, rest, truncated := splitExecPrefix(rec.Message)
	ev := classifyExec(rest, s)
	if ev == EventUnknown && id == nil {
		return false
	}
	rec.Kind = record.KindExecution
	rec.Level = s.execLevel
	s.str(KeyExecEvent, eventValues[ev])
	if id != nil {
		s.str(KeyRequestID, id)
	}
	if truncated {
		s.bool(KeyExecTruncated)
	}
	return true
}

// cut returns b without prefix. A prefix ending in a space also matches b
// equal to the prefix without that space (an empty value whose trailing
// space was trimmed: "Method request body before transformations:").
func cut(b []byte, prefix string) ([]byte, bool) {
	if len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix {
		return b[len(prefix):], true
	}
	if n := len(prefix) - 1; len(b) == n && prefix[n] == ' ' && string(b) == prefix[:n] {
		return b[n:], true
	}
	return nil, false
}

// field returns the text after marker up to the first byte in stops (or the
// end), and whether marker was found.
func field(b []byte, marker string, stops string) ([]byte, bool) {
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		return nil, false
	}
	v := b[i+len(marker):]
	if j := bytes.IndexAny(v, stops); j >= 0 {
		v = v[:j]
	}
	return v, true
}

// setStage sets apiId and stage from "apiId/stage".
func setStage(s *scratch, as []byte) {
	if i := bytes.IndexByte(as, '/'); i > 0 && i < len(as)-1 {
		s.setVar(vAPIID, as[:i], false)
		s.setVar(vStage, as[i+1:], false)
	}
}

// methodRoute splits "POST /event" into http.method and http.route.
func methodRoute(s *scratch, mr []byte) {
	if i := bytes.IndexByte(mr, ' '); i > 0 {
		s.str(KeyMethod, mr[:i])
		s.str(KeyRoute, mr[i+1:])
	}
}

func setStatus(s *scratch, v []byte) {
	if n, ok := parseIntLoose(v); ok && n >= 100 && n <= 599 {
		s.int(KeyStatusCode, n)
		s.setVar(vStatus, v, false)
		s.execLevel = record.LevelForHTTPStatus(int(n))
	}
}

// classifyExec recognises the text of an execution line (after the request
// id prefix): the first rule for its first byte whose prefix it starts with
// decides the event. The line's level is left in s.execLevel.
func classifyExec(r []byte, s *scratch) ExecEvent {
	s.execLevel = record.LevelInfo
	if len(r) < 4 {
		return EventUnknown
	}
	for i := range execRules[r[0]] {
		rule := &execRules[r[0]][i]
		if v, ok := cut(r, rule.prefix); ok {
			return rule.apply(r, v, s)
		}
	}
	return EventUnknown
}

// execRule is one known execution line: a fixed prefix and its event, plus
// what the line says about level, authorizer outcome and error.
type execRule struct {
	prefix string
	ev     ExecEvent
	// classify, when set, decides the event from the text after the prefix
	// (one prefix that starts several lines: "API Key").
	classify func(v []byte, s *scratch) ExecEvent
	level    record.Level // LevelInfo leaves the level as it is
	outcome  []byte       // apigateway.authorizer.outcome
	// read takes the values the line carries, from the text after the prefix
	// (v) or the whole line; it runs after outcome and before kind and msg,
	// the order in which the attributes have always been emitted.
	read func(s *scratch, line, v []byte)
	kind []byte  // error.kind
	msg  msgFrom // error.message
}

// msgFrom says which text becomes error.message.
type msgFrom uint8

const (
	msgNone  msgFrom = iota
	msgLine          // the whole line
	msgValue         // the text after the prefix
)

func (rule *execRule) apply(line, v []byte, s *scratch) ExecEvent {
	if rule.classify != nil {
		return rule.classify(v, s)
	}
	if rule.level != record.LevelInfo {
		s.execLevel = rule.level
	}
	if rule.outcome != nil {
		s.str(KeyAuthorizerOutcome, rule.outcome)
	}
	if rule.read != nil {
		rule.read(s, line, v)
	}
	if rule.kind != nil {
		s.str(KeyErrorKind, rule.kind)
	}
	switch rule.msg {
	case msgLine:
		s.str(KeyErrorMessage, line)
	case msgValue:
		s.str(KeyErrorMessage, v)
	}
	return rule.ev
}

// execRules holds the rules by the first byte of their prefix, in the order
// of execRuleList; that order matters where one prefix starts another
// ("Execution failed" comes after its longer forms).
var execRules = func() (t [256][]execRule) {
	for _, rule := range execRuleList {
		t[rule.prefix[0]] = append(t[rule.prefix[0]], rule)
	}
	return t
}()

var execRuleList = []execRule{
	{prefix: "API Key", classify: classifyAPIKey},
	{prefix: "AWS Integration Endpoint RequestId : ", ev: EventIntegrationRequestID,
		read: func(s *scratch, _, v []byte) {
			s.setVar(vIntegrationReqID, v, false)
			s.str(KeyIntegRequestID, v)
		}},
	{prefix: "Authorizer result body before parsing: ", ev: EventAuthorizerResultBody},
	{prefix: "Authorizer error", ev: EventAuthorizerError, level: record.LevelError, outcome: outcomeError,
		read: func(s *scratch, _, v []byte) {
			if m := trimLead(v); len(m) > 0 {
				s.str(KeyErrorMessage, m)
			}
		}},

	{prefix: "Extended Request Id: ", ev: EventExtendedRequestID,
		read: func(s *scratch, _, v []byte) { s.setVar(vExtendedRequestID, v, false) }},
	{prefix: "Endpoint request URI: ", ev: EventEndpointRequestURI,
		read: func(s *scratch, _, v []byte) { s.str(KeyExecEndpointURI, v) }},
	{prefix: "Endpoint request headers: ", ev: EventEndpointRequestHeaders},
	{prefix: "Endpoint request body after transformations: ", ev: EventEndpointRequestBody},
	{prefix: "Endpoint response body before transformations: ", ev: EventEndpointResponseBody},
	{prefix: "Endpoint response headers: ", ev: EventEndpointResponseHeaders},
	{prefix: "Endpoint request timed out", ev: EventEndpointRequestTimeout, level: record.LevelError, kind: kindTimeout, msg: msgLine},
	{prefix: "Execution failed due to configuration error: ", ev: EventExecutionFailedConfiguration, level: record.LevelError,
		read: func(s *scratch, _, v []byte) {
			s.str(KeyErrorKind, kindConfiguration)
			s.str(KeyErrorMessage, v)
			if bytes.HasPrefix(v, []byte("Authorizer")) {
				s.str(KeyAuthorizerOutcome, outcomeError)
			}
		}},
	{prefix: "Execution failed due to a timeout error", ev: EventExecutionFailedTimeout, level: record.LevelError, kind: kindTimeout, msg: msgLine},
	{prefix: "Execution failed", ev: EventExecutionFailed, level: record.LevelError, kind: kindExecution, msg: msgLine},

	{prefix: "Method request path: ", ev: EventMethodRequestPath},
	{prefix: "Method request query string: ", ev: EventMethodRequestQueryString},
	{prefix: "Method request headers: ", ev: EventMethodRequestHeaders},
	{prefix: "Method request body before transformations: ", ev: EventMethodRequestBody},
	{prefix: "Method response body after transformations: ", ev: EventMethodResponseBody},
	{prefix: "Method response headers: ", ev: EventMethodResponseHeaders},
	{prefix: "Method completed with status: ", ev: EventMethodCompleted,
		read: func(s *scratch, _, v []byte) { setStatus(s, v) }},
	{prefix: "Missing required request parameters: ", ev: EventRequestValidationFailed, level: record.LevelWarn, kind: kindValidation, msg: msgValue},

	{prefix: "Starting authorizer: ", ev: EventAuthorizerStarted,
		read: func(s *scratch, _, v []byte) {
			if i := bytes.IndexByte(v, ' '); i > 0 {
				v = v[:i]
			}
			s.str(KeyExecAuthorizerID, v)
		}},
	{prefix: "Starting execution for request: ", ev: EventExecutionStarted},
	{prefix: "Sending request to ", ev: EventSendingRequest,
		read: func(s *scratch, _, v []byte) { s.str(KeyExecEndpointURI, v) }},
	{prefix: "Successfully completed execution", ev: EventExecutionSucceeded},
	{prefix: "Successfully completed authorizer execution", ev: EventAuthorizerSucceeded, outcome: outcomeAllow},

	{prefix: "Received response. ", ev: EventReceivedResponse, read: readReceivedResponse},
	{prefix: "Request validation succeeded for content type ", ev: EventRequestValidationSucceeded,
		read: func(s *scratch, _, v []byte) { s.str(KeyExecContentType, v) }},
	{prefix: "Request validation failed", ev: EventRequestValidationFailed, level: record.LevelWarn, kind: kindValidation, msg: msgLine},
	{prefix: "Request body does not match model schema for content type ", ev: EventRequestValidationFailed, level: record.LevelWarn, kind: kindValidation, msg: msgLine,
		read: func(s *scratch, _, v []byte) {
			if i := bytes.IndexByte(v, ':'); i > 0 {
				s.str(KeyExecContentType, v[:i])
			}
		}},

	{prefix: "Usage Plan check succeeded for API Key ", ev: EventUsagePlanCheckSucceeded,
		read: func(s *scratch, _, v []byte) {
			if as, ok := field(v, "API Stage ", " "); ok {
				setStage(s, as)
			}
		}},
	{prefix: "Unauthorized request: ", ev: EventAuthorizerUnauthorized, level: record.LevelWarn, outcome: outcomeUnauthorized},
	{prefix: "Using valid authorizer policy for principal: ", ev: EventAuthorizerPolicy,
		read: func(s *scratch, _, v []byte) {
			s.setVar(vPrincipalID, v, false)
			s.str(KeyUserID, v)
		}},

	{prefix: "Verifying Usage Plan for request: ", ev: EventUsagePlanVerify,
		read: func(s *scratch, _, v []byte) {
			if k, ok := field(v, "API Key: ", " "); ok && len(k) > 0 && !bytes.HasPrefix(k, []byte("API")) {
				s.setVar(vAPIKey, k, false)
			}
			if as, ok := field(v, "API Stage: ", " "); ok {
				setStage(s, as)
			}
		}},
	{prefix: "HTTP Method: ", ev: EventMethodRequest,
		read: func(s *scratch, _, v []byte) {
			if i := bytes.Index(v, []byte(", Resource Path: ")); i > 0 {
				s.str(KeyMethod, v[:i])
				s.str(KeyPath, v[i+len(", Resource Path: "):])
			}
		}},
	{prefix: "X-ray Tracing ID : ", ev: EventXRayTraceID,
		read: func(s *scratch, _, v []byte) { s.setVar(vXRay, v, false) }},
	{prefix: "Incoming identity: ", ev: EventAuthorizerIncomingIdentity},
	{prefix: "Invalid API Key identifier specified", ev: EventAPIKeyInvalid, level: record.LevelWarn},

	{prefix: "Lambda execution failed with status ", ev: EventLambdaFunctionError, level: record.LevelError, read: readLambdaFunctionError},
	{prefix: "Lambda invocation failed with status: ", ev: EventLambdaInvocationFailed, level: record.LevelError, kind: kindLambdaInvoke, msg: msgLine,
		read: func(s *scratch, _, v []byte) {
			setIntegStatus(s, v, ". ")
			if id, ok := field(v, "Lambda request id: ", " "); ok && len(id) > 0 {
				s.str(KeyIntegRequestID, id)
			}
		}},

	{prefix: "Gateway response type: ", ev: EventGatewayResponse,
		read: func(s *scratch, _, v []byte) {
			t := v
			if i := bytes.IndexByte(t, ' '); i > 0 {
				t = t[:i]
			}
			s.str(KeyErrorKind, t)
			if st, ok := field(v, "with status code: ", " "); ok {
				setStatus(s, st)
			}
		}},
	{prefix: "Gateway response body: ", ev: EventGatewayResponseBody},
	{prefix: "Gateway response headers: ", ev: EventGatewayResponseHeaders},
	{prefix: "WebSocket Request Route: [", ev: EventWebSocketRoute,
		read: func(s *scratch, _, v []byte) {
			if i := bytes.IndexByte(v, ']'); i > 0 {
				s.setVar(vRouteKey, v[:i], false)
				s.str(KeyRoute, v[:i])
			}
		}},
	{prefix: "The client is not authorized to perform this operation", ev: EventAuthorizerDenied, level: record.LevelWarn, outcome: outcomeDeny},
}

// readReceivedResponse takes the integration status and latency from
// "Received response. Status: 200, Integration latency: 2266 ms" (either may
// be missing).
func readReceivedResponse(s *scratch, _, v []byte) {
	if w, ok := cut(v, "Status: "); ok {
		st := w
		if i := bytes.IndexByte(st, ','); i >= 0 {
			st = st[:i]
		}
		if n, ok := parseIntLoose(st); ok && n >= 100 && n <= 599 {
			s.setVar(vIntegrationStatus, st, false)
			s.int(KeyIntegStatus, n)
		}
	}
	if lat, ok := field(v, "Integration latency: ", " "); ok {
		if n, ok := parseIntLoose(lat); ok && n >= 0 {
			s.setVar(vIntegrationLat, lat, false)
			s.int(KeyIntegLatency, n)
		}
	}
}

// readLambdaFunctionError reads "Lambda execution failed with status 200 due
// to customer function error: <message>. Lambda request id: <id>".
func readLambdaFunctionError(s *scratch, line, v []byte) {
	setIntegStatus(s, v, " ")
	s.str(KeyErrorKind, kindLambda)
	if m, ok := field(v, "due to customer function error: ", ""); ok {
		if i := bytes.Index(m, []byte(". Lambda request id: ")); i >= 0 {
			s.str(KeyIntegRequestID, m[i+len(". Lambda request id: "):])
			m = m[:i]
		}
		s.str(KeyErrorMessage, m)
	} else {
		s.str(KeyErrorMessage, line)
	}
}

// setIntegStatus records the integration status that starts v (up to the
// first byte of stops) when it is an HTTP status.
func setIntegStatus(s *scratch, v []byte, stops string) {
	if i := bytes.IndexAny(v, stops); i > 0 {
		v = v[:i]
	}
	if n, ok := parseIntLoose(v); ok && n >= 100 && n <= 599 {
		s.int(KeyIntegStatus, n)
	}
}

// classifyAPIKey handles lines starting "API Key ": "API Key: x",
// "API Key ID: x", and "API Key <key> authorized because…", "… exceeded
// throttle limit…", "… exceeded quota limit…", "… not authorized because…".
func classifyAPIKey(v []byte, s *scratch) ExecEvent {
	if k, ok := cut(v, ": "); ok {
		if len(k) > 0 {
			s.setVar(vAPIKey, k, false)
		}
		return EventAPIKey
	}
	if len(v) == 0 || v[0] != ' ' {
		return EventUnknown
	}
	v = v[1:]
	if k, ok := cut(v, "ID: "); ok {
		if len(k) > 0 {
			s.setVar(vAPIKeyID, k, false)
		}
		return EventAPIKeyID
	}
	if i := bytes.Index(v, []byte("authorized because method '")); i >= 0 {
		pre := v[:i]
		not := bytes.HasSuffix(pre, []byte("not ")) && (len(pre) == 4 || pre[len(pre)-5] == ' ')
		if not {
			pre = pre[:len(pre)-4]
		}
		setKey(s, pre)
		m := v[i+len("authorized because method '"):]
		if j := bytes.IndexByte(m, '\''); j > 0 {
			methodRoute(s, m[:j])
		}
		if not {
			s.execLevel = record.LevelWarn
			return EventAPIKeyNotAuthorized
		}
		return EventAPIKeyNotRequired
	}
	if i := bytes.Index(v, []byte(" exceeded ")); i >= 0 {
		setKey(s, v[:i])
		w := v[i+len(" exceeded "):]
		ev := EventUnknown
		if _, ok := cut(w, "throttle limit"); ok {
			ev = EventThrottled
			s.bool(KeyExecThrottled)
			s.str(KeyErrorKind, kindThrottled)
		} else if _, ok := cut(w, "quota limit"); ok {
			ev = EventQuotaExceeded
			s.bool(KeyExecQuota)
			s.str(KeyErrorKind, kindQuota)
		} else {
			return EventUnknown
		}
		s.execLevel = record.LevelWarn
		if as, ok := field(w, "for API Stage ", ": "); ok {
			setStage(s, as)
		}
		if id, ok := field(w, "Usage Plan ID ", ",. "); ok && len(id) > 0 {
			s.str(KeyExecUsagePlanID, id)
		}
		if res, ok := field(w, ", Resource ", ", "); ok && len(res) > 0 {
			s.setVar(vResourceID, res, false)
		}
		if m, ok := field(w, ", HttpMethod ", ". "); ok && len(m) > 0 {
			s.str(KeyMethod, m)
		}
		if l, ok := field(w, "Limit: ", " "); ok && record.ValidNumber(l) {
			s.add(record.NumberAttr(KeyExecLimit, l))
		}
		if b, ok := field(w, "Burst: ", " "); ok && record.ValidNumber(b) {
			s.add(record.NumberAttr(KeyExecBurst, b))
		}
		if p, ok := field(w, "Period: ", " "); ok && len(p) > 0 {
			s.str(KeyExecPeriod, p)
		}
		return ev
	}
	return EventUnknown
}

// setKey records a (masked) API key unless it is empty.
func setKey(s *scratch, k []byte) {
	k = trimSpace(k)
	if len(k) > 0 {
		s.setVar(vAPIKey, k, false)
	}
}

func trimLead(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == ':') {
		b = b[1:]
	}
	return b
}
