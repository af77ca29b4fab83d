package ddlogs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// typicalAccessLog is an API Gateway access log (JSON format) as the parser
// emits it: the original line plus ~20 attributes in the parser's order.
func typicalAccessLog() *record.Record {
	origin := &record.Origin{
		Source: "firehose", Account: "123456789012", Region: "us-east-1",
		LogGroup:  "API-Gateway-Access-Logs_a1b2c3d4e5/prod",
		LogStream: "14ff9a8b7c6d5e4f3a2b1c0d9e8f7a6b",
	}
	msg := `{"requestId":"3323ffe5-6f9a-4b1e-9c2d-5e8f7a6b4c3d","extendedRequestId":"Kq3XyGqvoAMF2vA=","ip":"203.0.113.7","caller":"-","user":"-","requestTime":"29/Nov/2024:03:13:20 +0000","requestTimeEpoch":1732850000000,"httpMethod":"GET","resourcePath":"/pets/{petId}","path":"/prod/pets/42","status":"404","protocol":"HTTP/1.1","responseLength":"512","responseLatency":"31","integrationLatency":"27","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","domainName":"api.example.com","apiId":"a1b2c3d4e5","stage":"prod"}`
	s := func(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }
	return &record.Record{
		Origin: origin, EventID: "37950143390213745654287463412451487937234587",
		Timestamp: 1732850000000, Message: []byte(msg), Kind: record.KindAccess,
		Service: "petstore", Level: record.LevelWarn,
		Tags: []string{"apiid:a1b2c3d4e5", "apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:123456789012"},
		Attrs: []record.Attr{
			s("http.request_id", "3323ffe5-6f9a-4b1e-9c2d-5e8f7a6b4c3d"),
			s("network.client.ip", "203.0.113.7"),
			s("http.method", "GET"),
			s("http.route", "/pets/{petId}"),
			s("http.url_details.path", "/prod/pets/42"),
			record.IntAttr("http.status_code", 404),
			s("http.version", "HTTP/1.1"),
			record.IntAttr("network.bytes_written", 512),
			record.IntAttr("duration", 31000000),
			s("http.useragent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
			s("http.url_details.host", "api.example.com"),
			s("apigateway.extendedRequestId", "Kq3XyGqvoAMF2vA="),
			s("apigateway.requestTime", "29/Nov/2024:03:13:20 +0000"),
			record.IntAttr("apigateway.requestTimeEpoch", 1732850000000),
			s("apigateway.resourcePath", "/pets/{petId}"),
			s("apigateway.status", "404"),
			record.NumberAttr("apigateway.integrationLatency", []byte("27")),
			record.NumberAttr("apigateway.responseLatency", []byte("31")),
			s("apigateway.apiId", "a1b2c3d4e5"),
			s("apigateway.stage", "prod"),
			{Key: "apigateway.caller", Kind: record.Null},
			{Key: "apigateway.user", Kind: record.Null},
		},
	}
}

var benchDefaults = Defaults{Source: "apigateway", Service: "apigateway", Tags: "env:prod,team:payments"}

func BenchmarkAppendLog(b *testing.B) {
	rec := typicalAccessLog()
	benchAppendLog(b, rec)
}

// BenchmarkAppendLogCLF: the same request logged in Common Log Format, a
// message with little to escape.
func BenchmarkAppendLogCLF(b *testing.B) {
	rec := typicalAccessLog()
	rec.Message = []byte(`203.0.113.7 - - [29/Nov/2024:03:13:20 +0000] "GET /prod/pets/42 HTTP/1.1" 404 512 3323ffe5-6f9a-4b1e-9c2d-5e8f7a6b4c3d`)
	benchAppendLog(b, rec)
}

// benchAppendLog measures rendering rec again and again into one buffer.
func benchAppendLog(b *testing.B, rec *record.Record) {
	buf := AppendLog(nil, rec, benchDefaults)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf = AppendLog(buf[:0], rec, benchDefaults)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
}

// BenchmarkAppendLogUncached cycles through more attribute layouts than a
// renderer remembers, so that every log compiles its layout: the worst case.
func BenchmarkAppendLogUncached(b *testing.B) {
	var recs []*record.Record
	for i := range plansPerRenderer + 1 {
		rec := typicalAccessLog()
		rec.Attrs = rec.Attrs[:len(rec.Attrs)-i]
		recs = append(recs, rec)
	}
	buf := AppendLog(nil, recs[0], benchDefaults)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		buf = AppendLog(buf[:0], recs[i], benchDefaults)
		i = (i + 1) % len(recs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
}

// accessLogs returns n access logs shaped like typicalAccessLog but with the
// values that vary between requests varied (ids, client, path, status,
// latencies, sizes), so that compression sees realistic data.
func accessLogs(n int) []record.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	origin := typicalAccessLog().Origin
	tags := typicalAccessLog().Tags
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	agents := []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		"okhttp/4.12.0", "curl/8.5.0", "python-requests/2.31.0", "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.22",
	}
	recs := make([]record.Record, n)
	for i := range recs {
		id := fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
		ip := fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(223), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
		method := methods[rng.IntN(len(methods))]
		path := fmt.Sprintf("/prod/pets/%d", rng.IntN(100000))
		status := []int{200, 200, 200, 200, 201, 204, 400, 404, 429, 500}[rng.IntN(10)]
		latency := 5 + rng.IntN(400)
		size := rng.IntN(20000)
		ts := int64(1732850000000 + i*3 + rng.IntN(3))
		ua := agents[rng.IntN(len(agents))]
		msg := fmt.Sprintf(`{"requestId":"%s","extendedRequestId":"%x=","ip":"%s","caller":"-","user":"-","requestTime":"29/Nov/2024:03:13:%02d +0000","requestTimeEpoch":%d,"httpMethod":"%s","resourcePath":"/pets/{petId}","path":"%s","status":"%d","protocol":"HTTP/1.1","responseLength":"%d","responseLatency":"%d","integrationLatency":"%d","userAgent":"%s","domainName":"api.example.com","apiId":"a1b2c3d4e5","stage":"prod"}`,
			id, rng.Uint64(), ip, i%60, ts, method, path, status, size, latency, latency-3, ua)
		s := func(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }
		recs[i] = record.Record{
			Origin: origin, Timestamp: ts, Message: []byte(msg), Kind: record.KindAccess,
			Service: "petstore", Level: record.LevelForHTTPStatus(status), Tags: tags,
			Attrs: []record.Attr{
				s("http.request_id", id), s("network.client.ip", ip), s("http.method", method),
				s("http.route", "/pets/{petId}"), s("http.url_details.path", path),
				record.IntAttr("http.status_code", int64(status)), s("http.version", "HTTP/1.1"),
				record.IntAttr("network.bytes_written", int64(size)), record.IntAttr("duration", int64(latency)*1e6),
				s("http.useragent", ua), s("http.url_details.host", "api.example.com"),
				s("apigateway.requestTime", fmt.Sprintf("29/Nov/2024:03:13:%02d +0000", i%60)),
				record.IntAttr("apigateway.requestTimeEpoch", ts), s("apigateway.resourcePath", "/pets/{petId}"),
				s("apigateway.status", fmt.Sprint(status)),
				record.NumberAttr("apigateway.integrationLatency", []byte(fmt.Sprint(latency-3))),
				record.NumberAttr("apigateway.responseLatency", []byte(fmt.Sprint(latency))),
				s("apigateway.apiId", "a1b2c3d4e5"), s("apigateway.stage", "prod"),
				{Key: "apigateway.caller", Kind: record.Null}, {Key: "apigateway.user", Kind: record.Null},
			},
		}
	}
	return recs
}

// BenchmarkDeliver measures end to end throughput: render, batch, compress
// and POST to a local intake (same machine) that reads and discards the body.
// Each op is one Deliver of 100 access logs; 8 callers per CPU deliver
// concurrently. Compression levels are the defaults (gzip 1, zstd 1) unless
// named.
func BenchmarkDeliver(b *testing.B) {
	logs := accessLogs(10_000)
	for _, tc := range []struct {
		name, compression string
		level             int
	}{{"gzip", "gzip", 1}, {"gzip-6", "gzip", 6}, {"zstd", "zstd", 1}, {"zstd-3", "zstd", 3}, {"none", "none", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusAccepted)
			}))
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.URL, cfg.APIKey, cfg.Logger = srv.URL+"/api/v2/logs", "k", slog.New(slog.DiscardHandler)
			cfg.Compression, cfg.CompressionLevel = tc.compression, tc.level
			c, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			const perBatch = 100
			var next atomic.Int64
			cpu0 := procstat.CPU()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := int(next.Add(perBatch)) % (len(logs) - perBatch)
					bt := &record.Batch{Records: logs[k : k+perBatch]}
					if _, err := c.Deliver(context.Background(), bt); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := c.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu := procstat.CPU() - cpu0
			s := c.Stats()
			// Logs per CPU-second of the whole process (client and the local
			// intake, which only reads): less sensitive than logs/s to other
			// work on a shared machine.
			b.ReportMetric(float64(b.N*perBatch)/cpu.Seconds(), "logs/cpu-s")
			b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "logs/s")
			b.ReportMetric(float64(s.BytesAccepted)/float64(max(s.BytesCompressed, 1)), "ratio")
			b.ReportMetric(float64(s.LogsAccepted)/float64(max(s.Requests, 1)), "logs/req")
		})
	}
}
