package apigw

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/record"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"empty", Config{}, ""},
		{"good", Config{Formats: []FormatRule{{LogGroup: "/aws/api-gateway/*", Format: FormatRESTCLF}}, AccessLogGroupPrefixes: []string{"team-"}}, ""},
		{"bad pattern", Config{Formats: []FormatRule{{LogGroup: "[a-", Format: FormatRESTCLF}}}, "malformed"},
		{"empty pattern", Config{Formats: []FormatRule{{Format: FormatRESTCLF}}}, "empty log group"},
		{"no variables", Config{Formats: []FormatRule{{LogGroup: "g", Format: "just text"}}}, "no $context variable"},
		{"empty format", Config{Formats: []FormatRule{{LogGroup: "g"}}}, "no $context variable"},
		{"empty prefix", Config{AccessLogGroupPrefixes: []string{" "}}, "empty prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			_, nerr := New(tc.cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, nerr)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.Error(t, nerr)
		})
	}
}

func TestRouteOf(t *testing.T) {
	p := mustParser(t, Config{
		Formats:                []FormatRule{{LogGroup: "/aws/apigateway/forced-*", Format: FormatRESTCLF}},
		AccessLogGroupPrefixes: []string{"my-team/"},
	})
	require.NoError(t, p.SetFormat("learned-group", FormatHTTPCLF))
	tests := []struct {
		origin record.Origin
		want   Route
	}{
		{record.Origin{LogGroup: "API-Gateway-Execution-Logs_a1b2c3d4e5/prod"}, Route{Kind: RouteExecution, APIID: "a1b2c3d4e5", Stage: "prod", Key: "API-Gateway-Execution-Logs_a1b2c3d4e5/prod"}},
		{record.Origin{LogGroup: "API-Gateway-Execution-Logs_a1b2c3d4e5/prod/Canary"}, Route{Kind: RouteExecution, APIID: "a1b2c3d4e5", Stage: "prod", Canary: true, Key: "API-Gateway-Execution-Logs_a1b2c3d4e5/prod/Canary"}},
		{record.Origin{LogGroup: "API-Gateway-Execution-Logs/a1b2c3d4e5/prod"}, Route{Kind: RouteExecution, APIID: "a1b2c3d4e5", Stage: "prod", Key: "API-Gateway-Execution-Logs/a1b2c3d4e5/prod"}},
		{record.Origin{LogGroup: "api-gateway-execution-logs_x"}, Route{Kind: RouteExecution, Key: "api-gateway-execution-logs_x"}},
		{record.Origin{LogGroup: "/aws/apigateway/abcde12345/production"}, Route{Kind: RouteWebSocketExecution, APIID: "abcde12345", Stage: "production", Key: "/aws/apigateway/abcde12345/production"}},
		{record.Origin{LogGroup: "/aws/apigateway/welcome"}, Route{Kind: RouteAccess, Key: "/aws/apigateway/welcome"}},
		{record.Origin{LogGroup: "/aws/apigateway/forced-abcde12345/prod"}, Route{Kind: RouteAccess, Key: "/aws/apigateway/forced-abcde12345/prod"}},
		{record.Origin{LogGroup: "/aws/api-gateway/petstore"}, Route{Kind: RouteAccess, Key: "/aws/api-gateway/petstore"}},
		{record.Origin{LogGroup: "/aws/http-api/petstore"}, Route{Kind: RouteAccess, Key: "/aws/http-api/petstore"}},
		{record.Origin{LogGroup: "API-Gateway-Access-Logs/prod/Canary"}, Route{Kind: RouteAccess, Canary: true, Key: "API-Gateway-Access-Logs/prod/Canary"}},
		{record.Origin{LogGroup: "my-team/access"}, Route{Kind: RouteAccess, Key: "my-team/access"}},
		{record.Origin{LogGroup: "learned-group"}, Route{Kind: RouteAccess, Key: "learned-group"}},
		{record.Origin{LogGroup: "/aws/lambda/fn"}, Route{Key: "/aws/lambda/fn"}},
		{record.Origin{Stream: "amazon-apigateway-orders"}, Route{Kind: RouteAccess, Key: "amazon-apigateway-orders"}},
		{record.Origin{SourceARN: "arn:aws:firehose:us-east-1:123456789012:deliverystream/amazon-apigateway-orders"}, Route{Kind: RouteAccess, Key: "amazon-apigateway-orders"}},
		{record.Origin{Source: "s3", RequestID: "2024/06/12/08/amazon-apigateway-orders-2-2024-06-12-08-45-12-796e56c0"}, Route{Kind: RouteAccess}},
		{record.Origin{Stream: "other-stream"}, Route{}},
	}
	for _, tc := range tests {
		t.Run(tc.origin.LogGroup+tc.origin.Stream+tc.origin.SourceARN, func(t *testing.T) {
			o := tc.origin
			require.Equal(t, tc.want, p.RouteOf(&o))
			require.Equal(t, tc.want, p.RouteOf(&o), "cached")
		})
	}
	require.Equal(t, Route{}, RouteOf(nil))
	// the package-level RouteOf knows no configuration
	require.Equal(t, RouteOther, RouteOf(&record.Origin{LogGroup: "my-team/access"}).Kind)
	require.Equal(t, RouteWebSocketExecution, RouteOf(&record.Origin{LogGroup: "/aws/apigateway/abcde12345/x"}).Kind)
}

func TestExecutionGroup(t *testing.T) {
	tests := []struct {
		group         string
		api, stage    string
		canary, valid bool
	}{
		{"API-Gateway-Execution-Logs_u9zut7wlwj/production", "u9zut7wlwj", "production", false, true},
		{"API-Gateway-Execution-Logs_u9zut7wlwj/production/Canary", "u9zut7wlwj", "production", true, true},
		{"API-Gateway-Execution-Logs/u9zut7wlwj/dev", "u9zut7wlwj", "dev", false, true},
		{"/aws/apigateway/abcde12345/$default", "abcde12345", "$default", false, true},
		{"/aws/apigateway/not-an-id/prod", "", "", false, false},
		{"API-Gateway-Execution-Logs_u9zut7wlwj", "", "", false, false},
		{"API-Gateway-Execution-Logs_u9zut7wlwj/", "", "", false, false},
		{"API-Gateway-Execution-Logs_u9zut7wlwj/a/b", "", "", false, false},
		{"/aws/lambda/x", "", "", false, false},
	}
	for _, tc := range tests {
		api, stage, canary, ok := ExecutionGroup(tc.group)
		require.Equal(t, tc.valid, ok, tc.group)
		require.Equal(t, tc.api, api, tc.group)
		require.Equal(t, tc.stage, stage, tc.group)
		require.Equal(t, tc.canary, canary, tc.group)
	}
}

func TestFormatPrecedence(t *testing.T) {
	line := []byte(`{"a":"r-1","b":"404"}`)
	p := mustParser(t, Config{Formats: []FormatRule{{LogGroup: "api-gateway-*", Format: `{"a":"$context.requestId","b":"$context.status"}`}}})
	// SetFormat for a group a rule covers does not override the rule
	require.NoError(t, p.SetFormat("api-gateway-x", `{"a":"$context.extendedRequestId","b":"$context.integrationStatus"}`))
	rec := record.Record{Origin: &record.Origin{LogGroup: "api-gateway-x"}, Message: line}
	p.Parse(nil, &rec)
	require.Equal(t, int64(404), attrMap(&rec)[KeyStatusCode])
	// SetFormat for another group applies, and can be removed again
	require.NoError(t, p.SetFormat("other", `{"a":"$context.requestId","b":"$context.integrationStatus"}`))
	rec = record.Record{Origin: &record.Origin{LogGroup: "other"}, Message: line}
	p.Parse(nil, &rec)
	require.Equal(t, record.KindAccess, rec.Kind)
	require.Equal(t, int64(404), attrMap(&rec)[KeyIntegStatus])
	require.Nil(t, attrMap(&rec)[KeyStatusCode])
	require.NoError(t, p.SetFormat("other", ""))
	rec = record.Record{Origin: &record.Origin{LogGroup: "other"}, Message: line}
	p.Parse(nil, &rec)
	require.Equal(t, record.KindOther, rec.Kind)
	require.Equal(t, "cloudwatch", rec.Source)
	require.Error(t, p.SetFormat("", FormatRESTCLF))
	require.Error(t, p.SetFormat("g", "no variables"))
}

// TestOtherSource: logs that are not API Gateway's are named as the
// Datadog Forwarder names them (package logsource); OtherSource is for
// log groups that name no source it knows. Never apigateway.
func TestOtherSource(t *testing.T) {
	p := mustParser(t, Config{OtherSource: "aws"})
	for _, c := range []struct{ group, stream, source, service string }{
		{"/aws/lambda/Checkout-Fn", "2026/11/29/[$LATEST]0123456789abcdef0123456789abcdef", "lambda", "checkout-fn"},
		{"/aws/rds/instance/orders/postgresql", "orders.0", "postgresql", "postgresql"},
		{"/shared", "2026/11/29/pay[$LATEST]0123456789abcdef0123456789abcdef", "lambda", "pay"},
		{"/ecs/orders", "ecs/orders/1", "aws", ""},
	} {
		rec := record.Record{Origin: &record.Origin{LogGroup: c.group, LogStream: c.stream}, Message: []byte("hello"), Attrs: []record.Attr{{Key: "x"}}}
		p.Parse(nil, &rec)
		require.Equal(t, record.KindOther, rec.Kind)
		require.Equal(t, c.source, rec.Source, c.group)
		require.Equal(t, c.service, rec.Service, "%s: the service of the others is their source, given at delivery", c.group)
		require.Empty(t, rec.Attrs)
		require.Equal(t, "hello", string(rec.Message))
	}
}

func TestCompileFormat(t *testing.T) {
	tests := []struct {
		format string
		vars   []string
		json   bool
	}{
		{FormatRESTCLF, []string{"identity.sourceIp", "identity.caller", "identity.user", "requestTime", "httpMethod", "resourcePath", "protocol", "status", "responseLength", "requestId", "extendedRequestId"}, false},
		{FormatDatadog, []string{"apiId", "stage", "requestId", "identity.sourceIp", "identity.caller", "identity.user", "requestTimeEpoch", "httpMethod", "resourcePath", "status", "protocol", "responseLength"}, true},
		{`${context.requestId} $context.status.`, []string{"requestId", "status"}, false},
		{`$context.authorizer.claims['cognito:username'] $context.authorizer.claims.email-verified $context.requestOverride.header.x-amz-id`, []string{"authorizer.claims.cognito:username", "authorizer.claims.email-verified", "requestOverride.header.x-amz-id"}, false},
		{`$context.status-$context.requestId`, []string{"status", "requestId"}, false},
		{`$notcontext.x $context.requestId $ context.status`, []string{"requestId"}, false},
		{"{\"a\": {\"b\": \"$context.status\"}, \"c\": \"x $context.requestId y\"}\n", []string{"status", "requestId"}, true},
	}
	for _, tc := range tests {
		f, err := CompileFormat(tc.format)
		require.NoError(t, err, tc.format)
		require.Equal(t, tc.vars, f.Variables(), tc.format)
		require.Equal(t, tc.json, f.IsJSON(), tc.format)
	}
	_, err := CompileFormat("no vars here")
	require.ErrorIs(t, err, ErrNoVariables)
	_, err = CompileFormat(`{"a":"b"}`)
	require.ErrorIs(t, err, ErrNoVariables)
}

// TestCompileFormatMalformedVariable: a reference begun and not completed
// is an error naming its column, not literal text no line would match.
func TestCompileFormatMalformedVariable(t *testing.T) {
	tests := []struct {
		format, wantErr string // wantErr "": compiles
	}{
		{"$context.requestId ${context.status", `column 20: "${context.status": no '}' after the variable name`},
		{"${context.status", `column 1: "${context.status": no '}' after the variable name`},
		{"$context.requestId ${context.status x}", `column 20: "${context.status": no '}'`},
		{"$context.requestId $context.", `column 20: "$context.": no variable name after "context."`},
		{"$context.requestId $context.5xx", `column 20: "$context.5xx": no variable name`},
		{"$context.requestId ${context.}", `column 20: "${context.}": no variable name`},
		{"$context.requestId ${context}", `column 20: "${context}": no '.' and variable name`},
		{"$context.requestId ${context", `column 20: "${context": no '.' and variable name`},
		{`{"id":"$context.requestId","st":"${context.status"}`, `column 34: "${context.status": no '}'`},
		{" \t$context.requestId $context.", "column 22:"}, // columns count in the text as written
		{"$context.requestId $context.authorizer.claims." + strings.Repeat("x", 240), "column 20: the name is longer than 245 bytes"},
		{"$context.requestId $context.authorizer." + strings.Repeat("x", 245-len("authorizer.")), ""},
		// API Gateway renders these as the variable and literal text
		{"$context.requestId $context.status}", ""},
		{"$context.requestId $context.status.", ""},
		{"$context.requestId $stageVariables.x $5 $ context.x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			_, err := CompileFormat(tc.format)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrMalformedVariable)
			require.ErrorContains(t, err, tc.wantErr)
			// gwpipe validate reports it (pkg/config runs Config.Validate)
			require.ErrorContains(t, Config{Formats: []FormatRule{{LogGroup: "g", Format: tc.format}}}.Validate(), tc.wantErr)
		})
	}
	f, err := CompileFormat("$context.requestId $context.status}")
	require.NoError(t, err)
	got := map[string]string{}
	require.True(t, f.Extract([]byte("r1 200}"), func(n string, v []byte) { got[n] = string(v) }))
	require.Equal(t, map[string]string{"requestId": "r1", "status": "200"}, got)
}

// TestTemplateValueShapes: a value takes the shape API Gateway renders its
// variable in, so variables with no literal between them split where the
// shapes say, and requestTime keeps its zone after its inner space.
func TestTemplateValueShapes(t *testing.T) {
	const (
		clfTime = "03/Dec/2026:19:00:00 +0000"
		idTime  = "$context.requestId $context.requestTime $context.identity.userAgent"
	)
	tests := []struct {
		name, format, line string
		want               map[string]string // nil: the line does not match
	}{
		{"host then path", "$context.requestId https://$context.domainName$context.path $context.status", "r1 https://api.example.com/prod/pets/7 200",
			map[string]string{"requestId": "r1", "domainName": "api.example.com", "path": "/prod/pets/7", "status": "200"}},
		{"method then path", "$context.requestId $context.httpMethod$context.path $context.status", "r1 GET/pets/7 200",
			map[string]string{"requestId": "r1", "httpMethod": "GET", "path": "/pets/7", "status": "200"}},
		{"status then length", "$context.requestId $context.status$context.responseLength", "r1 200512",
			map[string]string{"requestId": "r1", "status": "200", "responseLength": "512"}},
		{"id then status", "$context.requestId$context.status", "c0475a28-8de8-11e7-8d3f-4183da788123200",
			map[string]string{"requestId": "c0475a28-8de8-11e7-8d3f-4183da788123", "status": "200"}},
		{"unset status then length", "$context.requestId $context.status$context.responseLength", "r1 -512",
			map[string]string{"requestId": "r1", "status": "-", "responseLength": "512"}},
		{"both unset", "$context.requestId $context.status$context.responseLength", "r1 --",
			map[string]string{"requestId": "r1", "status": "-", "responseLength": "-"}},
		{"unset method then path", "$context.httpMethod$context.path $context.requestId", "-/pets r1",
			map[string]string{"httpMethod": "-", "path": "/pets", "requestId": "r1"}},
		{"decimal latency then length", "$context.responseLatency$context.status $context.requestId", "12.5200 r1",
			map[string]string{"responseLatency": "12.5", "status": "200", "requestId": "r1"}},
		{"a signed status", "$context.requestId $context.status", "r1 -5", nil},
		{"a plus sign", "$context.requestId $context.status", "r1 +200", nil},
		{"a status of four digits", "$context.requestId $context.status", "r1 2000", nil},
		{"a number with an exponent", "$context.requestId $context.responseLength", "r1 1e3", nil},
		{"a path without its slash", "$context.requestId $context.path", "r1 pets/7", nil},
		{"a method with a slash", "$context.requestId $context.httpMethod", "r1 GET/x", nil},
		{"no room for the second of two", "$context.requestId$context.status", "200", nil},
		{"empty between literals is unset", "$context.requestId,$context.status,$context.path", "r1,,",
			map[string]string{"requestId": "r1", "status": "", "path": ""}},
		{"requestTime then route key", "$context.requestTime $context.routeKey $context.status", clfTime + " GET /pets 200",
			map[string]string{"requestTime": clfTime, "routeKey": "GET /pets", "status": "200"}},
		{"requestTime then user agent", idTime, "r1 " + clfTime + " curl/8.0",
			map[string]string{"requestId": "r1", "requestTime": clfTime, "identity.userAgent": "curl/8.0"}},
		{"requestTime west of UTC", idTime, "r1 03/Dec/2026:12:00:00 -0700 Mozilla/5.0 (X11; Linux x86_64)",
			map[string]string{"requestId": "r1", "requestTime": "03/Dec/2026:12:00:00 -0700", "identity.userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}},
		{"requestTime unset", idTime, "r1 - curl/8.0",
			map[string]string{"requestId": "r1", "requestTime": "-", "identity.userAgent": "curl/8.0"}},
		{"requestTime before a colon", "$context.requestTime:$context.requestId", clfTime + ":r1",
			map[string]string{"requestTime": clfTime, "requestId": "r1"}},
		{"requestTime cut short", idTime, "r1 03/Dec/2026:19:00:00 curl/8.0", nil},
		{"requestTime epoch", "$context.requestTimeEpoch$context.status $context.requestId", "1796324400000200 r1",
			map[string]string{"requestTimeEpoch": "1796324400000", "status": "200", "requestId": "r1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := CompileFormat(tc.format)
			require.NoError(t, err)
			got := map[string]string{}
			ok := f.Extract([]byte(tc.line), func(name string, value []byte) { got[name] = string(value) })
			if tc.want == nil {
				require.False(t, ok, "matched: %v", got)
				return
			}
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}
	// what the hunt saw downstream: the route, the method and the timestamp
	p := mustParser(t, Config{Formats: []FormatRule{{LogGroup: "g", Format: "$context.requestTime $context.routeKey $context.status"}}})
	rec := record.Record{Origin: &record.Origin{LogGroup: "g"}, Message: []byte(clfTime + " GET /pets 200"), Timestamp: 7}
	p.Parse(&record.Batch{}, &rec)
	require.Equal(t, int64(1796324400000), rec.Timestamp)
	require.Equal(t, "/pets", attrMap(&rec)[KeyRoute])
	require.Equal(t, "GET", attrMap(&rec)[KeyMethod])
	require.Equal(t, int64(200), attrMap(&rec)[KeyStatusCode])
}

// TestExecutionRequestID: the prefix of WebSocket and HTTP APIs' execution
// lines is a base64 request id; text in parentheses is still no prefix.
func TestExecutionRequestID(t *testing.T) {
	tests := []struct {
		line, id string // id "": no prefix
		ev       ExecEvent
		ok       bool
	}{
		{"(515f1e99-39db-11e9-9e96-01e5c04505b9) Method completed with status: 200", "515f1e99-39db-11e9-9e96-01e5c04505b9", EventMethodCompleted, true},
		{"(Iq9gwFDNoAMFo1A=) Method completed with status: 500", "Iq9gwFDNoAMFo1A=", EventMethodCompleted, true},
		{"(Dwz4lGRyvHcF0KQ=) WebSocket Request Route: [$connect]", "Dwz4lGRyvHcF0KQ=", EventWebSocketRoute, true},
		{"(Iq9g+wFD/AMFo1A=) Extended Request Id: Iq9g+wFD/AMFo1A=", "Iq9g+wFD/AMFo1A=", EventExtendedRequestID, true},
		{"(Iq9g+wFDNo/AMFo1A=) not base64: 18 bytes", "", EventUnknown, false},
		{"(Dwz4lGRyvHcF0K==) some websocket line", "Dwz4lGRyvHcF0K==", EventUnknown, true},
		{"(Dwz4lGRyvHcF0KQA) some websocket line", "Dwz4lGRyvHcF0KQA", EventUnknown, true},
		{"(UUID_REPLACED_INVALID_REQUEST_ID) Starting execution for request: x", "UUID_REPLACED_INVALID_REQUEST_ID", EventExecutionStarted, true},
		// parentheses around ordinary text
		{"(/pets) some text", "", EventUnknown, false},
		{"(a=b) some text", "", EventUnknown, false},
		{"(Dwz4lGRyvHcF0K=Q) some text", "", EventUnknown, false},
		{"(Dwz4lGRyvHcF0===) some text", "", EventUnknown, false},
		{"(Dwz4lGRy-vHcF0K=) some text", "", EventUnknown, false},
		{"(not an id!) Method completed with status: 200", "", EventUnknown, false},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			id, ev, ok := ParseExecutionLine([]byte(tc.line))
			require.Equal(t, tc.id, string(id))
			require.Equal(t, tc.ev, ev)
			require.Equal(t, tc.ok, ok)
		})
	}
	// in a WebSocket execution group the lines are folded into one request
	p := mustParser(t, Config{})
	c := NewCorrelator(CorrelatorConfig{MaxOpen: 8})
	var sum record.Record
	for _, l := range []string{"(Iq9gwFDNoAMFo1A=) Received response. Status: 500, Integration latency: 23 ms", "(Iq9gwFDNoAMFo1A=) Method completed with status: 500"} {
		rec := record.Record{Origin: &record.Origin{LogGroup: "/aws/apigateway/z1ctxygne5/production"}, Message: []byte(l)}
		p.Parse(&record.Batch{}, &rec)
		require.Equal(t, record.KindExecution, rec.Kind, rec.ParseError)
		require.Equal(t, "Iq9gwFDNoAMFo1A=", attrMap(&rec)[KeyRequestID])
		if s, done := c.Observe(&rec); done {
			sum = s
		}
	}
	require.Equal(t, int64(500), attrMap(&sum)[KeyStatusCode])
	require.Equal(t, "Iq9gwFDNoAMFo1A=", attrMap(&sum)[KeyRequestID])
}

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		in string
		ms int64
		ok bool
	}{
		{"29/Jun/2023:12:01:02 +0000", 1688040062000, true},
		{"29/jun/2023:14:01:02 +0200", 1688040062000, true},
		{"29/Jun/2023:06:31:02 -0530", 1688040062000, true},
		{"29/Jux/2023:12:01:02 +0000", 0, false},
		{"29/Jun/2023 12:01:02 +0000", 0, false},
	} {
		ms, ok := parseCLFTime([]byte(tc.in))
		require.Equal(t, tc.ok, ok, tc.in)
		require.Equal(t, tc.ms, ms, tc.in)
	}
	for _, tc := range []struct {
		in string
		ms int64
	}{
		{"1700000000000", 1700000000000}, {"1700000000", 1700000000000}, {"1700000000123456", 1700000000123},
		{"1700000000123456789", 1700000000123}, {"1700000000.5", 1700000000500},
	} {
		ms, ok := epochMillis([]byte(tc.in))
		require.True(t, ok, tc.in)
		require.Equal(t, tc.ms, ms, tc.in)
	}
	for in, want := range map[string]int64{"31": 31e6, "0": 0, "2266.5": 2266500000, "1.000001": 1000001} {
		ns, ok := msToNanos([]byte(in))
		require.True(t, ok)
		require.Equal(t, want, ns, in)
	}
	for _, bad := range []string{"", "-", "x", "-3", "1e3"} {
		_, ok := msToNanos([]byte(bad))
		require.False(t, ok, bad)
	}
	for in, want := range map[string]bool{"0": true, "-1.5e+3": true, "01": false, "1.": false, "-": false, "": false, "1e": false, ".5": false, "12": true} {
		require.Equal(t, want, record.ValidNumber([]byte(in)), in)
	}
	for in, want := range map[string]string{"GET /pets": "/pets", "$default": "$default", "ANY /x": "/x", "sendmessage": "sendmessage", "GET": "GET"} {
		require.Equal(t, want, string(RouteFromKey([]byte(in))), in)
	}
	require.Equal(t, "GET", string(methodOfRouteKey([]byte("GET /pets"))))
	require.Nil(t, methodOfRouteKey([]byte("ANY /pets")))
	got, _ := jsonstr.Append(nil, []byte(`\u00e9\"\n\ud83d\ude00\ud800\q`))
	require.Equal(t, "é\"\n😀\ufffd\\q", string(got))
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"/aws/api-gateway/*", "/aws/api-gateway/petstore/prod", true},
		{"api-gateway-*", "api-gateway-x", true},
		{"api-gateway-?", "api-gateway-/", false},
		{"*/prod", "a/b/prod", true},
		{"[a-c]x", "bx", true},
		{"[^a-c]x", "bx", false},
		{`\*`, "*", true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	} {
		require.NoError(t, validGlob(tc.pattern))
		require.Equal(t, tc.want, globMatch(tc.pattern, tc.name), "%s %s", tc.pattern, tc.name)
	}
	require.Error(t, validGlob("[a-"))
	require.Error(t, validGlob(`x\`))
}

// TestParseConcurrent parses from many goroutines while formats change (run
// with -race).
func TestParseConcurrent(t *testing.T) {
	p := mustParser(t, Config{Formats: []FormatRule{{LogGroup: "fixed", Format: FormatDatadog}}})
	lines := []struct{ group, line string }{
		{"fixed", benchDatadogLine},
		{"api-gateway-a", benchDatadogLine},
		{"api-gateway-b", benchCLFLine},
		{"learned", benchHTTPCLFLine},
		{"API-Gateway-Execution-Logs_abc/prod", benchExecLines[6]},
		{"/aws/lambda/x", "hello"},
	}
	concurrently(8, func(g int) {
		b := &record.Batch{}
		for i := 0; i < 2000; i++ {
			if g == 0 && i%100 == 0 {
				require.NoError(t, p.SetFormat("learned", FormatHTTPCLF))
				require.NoError(t, p.SetFormat(fmt.Sprintf("g%d", i), FormatRESTCLF))
			}
			l := lines[(g+i)%len(lines)]
			rec := record.Record{Origin: &record.Origin{LogGroup: l.group}, Message: []byte(l.line)}
			p.Parse(b, &rec)
			if rec.Kind == record.KindUnparsed {
				t.Errorf("%s: %s", l.line, rec.ParseError)
				return
			}
		}
	})
}

// concurrently runs fn(0), …, fn(n-1) on n goroutines and waits for them.
func concurrently(n int, fn func(g int)) {
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() { fn(g) })
	}
	wg.Wait()
}

// TestPathologicalLines feeds long adversarial lines to every parser; they
// must be rejected or parsed in roughly linear time (a quadratic matcher
// would take minutes here).
func TestPathologicalLines(t *testing.T) {
	var tmpl strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&tmpl, "$context.authorizer.v%d ", i)
	}
	tmpl.WriteString(`"$context.requestId"`)
	p := mustParser(t, Config{Formats: []FormatRule{
		{LogGroup: "seq", Format: tmpl.String()},
		{LogGroup: "clf", Format: FormatHTTPCLF},
		{LogGroup: "adj", Format: "$context.authorizer.a$context.authorizer.b$context.authorizer.c,"},
	}})
	lines := map[string]string{
		"spaces":   strings.Repeat("x ", 1<<19),
		"quotes":   strings.Repeat(`"x `, 1<<18),
		"brackets": strings.Repeat("[", 1<<20),
		"json":     "{" + strings.Repeat(`"a":"\"`, 1<<17),
		"nested":   strings.Repeat(`{"a":`, 1<<17),
		"xml":      `<request id="x">` + strings.Repeat("<a>", 1<<17),
		"exec":     "(" + strings.Repeat("a", 1<<20),
		"commas":   strings.Repeat(",", 1<<20),
	}
	for _, g := range []string{"seq", "clf", "adj", "api-gateway-detect", "API-Gateway-Execution-Logs_a/b"} {
		for name, l := range lines {
			rec := record.Record{Origin: &record.Origin{LogGroup: g}, Message: []byte(l)}
			p.Parse(&record.Batch{}, &rec)
			require.NoError(t, recordAttrsOK(&rec), "%s/%s", g, name)
		}
	}
}

// TestDetectsRESTConsoleFormatsWithoutExtendedRequestID: the REST console
// formats from before extendedRequestId was added (CLF and CSV ending at
// $context.requestId; still many stages' format, and the AWS CLI's and
// Terraform's examples) are detected, every field in its place. The CLF
// with an IAM caller matched no format (a parse error); with "- -" it was
// read as the HTTP CLF, the resource path as a route key; the CSV was read
// as the HTTP CSV, its fields shifted (the time as the route key, no
// method, the caller and user inside the source IP).
func TestDetectsRESTConsoleFormatsWithoutExtendedRequestID(t *testing.T) {
	p := mustParser(t, Config{})
	cases := []struct {
		line string
		want map[string]any
	}{
		{`198.51.100.4 AIDAEXAMPLEID1 arn:aws:iam::123456789012:user/bob [04/Dec/2026:10:00:00 +0100] "GET /pets/{petId} HTTP/1.1" 200 49 0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a41`,
			map[string]any{"apigateway.identity.sourceIp": "198.51.100.4", "apigateway.identity.caller": "AIDAEXAMPLEID1",
				"apigateway.identity.user": "arn:aws:iam::123456789012:user/bob", "apigateway.resourcePath": "/pets/{petId}",
				"apigateway.httpMethod": "GET", "apigateway.status": "200", "apigateway.responseLength": "49",
				"apigateway.requestId": "0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a41"}},
		{`198.51.100.4 - - [04/Dec/2026:10:00:00 +0100] "DELETE /pets/{petId} HTTP/1.1" 404 - 0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a42`,
			map[string]any{"apigateway.identity.sourceIp": "198.51.100.4", "apigateway.resourcePath": "/pets/{petId}",
				"apigateway.httpMethod": "DELETE", "apigateway.status": "404",
				"apigateway.requestId": "0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a42"}},
		{`198.51.100.4,AIDAEXAMPLEID1,arn:aws:iam::123456789012:user/bob,04/Dec/2026:10:00:00 +0100,POST,/orders,HTTP/1.1,201,12,0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a43`,
			map[string]any{"apigateway.identity.sourceIp": "198.51.100.4", "apigateway.identity.caller": "AIDAEXAMPLEID1",
				"apigateway.identity.user": "arn:aws:iam::123456789012:user/bob", "apigateway.resourcePath": "/orders",
				"apigateway.httpMethod": "POST", "apigateway.protocol": "HTTP/1.1", "apigateway.status": "201",
				"apigateway.responseLength": "12", "apigateway.requestId": "0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a43"}},
		{`198.51.100.4,-,-,04/Dec/2026:10:00:00 +0100,GET,/orders,HTTP/1.1,200,12,0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a44`,
			map[string]any{"apigateway.identity.sourceIp": "198.51.100.4", "apigateway.resourcePath": "/orders",
				"apigateway.httpMethod": "GET", "apigateway.protocol": "HTTP/1.1", "apigateway.status": "200",
				"apigateway.responseLength": "12", "apigateway.requestId": "0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a44"}},
		// the HTTP console formats still go to the HTTP formats
		{`198.51.100.4 - - [04/Dec/2026:10:00:00 +0100] "GET GET /pets HTTP/1.1" 200 49 Iq9gwFDNoAMFo1A=`,
			map[string]any{"apigateway.routeKey": "GET /pets", "apigateway.httpMethod": "GET", "apigateway.requestId": "Iq9gwFDNoAMFo1A="}},
		{`198.51.100.4 - - [04/Dec/2026:10:00:00 +0100] "POST $default HTTP/1.1" 200 49 Iq9gwFDNoAMFo1B=`,
			map[string]any{"apigateway.routeKey": "$default", "apigateway.httpMethod": "POST", "apigateway.requestId": "Iq9gwFDNoAMFo1B="}},
		{`198.51.100.4,04/Dec/2026:10:00:00 +0100,GET,GET /pets,HTTP/1.1,200,49,Iq9gwFDNoAMFo1C=`,
			map[string]any{"apigateway.routeKey": "GET /pets", "apigateway.httpMethod": "GET", "apigateway.requestId": "Iq9gwFDNoAMFo1C="}},
	}
	for _, tc := range cases {
		rec := record.Record{Origin: &record.Origin{LogGroup: "/aws/api-gateway/orders"}, Message: []byte(tc.line)}
		p.Parse(&record.Batch{}, &rec)
		require.Equal(t, record.KindAccess, rec.Kind, "%s: %s", tc.line, rec.ParseError)
		require.Empty(t, rec.ParseError, tc.line)
		require.Equal(t, int64(1796374800000), rec.Timestamp, "the requestTime: %s", tc.line)
		got := attrMap(&rec)
		for k, v := range tc.want {
			require.Equal(t, v, got[k], "%s in %s", k, tc.line)
		}
		if _, http := tc.want["apigateway.routeKey"]; http {
			require.NotContains(t, got, "apigateway.resourcePath", tc.line)
		} else {
			require.NotContains(t, got, "apigateway.routeKey", tc.line)
		}
	}
}

// TestDetectsServerlessFrameworkDefaultFormat: the Serverless Framework's
// default REST access-log format ("requestId: …, ip: …, …", what
// provider.logs.restApi: true sets up) is detected without configuration.
// It was a parse error: no status (so no level from it), the arrival time
// for the request's, and nothing for the metrics derived from logs.
func TestDetectsServerlessFrameworkDefaultFormat(t *testing.T) {
	p := mustParser(t, Config{})
	line := `requestId: 0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a41, ip: 198.51.100.4, caller: AIDAEXAMPLEID1, user: -, requestTime: 04/Dec/2026:10:00:00 +0100, httpMethod: POST, resourcePath: /orders/{id}, status: 502, protocol: HTTP/1.1, responseLength: -`
	rec := record.Record{Origin: &record.Origin{LogGroup: "/aws/api-gateway/orders-service-dev"}, Message: []byte(line), Timestamp: 1}
	p.Parse(&record.Batch{}, &rec)
	require.Equal(t, record.KindAccess, rec.Kind, rec.ParseError)
	require.Empty(t, rec.ParseError)
	require.Equal(t, int64(1796374800000), rec.Timestamp, "the requestTime")
	require.Equal(t, record.LevelForHTTPStatus(502), rec.Level)
	got := attrMap(&rec)
	for k, v := range map[string]any{
		"apigateway.requestId": "0b7e1c2a-4d5e-4f60-8a71-9c8d7e6f5a41", "apigateway.identity.sourceIp": "198.51.100.4",
		"apigateway.identity.caller": "AIDAEXAMPLEID1", "apigateway.httpMethod": "POST", "apigateway.resourcePath": "/orders/{id}",
		"apigateway.status": "502", "apigateway.protocol": "HTTP/1.1", KeyStatusCode: int64(502),
	} {
		require.Equal(t, v, got[k], k)
	}
	require.NotContains(t, got, "apigateway.identity.user", "unset")
	require.NotContains(t, got, "apigateway.responseLength", "unset")
}

// TestDetectsWebSocketConsoleFormats: the console's CLF and CSV access-log
// formats for WebSocket APIs (eventType, routeKey and connectionId where
// REST and HTTP formats have the method, path and protocol), and the CLF
// without $context.status that the Serverless Framework sets up for them,
// are detected without configuration. Each was a parse error.
func TestDetectsWebSocketConsoleFormats(t *testing.T) {
	p := mustParser(t, Config{})
	cases := []struct {
		line   string
		status string
	}{
		{`198.51.100.4 - - [04/Dec/2026:10:00:00 +0100] "MESSAGE sendmessage L0SM9cOFvHcCIhw=" 502 L0SMBFDNoAMFo1A=`, "502"},
		{`198.51.100.4 - - [04/Dec/2026:10:00:00 +0100] "MESSAGE sendmessage L0SM9cOFvHcCIhw=" L0SMBFDNoAMFo1A=`, ""},
		{`198.51.100.4,-,-,04/Dec/2026:10:00:00 +0100,MESSAGE,sendmessage,L0SM9cOFvHcCIhw=,502,L0SMBFDNoAMFo1A=`, "502"},
	}
	for _, tc := range cases {
		rec := record.Record{Origin: &record.Origin{LogGroup: "/aws/api-gateway/chat-dev"}, Message: []byte(tc.line), Timestamp: 1}
		p.Parse(&record.Batch{}, &rec)
		require.Equal(t, record.KindAccess, rec.Kind, "%s: %s", tc.line, rec.ParseError)
		require.Empty(t, rec.ParseError, tc.line)
		require.Equal(t, int64(1796374800000), rec.Timestamp, "the requestTime: %s", tc.line)
		got := attrMap(&rec)
		for k, v := range map[string]any{
			"apigateway.identity.sourceIp": "198.51.100.4", "apigateway.eventType": "MESSAGE", "apigateway.routeKey": "sendmessage",
			"apigateway.connectionId": "L0SM9cOFvHcCIhw=", "apigateway.requestId": "L0SMBFDNoAMFo1A=",
		} {
			require.Equal(t, v, got[k], "%s in %s", k, tc.line)
		}
		if tc.status == "" {
			require.NotContains(t, got, "apigateway.status", tc.line)
		} else {
			require.Equal(t, tc.status, got["apigateway.status"], tc.line)
			require.Equal(t, record.LevelForHTTPStatus(502), rec.Level, tc.line)
		}
	}
}
