// Package apigw understands every line Amazon API Gateway writes — access
// logs in any format (JSON, CLF, CSV, XML, any $context template; REST, HTTP
// and WebSocket APIs) and REST/WebSocket execution logs — and maps it to
// Datadog attributes. It is a pure library: no I/O, and no goroutines.
//
// The pipeline's parse stage builds one Parser with New and calls
// Parser.Parse for every record; execution records may then go through a
// Correlator to fold each request into one summary record.
//
// # Routing
//
// Parse first routes a record by its origin (RouteOf, Parser.RouteOf),
// first rule that applies:
//
//  1. Log group "API-Gateway-Execution-Logs_{apiId}/{stage}" (also spelled
//     with "/" instead of "_"; prefix case-insensitive), optionally ending
//     "/Canary": REST execution logs. ExecutionGroup extracts apiId, stage
//     and canary.
//  2. A log group named by configuration — a Config.Formats pattern matches
//     it, or SetFormat registered it: access logs in that format.
//  3. "/aws/apigateway/{apiId}/{stage}[/Canary]" where apiId looks like an
//     API id (10 lower-case letters/digits): WebSocket execution logs. The
//     "/aws/apigateway" prefix is also a popular access-log group name, so
//     in such a group a line that is not an execution line (no "(id) "
//     prefix, no known text) but is a recognisable access log is parsed as
//     an access log; anything else is Unparsed. Name the group in
//     Config.Formats (rule 2) to force access logs.
//  4. Config.AccessLogGroupPrefixes, then the well-known prefixes
//     "api-gateway", "/aws/api-gateway", "/aws/http-api", "/aws/apigateway"
//     (case-insensitive): access logs, format detected per line.
//  5. No log group (API Gateway access logs delivered straight to Firehose):
//     Origin.Stream, or the stream name in Origin.SourceARN, starting
//     "amazon-apigateway-" is an access log (formats are looked up by the
//     stream name); an S3 replay (Origin.Source "s3") whose object key
//     (Origin.RequestID) contains "amazon-apigateway-" likewise.
//  6. Anything else: Kind Other, no attributes, message untouched; Source
//     and Service as the Datadog Forwarder names such logs from their log
//     group and stream (package logsource: /aws/lambda/<fn> → lambda and
//     service <fn>, /aws/rds/… → rds, …), else Source Config.OtherSource
//     ("cloudwatch" by default) and no Service (the delivery then uses the
//     source: never "apigateway").
//
// Every API Gateway record gets Source "apigateway". Groups ending "/Canary"
// get apigateway.canary=true. Routing decisions are cached per log group
// and per delivery stream (8192 entries at most, copy-on-write so readers
// never lock; SetFormat starts a fresh cache).
//
// # Access-log formats
//
// The format of an access-log line is resolved in this order:
//
//  1. Config.Formats: the first rule whose LogGroup pattern matches. Patterns
//     use path.Match syntax ('*', '?', '[...]', '\\') except that '*' also
//     matches '/', so "/aws/api-gateway/*" covers every stage below it.
//  2. SetFormat(logGroup, format): the stage's accessLogSettings.format
//     learned at run time (by exact log group, or delivery stream name).
//  3. Detection per line: a JSON object (keys mapped through the alias table
//     below, nested objects flattened "a.b"; the first line's key layout is
//     remembered per log group so later lines skip the lookups), XML
//     (`<request id="…"> <ip>…</ip> … </request>`, element and attribute
//     names through the same alias table), then the console's CLF formats
//     (REST, REST CloudFormation variant, HTTP) and CSV formats (REST, HTTP).
//
// A line that does not match its configured format is tried with detection
// before it is declared Unparsed (a stage's format may change while older
// lines are in flight). A line nothing matches is delivered as Kind Unparsed
// with ParseError set — never dropped.
//
// Templates (CompileFormat) accept $context.name and ${context.name}; names
// are dotted identifiers; the user-property families (authorizer.*,
// requestOverride.*, responseOverride.*) also allow '-' inside segments and
// a ['quoted'] last segment. A reference begun and not completed
// ("${context.x" without its '}', "${context}", "$context." without a
// name) is an error naming its column (ErrMalformedVariable), not literal
// text that no line would match. Text after a complete reference is
// literal, '}' included: "$context.status}" is matched as "200}", which is
// how a template engine substituting $context.status renders it (not
// verified against API Gateway). A template whose trimmed text is a JSON
// object maps each key (nested keys flattened) to the variable(s) in its
// value; a value mixing text and several variables is matched as a
// sub-template.
// Any other template is a sequence of literals and variables matched left
// to right with bounded backtracking: each value takes the shortest text up
// to the next literal, unless a later literal or the variable's class fails,
// in which case it grows. The classes are the shapes API Gateway renders:
// status and the other HTTP statuses (integration, authorizer, WAF,
// responseOverride) three digits; latencies, lengths, epochs and
// connectedAt unsigned decimals (digits, maybe '.' and digits: no sign, no
// exponent); httpMethod an RFC 9110 token (no '/'); path and resourcePath
// '/' then no whitespace; requestTime "dd/MMM/yyyy:HH:mm:ss +hhmm" (its
// inner space is no boundary); ids, ip, host, protocol and the like a token
// (no whitespace); routeKey, userAgent, messages, certificate fields and
// unknown variables free text. Every class also takes "-" (unset). Between
// two literals a value may be empty (unset); two variables with no literal
// between them each take at least one byte, the first as little as lets the
// rest match. So "$context.httpMethod $context.routeKey $context.protocol"
// recovers routeKey "GET /pets" from "GET GET /pets HTTP/1.1",
// "$context.httpMethod$context.path" splits "GET/pets/7" into GET and
// /pets/7, and "$context.requestTime $context.routeKey" gives the zone to
// requestTime.
//
// Lenient JSON: unquoted numbers, bare "-", empty values, unquoted keys,
// leading/trailing whitespace and newlines, escaped quotes (\" and all JSON
// escapes, decoded into the batch arena), unescaped quotes inside values (a
// quote closes a string only when ',', '}', ']' or the end follows it, a ','
// itself followed by a key), keys in any order, nested objects, arrays
// (kept as raw text), a line cut short (what was read is kept). Duplicate
// keys: the last value wins (one attribute per variable).
//
// "Not set": a value "-" (or empty, or a bare JSON null) means the
// variable was unset; it
// produces no attribute at all, neither typed nor under apigateway.* —
// "-" carries no information and would only pollute facets.
//
// Detection alias table (JSON/XML key → $context variable; keys are also
// matched case-insensitively, and a key spelled as a variable name —
// "identity.sourceIp", "context.status", "$context.status" — maps to it):
//
//	ip sourceIp sourceIP clientIp client_ip remoteAddr → identity.sourceIp
//	caller → identity.caller        user → identity.user      userArn → identity.userArn
//	userAgent user_agent ua → identity.userAgent             apiKey, apiKeyId → identity.apiKey(Id)
//	requestTime time → requestTime (requestTimeEpoch when the value is all digits)
//	requestTimeEpoch epoch → requestTimeEpoch
//	httpMethod method http_method → httpMethod               resourcePath resource → resourcePath
//	routeKey route → routeKey       path requestPath → path   protocol → protocol
//	status statusCode status_code httpStatus → status
//	responseLength bytes → responseLength                     dataProcessed → dataProcessed
//	requestId request_id requestID → requestId                extendedRequestId → extendedRequestId
//	apiId stage accountId domainName domainPrefix resourceId → same name
//	responseLatency latency → responseLatency
//	integrationLatency integrationStatus → same; integrationError integrationErrorMessage → integrationErrorMessage
//	integrationRequestId → integration.requestId             awsEndpointRequestId → same
//	errorMessage error → error.message                        errorResponseType responseType → error.responseType
//	errorMessageString → error.messageString                  validationError → error.validationErrorString
//	principalId authorizerPrincipalId → authorizer.principalId
//	authorizerError/Latency/Status/IntegrationLatency → authorizer.*
//	authorizeError/Latency/Status → authorize.*               authenticateError/Latency/Status → authenticate.*
//	wafResponseCode webaclArn → same; wafError wafLatency wafStatus → waf.*
//	connectionId eventType messageId connectedAt xrayTraceId → same
//
// Any other key becomes apigateway.<key>.
//
// # Attribute mapping
//
// Keys are dotted paths; the renderer nests them. Every recovered variable
// is kept as apigateway.<name> (name without "context.", e.g.
// apigateway.identity.sourceIp, apigateway.status). Variables whose type is
// numeric (status, latencies, lengths, epochs, integration/authorizer/WAF
// status, connectedAt …) and unknown variables (claims, custom keys) are
// record.Number when the value is a valid JSON number, else String;
// variables known to be identifiers (accountId, apiId, requestId, ip …) are
// always String, so a facet never flips type with the value. Typed
// attributes, derived once per record:
//
//	attribute                      type    from
//	http.method                    string  httpMethod
//	http.status_code               int     status (only when 100..599)
//	http.url_details.path          string  path (the actual request path)
//	http.url_details.host          string  domainName
//	http.route                     string  resourcePath, else routeKey without its method ("GET /pets/{id}" → "/pets/{id}"; "$default", "$connect" kept)
//	network.client.ip              string  identity.sourceIp
//	http.useragent                 string  identity.userAgent
//	http.request_id                string  requestId, else extendedRequestId
//	duration                       int     responseLatency (ms, decimals kept) × 1e6 → ns
//	network.bytes_written          int     responseLength, else dataProcessed
//	http.version                   string  protocol without "HTTP/" ("1.1")
//	error.message                  string  error.message
//	error.kind                     string  error.responseType (GatewayResponse type)
//	usr.id                         string  authorizer.principalId
//	http.auth.status_code          int     authorizer.status, else authorize.status
//	http.auth.latency_ms           int     authorizer.latency, else authorize.latency
//	http.auth.error                string  authorizer.error, else authorize.error
//	http.integration.latency_ms    int     integrationLatency, else integration.latency
//	http.integration.status_code   int     integration.status (the backend's), else integrationStatus
//	http.integration.request_id    string  integration.requestId / awsEndpointRequestId
//	http.integration.error         string  integrationErrorMessage / integration.error
//	http.waf.action                string  wafResponseCode (WAF_ALLOW, WAF_BLOCK)
//	http.waf.status_code           int     waf.status
//	http.waf.latency_ms            int     waf.latency
//	http.waf.error                 string  waf.error
//	http.waf.acl_arn               string  webaclArn
//
// Level: record.LevelForHTTPStatus(status) (info when there is no status).
// The access log's own "status" never becomes the log level and no
// attribute ever has a reserved top-level key (status, message, host,
// hostname, service, source, ddsource, ddtags, timestamp, date, level,
// severity, trace_id): everything parsed lives under apigateway., http.,
// network., error., usr. or duration.
//
// Timestamp: requestTimeEpoch (ms; values below 1e11 are taken as seconds
// and scaled, values above 1e14 as µs or ns and scaled down), else
// requestTime in CLF form "02/Jan/2006:15:04:05 -0700" (or all digits, as
// an epoch), else the CloudWatch timestamp is kept.
//
// # Execution logs
//
// A line is "(<requestId>) <text>" (the prefix is optional: older dumps lack
// it); a trailing " [TRUNCATED]" is removed and flagged. Classification
// switches on the first byte of the text, then compares fixed prefixes —
// no regular expressions. Every execution record gets http.request_id (when
// prefixed), apigateway.execution.event, and the fields below. A prefixed
// line with unknown text is still KindExecution (event "unknown"); a line
// with neither prefix nor known text is KindUnparsed.
//
//	event                           line (after the prefix)                                   fields
//	extended_request_id             Extended Request Id: X                                    apigateway.extendedRequestId
//	usage_plan_verify               Verifying Usage Plan for request: R. API Key: K API Stage: A/S   apigateway.apiId, apigateway.stage, apigateway.identity.apiKey
//	api_key_not_required            API Key K authorized because method 'M /r' does not require API Key…   http.method, http.route
//	api_key_not_authorized (warn)   API Key K not authorized because method 'M /r' requires API Key…       http.method, http.route
//	api_key_invalid (warn)          Invalid API Key identifier specified
//	usage_plan_check_succeeded      Usage Plan check succeeded for API Key K and API Stage A/S             apigateway.apiId, apigateway.stage
//	throttled (warn)                API Key K exceeded throttle limit for API Stage A/S: … Usage Plan ID U, RestApi A, Stage S, Resource R, HttpMethod M. Limit: L Burst: B
//	                                apigateway.execution.throttled=true, error.kind=THROTTLED, apigateway.execution.usage_plan_id, apigateway.resourceId, http.method, apigateway.execution.limit, apigateway.execution.burst
//	quota_exceeded (warn)           API Key K exceeded quota limit for API Stage A/S: … Usage Plan ID U. Limit: L Period: P
//	                                apigateway.execution.quota_exceeded=true, error.kind=QUOTA_EXCEEDED, usage_plan_id, limit, apigateway.execution.period
//	api_key                         API Key: K                                                apigateway.identity.apiKey
//	api_key_id                      API Key ID: K                                             apigateway.identity.apiKeyId
//	authorizer_started              Starting authorizer: ID for request: R                    apigateway.authorizer.id
//	authorizer_incoming_identity    Incoming identity: …
//	authorizer_result_body          Authorizer result body before parsing: …
//	authorizer_policy               Using valid authorizer policy for principal: P            apigateway.authorizer.principalId, usr.id
//	authorizer_succeeded            Successfully completed authorizer execution               apigateway.authorizer.outcome=allow
//	authorizer_unauthorized (warn)  Unauthorized request: R                                   apigateway.authorizer.outcome=unauthorized
//	authorizer_denied (warn)        The client is not authorized to perform this operation.   apigateway.authorizer.outcome=deny
//	authorizer_error (error)        Authorizer error…                                         apigateway.authorizer.outcome=error
//	execution_started               Starting execution for request: R
//	method_request                  HTTP Method: M, Resource Path: /p                         http.method, http.url_details.path
//	method_request_path             Method request path: {…}
//	method_request_query_string     Method request query string: {…}
//	method_request_headers          Method request headers: {…}
//	method_request_body             Method request body before transformations: …
//	request_validation_succeeded    Request validation succeeded for content type T          apigateway.execution.content_type
//	request_validation_failed (warn) Request validation failed… / Request body does not match model schema for content type T: … / Missing required request parameters: […]
//	                                error.kind=request_validation_failed, error.message
//	endpoint_request_uri            Endpoint request URI: U                                   apigateway.execution.endpoint_uri
//	endpoint_request_headers        Endpoint request headers: {…}
//	endpoint_request_body           Endpoint request body after transformations: …
//	sending_request                 Sending request to U                                      apigateway.execution.endpoint_uri
//	received_response               Received response. [Status: N, ]Integration latency: N ms
//	                                apigateway.integrationLatency (number), http.integration.latency_ms, apigateway.integrationStatus, http.integration.status_code
//	endpoint_response_body          Endpoint response body before transformations: …
//	endpoint_response_headers       Endpoint response headers: {…}
//	method_response_body            Method response body after transformations: …
//	method_response_headers         Method response headers: {…}
//	execution_succeeded             Successfully completed execution
//	method_completed                Method completed with status: N                           http.status_code, apigateway.status; level from N
//	execution_failed_timeout (error) Execution failed due to a timeout error                  error.kind=timeout, error.message
//	execution_failed_configuration (error) Execution failed due to configuration error: X    error.kind=configuration_error, error.message=X (authorizer outcome error for "Authorizer…")
//	execution_failed (error)        Execution failed… (any other reason)                      error.kind=execution_failed, error.message
//	endpoint_request_timeout (error) Endpoint request timed out                               error.kind=timeout
//	lambda_function_error (error)   Lambda execution failed with status N due to customer function error: X. Lambda request id: I
//	                                error.kind=lambda_function_error, error.message=X, http.integration.status_code, http.integration.request_id
//	lambda_invocation_failed (error) Lambda invocation failed with status: N. Lambda request id: I
//	integration_request_id          AWS Integration Endpoint RequestId : I                    apigateway.integration.requestId, http.integration.request_id
//	xray_trace_id                   X-ray Tracing ID : T                                      apigateway.xrayTraceId
//	gateway_response                Gateway response type: T with status code: N              error.kind=T, http.status_code; level from N
//	gateway_response_body           Gateway response body: …
//	gateway_response_headers        Gateway response headers: {…}
//	websocket_route                 WebSocket Request Route: [R]                              apigateway.routeKey, http.route
//	unknown                         any other text after a request-id prefix
//
// Lines marked (warn)/(error) set that level; others are info. Bodies and
// headers are not copied into attributes (they stay in the message).
// The catalogue follows docs/wire-formats.md#execution-logs; api_key_not_authorized, api_key_invalid,
// authorizer_denied, authorizer_error, gateway_response*, lambda_invocation_failed,
// endpoint_request_timeout and request validation failures are commonly seen
// texts not verified against a primary source. WebSocket execution lines
// use the same catalogue plus websocket_route (unverified); other
// WebSocket texts are KindExecution with event "unknown" when prefixed.
//
// # Request correlation
//
// Correlator.Observe folds execution records by http.request_id (across
// batches) and returns one KindSummary record when "Method completed with
// status" arrives: method, route/path, status, integration latency and
// status, authorizer outcome (allow < unauthorized < deny < error, the
// strongest wins), throttled/quota, the first error message and kind,
// apiId/stage, extended request id, canary, first/last event timestamps,
// elapsed ms and line count (attributes apigateway.summary.*). The status
// is the last one a line gave ("Method completed with status", "Gateway
// response type: … with status code"). A summary that ends without a
// completion line and without a status, of a request that API Gateway
// refused before its integration, gets the status API Gateway answers
// such a refusal, marked apigateway.summary.status_inferred=true (Bool,
// present only then): 401 for an authorizer's "Unauthorized request", 403
// for its deny, else 429 for a usage plan's throttle or quota (an
// authorizer error, a 500 by default, is left without one). At logging
// level ERROR API Gateway writes only error-level entries, and a refused
// request may then be logged without its completion line; a completion
// line's status always wins. The lines that follow completion (AWS
// Integration Endpoint RequestId, X-ray Tracing ID) are attached while the
// request is open and otherwise ignored — they never open a request. A
// completion for a request never seen yields a summary of that line
// alone. Memory is bounded: MaxOpen open requests (per-shard FIFO
// eviction; Observe returns the evicted request's partial summary, reason
// "evicted") with string fields capped in length; Expire
// emits requests open longer than MaxAge (reason "expired"), Flush all of
// them (reason "flushed"). Ages use the Correlator's clock (arrival), not
// event time, so replays of old logs do not expire instantly.
//
// One request, one summary: batches arrive out of order (a Firehose retry
// overtaken by later requests, batches parsed concurrently), so a
// request's completion may come before its earlier lines. The Correlator
// remembers the id of every request it summarised (completed, expired or
// evicted; not flushed) for MaxAge after the summary, MaxOpen ids at most
// (per shard, oldest forgotten first; about 42 bytes each, 8 MB for the
// default 200,000). A line of a remembered request, whatever it says,
// opens no request and makes no second summary: it is delivered as a log
// like every line, folded into nothing, and counted (Stats.Late,
// correlator.late_lines; the lines that only follow completion stay
// counted as ignored). A line that comes later than that opens a request
// as any other, whose partial summary is a second one. Ids are
// remembered by a 64-bit hash: two ids colliding (about one chance in
// 10^9 among 200,000 ids) would make the second request's lines late.
// The memory is the process's: lines of one request parsed by two
// workers of a fleet, or before and after a restart, are folded into two
// summaries.
//
// # Limits
//
// Formats: 16 KiB (API Gateway allows 3 KB); a variable name longer than 245
// bytes (its key apigateway.<name> over 256) is an error. JSON nesting: 16
// levels; XML: 8. Keys longer than 256 bytes, or with an empty dotted
// segment or control characters, are ignored. Template matching backtracks at most 4096 steps
// and searches at most 8×len(line)+4096 bytes per line, then the line does
// not match its format. Dynamically named
// variables (claims, unknown JSON keys) are interned up to 4096 names;
// beyond that their attribute keys are built per record. Request ids in the
// execution prefix: up to 128 characters, either of [A-Za-z0-9._:-] (REST's
// UUIDs) or standard base64 with its '=' padding (WebSocket and HTTP APIs:
// "Dwz4lGRyvHcF0KQ="; '+', '/' and '=' are accepted only there). Correlator
// fields: method 16 bytes, route/path 512, error message 1024, others 128.
// XML values are taken verbatim (API Gateway does not escape them).
//
// # Concurrency and memory
//
// Parser and Correlator are safe for concurrent use. Parse does not
// allocate on the common path: attribute keys are interned constants,
// values alias rec.Message (escaped JSON strings are decoded into the batch
// arena with b.Keep), and attribute slices reuse rec.Attrs's capacity or are
// carved from a pooled slab (one allocation per few hundred records).
package apigw
