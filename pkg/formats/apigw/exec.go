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
	var lvl record.Level
	ev = classifyExec(rest, s, &lvl)
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

func validReqID(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// parseExecution parses an execution-log line into s. It returns false when
// the line is neither prefixed with a request id nor a known line.
func parseExecution(rec *record.Record, s *scratch) bool {
	id, rest, truncated := splitExecPrefix(rec.Message)
	lvl := record.LevelInfo
	ev := classifyExec(rest, s, &lvl)
	if ev == EventUnknown && id == nil {
		return false
	}
	rec.Kind = record.KindExecution
	rec.Level = lvl
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

func setStatus(s *scratch, v []byte, lvl *record.Level) {
	if n, ok := parseIntLoose(v); ok && n >= 100 && n <= 599 {
		s.int(KeyStatusCode, n)
		s.setVar(vStatus, v, false)
		*lvl = record.LevelForHTTPStatus(int(n))
	}
}

// classifyExec recognises the text of an execution line (after the request
// id prefix), dispatching on its first byte and then on fixed prefixes.
func classifyExec(r []byte, s *scratch, lvl *record.Level) ExecEvent {
	if len(r) < 4 {
		return EventUnknown
	}
	switch r[0] {
	case 'A':
		if v, ok := cut(r, "API Key"); ok {
			return classifyAPIKey(v, s, lvl)
		}
		if v, ok := cut(r, "AWS Integration Endpoint RequestId : "); ok {
			s.setVar(vIntegrationReqID, v, false)
			s.str(KeyIntegRequestID, v)
			return EventIntegrationRequestID
		}
		if _, ok := cut(r, "Authorizer result body before parsing: "); ok {
			return EventAuthorizerResultBody
		}
		if v, ok := cut(r, "Authorizer error"); ok {
			*lvl = record.LevelError
			s.str(KeyAuthorizerOutcome, outcomeError)
			if m := trimLead(v); len(m) > 0 {
				s.str(KeyErrorMessage, m)
			}
			return EventAuthorizerError
		}
	case 'E':
		if v, ok := cut(r, "Extended Request Id: "); ok {
			s.setVar(vExtendedRequestID, v, false)
			return EventExtendedRequestID
		}
		if v, ok := cut(r, "Endpoint re"); ok {
			if w, ok := cut(v, "quest URI: "); ok {
				s.str(KeyExecEndpointURI, w)
				return EventEndpointRequestURI
			}
			if _, ok := cut(v, "quest headers: "); ok {
				return EventEndpointRequestHeaders
			}
			if _, ok := cut(v, "quest body after transformations: "); ok {
				return EventEndpointRequestBody
			}
			if _, ok := cut(v, "sponse body before transformations: "); ok {
				return EventEndpointResponseBody
			}
			if _, ok := cut(v, "sponse headers: "); ok {
				return EventEndpointResponseHeaders
			}
			if _, ok := cut(v, "quest timed out"); ok {
				*lvl = record.LevelError
				s.str(KeyErrorKind, kindTimeout)
				s.str(KeyErrorMessage, r)
				return EventEndpointRequestTimeout
			}
		}
		if v, ok := cut(r, "Execution failed"); ok {
			*lvl = record.LevelError
			if m, ok := cut(v, " due to configuration error: "); ok {
				s.str(KeyErrorKind, kindConfiguration)
				s.str(KeyErrorMessage, m)
				if bytes.HasPrefix(m, []byte("Authorizer")) {
					s.str(KeyAuthorizerOutcome, outcomeError)
				}
				return EventExecutionFailedConfiguration
			}
			if _, ok := cut(v, " due to a timeout error"); ok {
				s.str(KeyErrorKind, kindTimeout)
				s.str(KeyErrorMessage, r)
				return EventExecutionFailedTimeout
			}
			s.str(KeyErrorKind, kindExecution)
			s.str(KeyErrorMessage, r)
			return EventExecutionFailed
		}
	case 'M':
		if v, ok := cut(r, "Method re"); ok {
			if _, ok := cut(v, "quest path: "); ok {
				return EventMethodRequestPath
			}
			if _, ok := cut(v, "quest query string: "); ok {
				return EventMethodRequestQueryString
			}
			if _, ok := cut(v, "quest headers: "); ok {
				return EventMethodRequestHeaders
			}
			if _, ok := cut(v, "quest body before transformations: "); ok {
				return EventMethodRequestBody
			}
			if _, ok := cut(v, "sponse body after transformations: "); ok {
				return EventMethodResponseBody
			}
			if _, ok := cut(v, "sponse headers: "); ok {
				return EventMethodResponseHeaders
			}
		}
		if v, ok := cut(r, "Method completed with status: "); ok {
			setStatus(s, v, lvl)
			return EventMethodCompleted
		}
		if v, ok := cut(r, "Missing required request parameters: "); ok {
			*lvl = record.LevelWarn
			s.str(KeyErrorKind, kindValidation)
			s.str(KeyErrorMessage, v)
			return EventRequestValidationFailed
		}
	case 'S':
		if v, ok := cut(r, "Starting "); ok {
			if w, ok := cut(v, "authorizer: "); ok {
				if i := bytes.IndexByte(w, ' '); i > 0 {
					w = w[:i]
				}
				s.str(KeyExecAuthorizerID, w)
				return EventAuthorizerStarted
			}
			if _, ok := cut(v, "execution for request: "); ok {
				return EventExecutionStarted
			}
		}
		if v, ok := cut(r, "Sending request to "); ok {
			s.str(KeyExecEndpointURI, v)
			return EventSendingRequest
		}
		if v, ok := cut(r, "Successfully completed "); ok {
			if _, ok := cut(v, "execution"); ok {
				return EventExecutionSucceeded
			}
			if _, ok := cut(v, "authorizer execution"); ok {
				s.str(KeyAuthorizerOutcome, outcomeAllow)
				return EventAuthorizerSucceeded
			}
		}
	case 'R':
		if v, ok := cut(r, "Received response. "); ok {
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
			return EventReceivedResponse
		}
		if v, ok := cut(r, "Request validation succeeded for content type "); ok {
			s.str(KeyExecContentType, v)
			return EventRequestValidationSucceeded
		}
		if _, ok := cut(r, "Request validation failed"); ok {
			*lvl = record.LevelWarn
			s.str(KeyErrorKind, kindValidation)
			s.str(KeyErrorMessage, r)
			return EventRequestValidationFailed
		}
		if v, ok := cut(r, "Request body does not match model schema for content type "); ok {
			*lvl = record.LevelWarn
			if i := bytes.IndexByte(v, ':'); i > 0 {
				s.str(KeyExecContentType, v[:i])
			}
			s.str(KeyErrorKind, kindValidation)
			s.str(KeyErrorMessage, r)
			return EventRequestValidationFailed
		}
	case 'U':
		if v, ok := cut(r, "Usage Plan check succeeded for API Key "); ok {
			if as, ok := field(v, "API Stage ", " "); ok {
				setStage(s, as)
			}
			return EventUsagePlanCheckSucceeded
		}
		if _, ok := cut(r, "Unauthorized request: "); ok {
			*lvl = record.LevelWarn
			s.str(KeyAuthorizerOutcome, outcomeUnauthorized)
			return EventAuthorizerUnauthorized
		}
		if v, ok := cut(r, "Using valid authorizer policy for principal: "); ok {
			s.setVar(vPrincipalID, v, false)
			s.str(KeyUserID, v)
			return EventAuthorizerPolicy
		}
	case 'V':
		if v, ok := cut(r, "Verifying Usage Plan for request: "); ok {
			if k, ok := field(v, "API Key: ", " "); ok && len(k) > 0 && !bytes.HasPrefix(k, []byte("API")) {
				s.setVar(vAPIKey, k, false)
			}
			if as, ok := field(v, "API Stage: ", " "); ok {
				setStage(s, as)
			}
			return EventUsagePlanVerify
		}
	case 'H':
		if v, ok := cut(r, "HTTP Method: "); ok {
			if i := bytes.Index(v, []byte(", Resource Path: ")); i > 0 {
				s.str(KeyMethod, v[:i])
				s.str(KeyPath, v[i+len(", Resource Path: "):])
			}
			return EventMethodRequest
		}
	case 'X':
		if v, ok := cut(r, "X-ray Tracing ID : "); ok {
			s.setVar(vXRay, v, false)
			return EventXRayTraceID
		}
	case 'I':
		if _, ok := cut(r, "Incoming identity: "); ok {
			return EventAuthorizerIncomingIdentity
		}
		if _, ok := cut(r, "Invalid API Key identifier specified"); ok {
			*lvl = record.LevelWarn
			return EventAPIKeyInvalid
		}
	case 'L':
		if v, ok := cut(r, "Lambda execution failed with status "); ok {
			*lvl = record.LevelError
			st := v
			if i := bytes.IndexByte(st, ' '); i > 0 {
				st = st[:i]
			}
			if n, ok := parseIntLoose(st); ok && n >= 100 && n <= 599 {
				s.int(KeyIntegStatus, n)
			}
			s.str(KeyErrorKind, kindLambda)
			if m, ok := field(v, "due to customer function error: ", ""); ok {
				if i := bytes.Index(m, []byte(". Lambda request id: ")); i >= 0 {
					s.str(KeyIntegRequestID, m[i+len(". Lambda request id: "):])
					m = m[:i]
				}
				s.str(KeyErrorMessage, m)
			} else {
				s.str(KeyErrorMessage, r)
			}
			return EventLambdaFunctionError
		}
		if v, ok := cut(r, "Lambda invocation failed with status: "); ok {
			*lvl = record.LevelError
			st := v
			if i := bytes.IndexAny(st, ". "); i > 0 {
				st = st[:i]
			}
			if n, ok := parseIntLoose(st); ok && n >= 100 && n <= 599 {
				s.int(KeyIntegStatus, n)
			}
			if id, ok := field(v, "Lambda request id: ", " "); ok && len(id) > 0 {
				s.str(KeyIntegRequestID, id)
			}
			s.str(KeyErrorKind, kindLambdaInvoke)
			s.str(KeyErrorMessage, r)
			return EventLambdaInvocationFailed
		}
	case 'G':
		if v, ok := cut(r, "Gateway response "); ok {
			if w, ok := cut(v, "type: "); ok {
				t := w
				if i := bytes.IndexByte(t, ' '); i > 0 {
					t = t[:i]
				}
				s.str(KeyErrorKind, t)
				if st, ok := field(w, "with status code: ", " "); ok {
					setStatus(s, st, lvl)
				}
				return EventGatewayResponse
			}
			if _, ok := cut(v, "body: "); ok {
				return EventGatewayResponseBody
			}
			if _, ok := cut(v, "headers: "); ok {
				return EventGatewayResponseHeaders
			}
		}
	case 'W':
		if v, ok := cut(r, "WebSocket Request Route: ["); ok {
			if i := bytes.IndexByte(v, ']'); i > 0 {
				s.setVar(vRouteKey, v[:i], false)
				s.str(KeyRoute, v[:i])
			}
			return EventWebSocketRoute
		}
	case 'T':
		if _, ok := cut(r, "The client is not authorized to perform this operation"); ok {
			*lvl = record.LevelWarn
			s.str(KeyAuthorizerOutcome, outcomeDeny)
			return EventAuthorizerDenied
		}
	}
	return EventUnknown
}

// classifyAPIKey handles lines starting "API Key ": "API Key: x",
// "API Key ID: x", and "API Key <key> authorized because…", "… exceeded
// throttle limit…", "… exceeded quota limit…", "… not authorized because…".
func classifyAPIKey(v []byte, s *scratch, lvl *record.Level) ExecEvent {
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
			*lvl = record.LevelWarn
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
		*lvl = record.LevelWarn
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
		if l, ok := field(w, "Limit: ", " "); ok && isJSONNumber(l) {
			s.add(record.NumberAttr(KeyExecLimit, l))
		}
		if b, ok := field(w, "Burst: ", " "); ok && isJSONNumber(b) {
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
