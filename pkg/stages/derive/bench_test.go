package derive_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

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
			for i := 0; i < b.N; i += size {
				n := min(size, b.N-i)
				in := batch
				if n < size {
					in = &record.Batch{Records: batch.Records[:n]}
				}
				_ = d.Handle(ctx, in, discard{})
			}
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
	for i := 0; i < b.N; i += size {
		for j := range recs {
			recs[j].Timestamp = ts
			ts++
		}
		now = time.UnixMilli(ts)
		_ = d.Handle(ctx, batch, discard{})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
