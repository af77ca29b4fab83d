package derive_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

func TestReadRequest(t *testing.T) {
	t.Parallel()
	s := func(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }
	n := func(k, v string) record.Attr { return record.NumberAttr(k, []byte(v)) }
	i := record.IntAttr
	b := record.BoolAttr
	tests := []struct {
		name  string
		kind  record.Kind
		attrs []record.Attr
		want  derive.Request
	}{
		{name: "nothing", want: derive.Request{}},
		{
			name: "mapped attributes",
			attrs: []record.Attr{s("http.method", "GET"), s("http.route", "/pets/{id}"), i("http.status_code", 404),
				i("duration", 31_000_000), i("http.integration.latency_ms", 27), i("network.bytes_written", 512)},
			want: derive.Request{Method: []byte("GET"), Route: []byte("/pets/{id}"), Status: 404,
				LatencyMS: 31, HasLatency: true, IntegLatencyMS: 27, HasIntegLatency: true, ResponseBytes: 512, HasResponseSize: true},
		},
		{
			name: "raw context variables only",
			attrs: []record.Attr{s("apigateway.httpMethod", "POST"), s("apigateway.routeKey", "POST /orders"), s("apigateway.status", "201"),
				n("apigateway.responseLatency", "12.5"), n("apigateway.integration.latency", "10"), n("apigateway.dataProcessed", "77")},
			want: derive.Request{Method: []byte("POST"), Route: []byte("/orders"), Status: 201,
				LatencyMS: 12.5, HasLatency: true, IntegLatencyMS: 10, HasIntegLatency: true, ResponseBytes: 77, HasResponseSize: true},
		},
		{
			// The route of the log: derive once had its own reading of a
			// routeKey, which cut "get /orders" where the parser keeps it.
			name:  "a route key as the parser reads it",
			attrs: []record.Attr{s("apigateway.routeKey", "get /orders")},
			want:  derive.Request{Route: apigw.RouteFromKey([]byte("get /orders"))},
		},
		{
			name:  "a route key without a method",
			attrs: []record.Attr{s("apigateway.routeKey", "$default")},
			want:  derive.Request{Route: []byte("$default")},
		},
		{
			name: "preferred keys win over fallbacks, in any order",
			attrs: []record.Attr{n("apigateway.integrationLatency", "99"), s("apigateway.resourcePath", "/raw"), n("apigateway.status", "500"),
				s("http.route", "/mapped"), i("http.status_code", 200), i("http.integration.latency_ms", 5)},
			want: derive.Request{Route: []byte("/mapped"), Status: 200, IntegLatencyMS: 5, HasIntegLatency: true},
		},
		{
			name: "unset variables and junk are absent",
			attrs: []record.Attr{s("http.method", "-"), s("apigateway.status", "-"), n("apigateway.responseLatency", "-"),
				s("apigateway.responseLength", "n/a"), i("http.status_code", 42), {Key: "http.route", Kind: record.Null},
				i("duration", -5)},
			want: derive.Request{},
		},
		{
			name:  "throttled by status",
			attrs: []record.Attr{i("http.status_code", 429)},
			want:  derive.Request{Status: 429, Throttled: true},
		},
		{
			name:  "throttled by gateway response type",
			attrs: []record.Attr{s("apigateway.error.responseType", "QUOTA_EXCEEDED")},
			want:  derive.Request{Throttled: true},
		},
		{
			name:  "throttled by an execution-log line",
			kind:  record.KindSummary,
			attrs: []record.Attr{b("apigateway.execution.throttled", true)},
			want:  derive.Request{Throttled: true},
		},
		{
			name:  "integration error by status",
			attrs: []record.Attr{i("http.integration.status_code", 502)},
			want:  derive.Request{IntegrationError: true},
		},
		{
			name:  "integration error by message",
			attrs: []record.Attr{s("apigateway.integrationErrorMessage", "Lambda timed out")},
			want:  derive.Request{IntegrationError: true},
		},
		{
			name:  "integration error by response type",
			attrs: []record.Attr{s("error.kind", "INTEGRATION_TIMEOUT")},
			want:  derive.Request{IntegrationError: true},
		},
		{
			name:  "no integration error",
			attrs: []record.Attr{s("apigateway.integrationStatus", "200"), s("apigateway.integration.error", "-")},
			want:  derive.Request{},
		},
		{
			name: "websocket and cache",
			attrs: []record.Attr{s("apigateway.eventType", "MESSAGE"), s("apigateway.cache.status", "Hit"),
				s("apigateway.apiId", "abc"), s("apigateway.stage", "dev"), s("apigateway.accountId", "1")},
			want: derive.Request{EventType: []byte("MESSAGE"), Cache: derive.CacheHit, APIID: []byte("abc"), Stage: []byte("dev"), Account: []byte("1")},
		},
		{
			name:  "cache miss as bool",
			attrs: []record.Attr{b("apigateway.cacheHit", false)},
			want:  derive.Request{Cache: derive.CacheMiss},
		},
		{
			name:  "summary elapsed time only when complete",
			kind:  record.KindSummary,
			attrs: []record.Attr{i("apigateway.summary.elapsed_ms", 40)},
			want:  derive.Request{},
		},
		{
			name:  "summary elapsed time",
			kind:  record.KindSummary,
			attrs: []record.Attr{i("apigateway.summary.elapsed_ms", 40), b("apigateway.summary.complete", true), b("gwpipe.stage_has_access_logs", false)},
			want:  derive.Request{LatencyMS: 40, HasLatency: true, StageAccessLogs: -1},
		},
		{
			name:  "access logs ignore elapsed time",
			attrs: []record.Attr{i("apigateway.summary.elapsed_ms", 40), b("apigateway.summary.complete", true)},
			want:  derive.Request{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == 0 {
				kind = record.KindAccess
			}
			rec := record.Record{Kind: kind, Attrs: tc.attrs}
			var got derive.Request
			derive.ReadRequest(&rec, derive.DefaultCacheStatusKeys, &got)
			assert.Equal(t, tc.want, got)
		})
	}
}
