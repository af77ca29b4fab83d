package derive_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// cpuPerRecord reports the process CPU time (user+sys, getrusage) per
// record of the timed loop, a figure that stays meaningful on a shared
// machine where wall-clock ns/op does not, and the allocations per 1000
// records (allocs/op rounds a batch's few allocations down to 0); call its
// result when the loop ends. One op is one record.
func cpuPerRecord(b *testing.B) func() {
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := procstat.CPU()
	return func() {
		b.StopTimer()
		c := procstat.CPU() - c0
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		if b.N > 0 {
			if c > 0 {
				b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/rec")
			}
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)*1000/float64(b.N), "allocs/krec")
		}
	}
}

// typicalAccess is an access log as the parser and enrichment leave it
// (the attribute set of the seed JSON format, ~22 attributes, 7 tags).
// benchTags is shared by the records of one origin, as the enrichment does.
var benchTags = []string{"apiid:a1b2c3d4e5", "apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:123456789012", "team:payments", "env:prod"}

func typicalAccess(i int, ts int64) record.Record {
	s := func(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }
	routes := []string{"/pets", "/pets/{petId}", "/orders", "/orders/{id}", "/users/{id}/cart", "/health", "/search", "/login"}
	methods := []string{"GET", "GET", "POST", "PUT", "DELETE"}
	statuses := []int64{200, 200, 200, 201, 204, 301, 400, 404, 429, 500, 502}
	route := routes[i%len(routes)]
	status := statuses[(i/3)%len(statuses)]
	lat := int64(5 + (i*37)%900)
	return record.Record{
		Origin:    &record.Origin{Source: "firehose", Account: "123456789012", Region: "us-east-1", LogGroup: "API-Gateway-Access-Logs_a1b2c3d4e5/prod"},
		Timestamp: ts, Kind: record.KindAccess, Level: record.LevelInfo,
		Message: []byte(`{"requestId":"3323ffe5-6f9a-4b1e-9c2d-5e8f7a6b4c3d","httpMethod":"GET"}`),
		Tags:    benchTags,
		Attrs: []record.Attr{
			s("http.request_id", "3323ffe5-6f9a-4b1e-9c2d-5e8f7a6b4c3d"),
			s("network.client.ip", "203.0.113.7"),
			s("http.method", methods[i%len(methods)]),
			s("http.route", route),
			s("http.url_details.path", "/prod"+route),
			record.IntAttr("http.status_code", status),
			s("http.version", "HTTP/1.1"),
			record.IntAttr("network.bytes_written", 100+int64(i%4000)),
			record.IntAttr("duration", lat*1_000_000),
			s("http.useragent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
			s("http.url_details.host", "api.example.com"),
			record.IntAttr("http.integration.latency_ms", lat-3),
			s("apigateway.extendedRequestId", "Kq3XyGqvoAMF2vA="),
			s("apigateway.requestTime", "29/Nov/2024:03:13:20 +0000"),
			record.IntAttr("apigateway.requestTimeEpoch", ts),
			s("apigateway.resourcePath", route),
			s("apigateway.status", strconv.FormatInt(status, 10)),
			record.NumberAttr("apigateway.integrationLatency", []byte(strconv.FormatInt(lat-3, 10))),
			record.NumberAttr("apigateway.responseLatency", []byte(strconv.FormatInt(lat, 10))),
			s("apigateway.apiId", "a1b2c3d4e5"),
			s("apigateway.stage", "prod"),
			{Key: "apigateway.caller", Kind: record.Null},
		},
	}
}

type discard struct{}

func (discard) Emit(context.Context, *record.Batch) error       { return nil }
func (discard) DeadLetter(context.Context, *record.Batch) error { return nil }

// BenchmarkDeriveAccess measures aggregation of access logs into open
// windows: one op is one record. Series already exist (steady state), so
// the only allocations are the distribution slices growing.
func BenchmarkDeriveAccess(b *testing.B) {
	for _, allow := range [][]string{nil, {"team", "env"}} {
		b.Run(fmt.Sprintf("allowlist=%d", len(allow)), func(b *testing.B) {
			now := t0.Add(5 * time.Second)
			d, err := derive.New(derive.Config{Now: func() time.Time { return now }, Host: "bench", TagAllowlist: allow}, nil)
			if err != nil {
				b.Fatal(err)
			}
			const size = 500
			batch := &record.Batch{Records: make([]record.Record, size)}
			for i := range batch.Records {
				batch.Records[i] = typicalAccess(i, t0.UnixMilli()+int64(i))
			}
			ctx := context.Background()
			_ = d.Handle(ctx, batch, discard{}) // create the series
			b.ReportAllocs()
			b.ResetTimer()
			done := cpuPerRecord(b)
			for i := 0; i < b.N; i += size {
				n := min(size, b.N-i)
				in := batch
				if n < size {
					in = &record.Batch{Records: batch.Records[:n]}
				}
				_ = d.Handle(ctx, in, discard{})
			}
			done()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkDeriveRolling includes closing windows and building the metric
// batches: event time advances 1 ms per record, so a window (and its
// ~250 series) closes every 10,000 records.
func BenchmarkDeriveRolling(b *testing.B) {
	var now time.Time
	d, err := derive.New(derive.Config{Now: func() time.Time { return now }, Host: "bench", MaxAge: time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	const size = 500
	recs := make([]record.Record, size)
	for i := range recs {
		recs[i] = typicalAccess(i, 0)
	}
	batch := &record.Batch{Records: recs}
	ctx := context.Background()
	ts := t0.UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	done := cpuPerRecord(b)
	for i := 0; i < b.N; i += size {
		for j := range recs {
			recs[j].Timestamp = ts
			ts++
		}
		now = time.UnixMilli(ts)
		_ = d.Handle(ctx, batch, discard{})
	}
	done()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// mixBatch is a realistic derive input of n records, parsed by the real
// parser: runs of 25 records per origin (the enrichment shares one tag
// slice per origin) from a REST API (allowlisted team tag), an HTTP API
// (routeKey), a WebSocket API (eventType) and a REST API whose tags lack
// apiid and stage (read from the attributes instead), with one record in
// 20 an execution log line (ignored) and one in 20 a request summary of a
// stage that writes access logs (skipped).
func mixBatch(b *testing.B, n int) *record.Batch {
	parser, err := apigw.New(apigw.Config{})
	if err != nil {
		b.Fatal(err)
	}
	type origin struct {
		o    *record.Origin
		tags []string
		line func(i int) string
	}
	statuses := []int{200, 200, 200, 201, 204, 302, 400, 403, 404, 429, 500, 502, 504}
	origins := []origin{
		{&record.Origin{Source: "firehose", Account: "123456789012", Region: "us-east-1", LogGroup: "/aws/api-gateway/petstore"},
			benchTags, accessLine},
		{&record.Origin{Source: "firehose", Account: "123456789012", Region: "eu-west-1", LogGroup: "/aws/api-gateway/orders"},
			[]string{"apiid:h7t8p9q0r1", "apiname:orders-http", "stage:$default", "region:eu-west-1", "aws_account:123456789012", "env:prod"},
			func(i int) string {
				routes := []string{"GET /items/{id}", "POST /items", "GET /items", "DELETE /items/{id}", "$default"}
				lat := 3 + (i*53)%700
				return fmt.Sprintf(`{"requestId":"Kq3XyGqvoAMF%04d","ip":"198.51.100.%d","requestTime":"29/Nov/2024:03:13:20 +0000","httpMethod":"GET",`+
					`"routeKey":"%s","status":%d,"protocol":"HTTP/1.1","responseLength":%d,"responseLatency":%d,"integrationLatency":%d,"integrationStatus":%d}`,
					i, i%250, routes[i%len(routes)], statuses[(i/2)%len(statuses)], 50+i%3000, lat, lat-2, statuses[(i/2)%len(statuses)])
			}},
		{&record.Origin{Source: "firehose", Account: "210987654321", Region: "eu-west-1", LogGroup: "/aws/api-gateway/chat"},
			[]string{"apiid:w1s2k3t4u5", "apiname:chat", "stage:prod", "region:eu-west-1", "aws_account:210987654321", "team:chat"},
			func(i int) string {
				events := []string{"MESSAGE", "MESSAGE", "MESSAGE", "CONNECT", "DISCONNECT"}
				routes := []string{"sendmessage", "sendmessage", "$default", "$connect", "$disconnect"}
				return fmt.Sprintf(`{"requestId":"Ws%06d","ip":"192.0.2.%d","requestTime":"29/Nov/2024:03:13:20 +0000","eventType":"%s",`+
					`"routeKey":"%s","status":%d,"connectionId":"L0SM9cOFvHcCIhw=","integrationLatency":%d}`,
					i, i%200, events[i%len(events)], routes[i%len(routes)], statuses[i%len(statuses)], 1+(i*7)%90)
			}},
		{&record.Origin{Source: "firehose", Account: "123456789012", Region: "us-west-2", LogGroup: "/aws/api-gateway/legacy"},
			[]string{"region:us-west-2", "aws_account:123456789012"},
			func(i int) string {
				return strings.Replace(accessLine(i+7), `"apiId":"a1b2c3d4e5"`, `"apiId":"l3g4c5y6z7"`, 1)
			}},
	}
	batch := &record.Batch{Records: make([]record.Record, n)}
	for i := range batch.Records {
		og := origins[(i/25)%len(origins)]
		rec := &batch.Records[i]
		*rec = record.Record{Origin: og.o, Message: []byte(og.line(i))}
		parser.Parse(batch, rec)
		if rec.Kind != record.KindAccess {
			b.Fatalf("line %d: %v %v", i, rec.Kind, rec.ParseError)
		}
		rec.Tags = og.tags
		switch i % 20 {
		case 7:
			rec.Kind = record.KindExecution
		case 13:
			if og.o == origins[0].o {
				rec.Kind = record.KindSummary
			}
		}
	}
	return batch
}

// BenchmarkDeriveMix is derive on the realistic mix of mixBatch, with
// windows rolling as in BenchmarkDeriveRolling (event time advances 2 ms
// per record, as in BenchmarkPipelineShare).
func BenchmarkDeriveMix(b *testing.B) {
	var now time.Time
	d, err := derive.New(derive.Config{Now: func() time.Time { return now }, Host: "bench", TagAllowlist: []string{"team"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	const size = 500
	batch := mixBatch(b, size)
	recs := batch.Records
	ctx := context.Background()
	ts := t0.UnixMilli()
	b.ReportAllocs()
	b.ResetTimer()
	done := cpuPerRecord(b)
	for i := 0; i < b.N; i += size {
		n := min(size, b.N-i)
		for j := range recs[:n] {
			recs[j].Timestamp = ts
			ts += 2
		}
		now = time.UnixMilli(ts)
		_ = d.Handle(ctx, &record.Batch{Records: recs[:n]}, discard{})
	}
	done()
	if st := d.Stats(); b.N >= size && (st.Records == 0 || st.Ignored == 0 || st.SummariesSkipped == 0) {
		b.Fatalf("not the mix expected: %+v", st)
	}
}
