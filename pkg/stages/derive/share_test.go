package derive_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// accessLine is an access log in the Datadog-recommended JSON format plus
// the latency variables.
func accessLine(i int) string {
	routes := []string{"/pets", "/pets/{petId}", "/orders", "/orders/{id}", "/users/{id}/cart", "/health", "/search", "/login"}
	methods := []string{"GET", "GET", "POST", "PUT", "DELETE"}
	statuses := []int{200, 200, 200, 201, 204, 301, 400, 404, 429, 500, 502}
	lat := 5 + (i*37)%900
	return fmt.Sprintf(`{"apiId":"a1b2c3d4e5","stage":"prod","requestId":"3323ffe5-6f9a-4b1e-9c2d-%012d","ip":"203.0.113.%d","caller":"-","user":"-",`+
		`"requestTime":1732850000000,"httpMethod":"%s","resourcePath":"%s","status":%d,"protocol":"HTTP/1.1","responseLength":%d,`+
		`"responseLatency":%d,"integrationLatency":%d,"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","domainName":"api.example.com"}`,
		i, i%250, methods[i%len(methods)], routes[i%len(routes)], statuses[(i/3)%len(statuses)], 100+i%4000, lat, lat-3)
}

// BenchmarkPipelineShare measures the CPU derive adds to the per-record
// work of the pipeline's core (parse, render the Datadog log, gzip it), in
// process CPU time so that other load on the machine does not skew it. The
// pipeline's other work (ingest, decode, the stage runtime, HTTP) is left
// out, so the share is overstated.
func BenchmarkPipelineShare(b *testing.B) {
	parser, err := apigw.New(apigw.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var now time.Time
	d, err := derive.New(derive.Config{Now: func() time.Time { return now }, Host: "bench", TagAllowlist: []string{"team"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	const size = 500
	lines := make([][]byte, size)
	for i := range lines {
		lines[i] = []byte(accessLine(i))
	}
	origin := &record.Origin{Source: "firehose", Account: "123456789012", Region: "us-east-1", LogGroup: "/aws/api-gateway/petstore", LogStream: "s"}
	batch := &record.Batch{Records: make([]record.Record, size)}
	zw, _ := gzip.NewWriterLevel(io.Discard, 6)
	buf := make([]byte, 0, 4096)
	defaults := ddlogs.Defaults{Source: "apigateway", Service: "petstore"}
	ctx := context.Background()
	ts := t0.UnixMilli()
	var pipeCPU, deriveCPU time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += size {
		n := min(size, b.N-i)
		c0 := procstat.CPU()
		batch.Arena = batch.Arena[:0]
		batch.Records = batch.Records[:n]
		zw.Reset(io.Discard)
		for j := range batch.Records {
			rec := &batch.Records[j]
			attrs := rec.Attrs[:0]
			*rec = record.Record{Origin: origin, Message: lines[j], Attrs: attrs}
			parser.Parse(batch, rec)
			rec.Tags = benchTags // enrichment: one shared slice per origin
			rec.Timestamp = ts
			ts += 2 // 500 records/s of event time: windows roll
			buf = ddlogs.AppendLog(buf[:0], rec, defaults)
			_, _ = zw.Write(buf)
		}
		_ = zw.Close()
		c1 := procstat.CPU()
		now = time.UnixMilli(ts)
		_ = d.Handle(ctx, batch, discard{})
		c2 := procstat.CPU()
		pipeCPU += c1 - c0
		deriveCPU += c2 - c1
	}
	if st := d.Stats(); st.Records == 0 || st.Ignored > 0 {
		b.Fatalf("records were not access logs: %+v", st)
	}
	b.ReportMetric(float64(pipeCPU.Nanoseconds())/float64(b.N), "pipeline-cpu-ns/rec")
	b.ReportMetric(float64(deriveCPU.Nanoseconds())/float64(b.N), "derive-cpu-ns/rec")
	b.ReportMetric(100*float64(deriveCPU)/float64(pipeCPU), "derive-%-of-core")
}
