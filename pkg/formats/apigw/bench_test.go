package apigw

import (
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

const (
	benchDatadogLine = `{"apiId":"a1b2c3d4e5","stage":"prod","requestId":"c0475a28-8de8-11e7-8d3f-4183da788f0f","ip":"203.0.113.7","caller":"-","user":"-","requestTime":1732850000000,"httpMethod":"GET","resourcePath":"/pets/{petId}","status":404,"protocol":"HTTP/1.1","responseLength":512}`
	benchCLFLine     = `203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET /pets/{id} HTTP/1.1" 200 512 c0475a28-8de8-11e7-8d3f-4183da788f0f Dt6vFHHzNjMFahw=`
	benchHTTPCLFLine = `203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET GET /pets/{id} HTTP/1.1" 200 512 Dt6vFHHzNjMFahw=`
)

var benchExecLines = []string{
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Verifying Usage Plan for request: 515f1e99-39db-11e9-9e96-01e5c04505b9. API Key: API Stage: h733q2j6gb/Prod",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) API Key authorized because method 'POST /verifyReceipt' does not require API Key. Request will not contribute to throttle or quota limits",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Starting execution for request: 515f1e99-39db-11e9-9e96-01e5c04505b9",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) HTTP Method: POST, Resource Path: /verifyReceipt",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Method request headers: {Accept=application/json, text/plain, */*, Host=h733q2j6gb.execute-api.eu-west-2.amazonaws.com}",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Endpoint request body after transformations: {\"resource\":\"/verifyReceipt\"} [TRUNCATED]",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Received response. Status: 200, Integration latency: 2266 ms",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Successfully completed execution",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) Method completed with status: 200",
	"(515f1e99-39db-11e9-9e96-01e5c04505b9) X-ray Tracing ID : 1-5c755b5d-07b29b94e632d3da19d88789",
}

func benchParse(b *testing.B, p *Parser, group string, lines ...string) {
	b.Helper()
	origin := &record.Origin{LogGroup: group}
	recs := make([]record.Record, len(lines))
	var size int
	for i, l := range lines {
		recs[i] = record.Record{Origin: origin, Message: []byte(l)}
		size += len(l)
	}
	batch := &record.Batch{}
	b.SetBytes(int64(size / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuMetric(b)()
	for i := 0; i < b.N; i++ {
		rec := &recs[i%len(recs)]
		p.Parse(batch, rec)
		if rec.Kind == record.KindUnparsed {
			b.Fatal(rec.ParseError)
		}
		if len(batch.Arena) > 1<<20 {
			batch.Arena = batch.Arena[:0]
		}
	}
}

// cpuMetric reports lines per CPU-second of the process (user+sys), which
// stays meaningful on a shared machine where wall-clock ns/op does not.
func cpuMetric(b *testing.B) func() {
	start := procstat.CPU()
	return func() {
		b.StopTimer()
		used := procstat.CPU() - start
		if used > 0 {
			b.ReportMetric(float64(b.N)/used.Seconds(), "lines/cpu-s")
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	}
}

func mustParser(b testing.TB, cfg Config) *Parser {
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkJSONAccessDetected: the seed (Datadog) format, no format configured.
func BenchmarkJSONAccessDetected(b *testing.B) {
	benchParse(b, mustParser(b, Config{}), "api-gateway-access", benchDatadogLine)
}

// BenchmarkJSONAccessTemplate: the seed format configured for the group.
func BenchmarkJSONAccessTemplate(b *testing.B) {
	p := mustParser(b, Config{Formats: []FormatRule{{LogGroup: "api-gateway-*", Format: FormatDatadog}}})
	benchParse(b, p, "api-gateway-access", benchDatadogLine)
}

// BenchmarkCLFTemplate: the REST console CLF format configured.
func BenchmarkCLFTemplate(b *testing.B) {
	p := mustParser(b, Config{Formats: []FormatRule{{LogGroup: "api-gateway-*", Format: FormatRESTCLF}}})
	benchParse(b, p, "api-gateway-access", benchCLFLine)
}

// BenchmarkHTTPCLFTemplate: the HTTP console CLF format (routeKey with a space).
func BenchmarkHTTPCLFTemplate(b *testing.B) {
	p := mustParser(b, Config{Formats: []FormatRule{{LogGroup: "api-gateway-*", Format: FormatHTTPCLF}}})
	benchParse(b, p, "api-gateway-access", benchHTTPCLFLine)
}

// BenchmarkCLFDetected: REST CLF without configuration.
func BenchmarkCLFDetected(b *testing.B) {
	benchParse(b, mustParser(b, Config{}), "api-gateway-access", benchCLFLine)
}

// BenchmarkExecution: a mix of execution lines through Parse.
func BenchmarkExecution(b *testing.B) {
	benchParse(b, mustParser(b, Config{}), "API-Gateway-Execution-Logs_h733q2j6gb/Prod", benchExecLines...)
}

// BenchmarkExecutionClassify: classification alone.
func BenchmarkExecutionClassify(b *testing.B) {
	lines := make([][]byte, len(benchExecLines))
	for i, l := range benchExecLines {
		lines[i] = []byte(l)
	}
	b.ReportAllocs()
	defer cpuMetric(b)()
	for i := 0; i < b.N; i++ {
		if _, ev, _ := ParseExecutionLine(lines[i%len(lines)]); ev == EventUnknown {
			b.Fatal("unknown")
		}
	}
}

// BenchmarkOther: pass-through of non-API-Gateway logs.
func BenchmarkOther(b *testing.B) {
	benchParse(b, mustParser(b, Config{}), "/aws/lambda/fn", "START RequestId: 1 Version: $LATEST")
}

// BenchmarkJSONAccessParallel: the seed format from all cores (pool and
// cache contention).
func BenchmarkJSONAccessParallel(b *testing.B) {
	p := mustParser(b, Config{})
	origin := &record.Origin{LogGroup: "api-gateway-access"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		batch := &record.Batch{}
		rec := record.Record{Origin: origin, Message: []byte(benchDatadogLine)}
		for pb.Next() {
			p.Parse(batch, &rec)
		}
	})
}

// BenchmarkCorrelator: observe the lines of 10-line requests, each
// request under an id of its own, as traffic has them (one id over and
// over would measure a single request's lines arriving after its
// completion).
func BenchmarkCorrelator(b *testing.B) {
	p := mustParser(b, Config{})
	c := NewCorrelator(CorrelatorConfig{})
	origin := &record.Origin{LogGroup: "API-Gateway-Execution-Logs_h733q2j6gb/Prod"}
	recs := make([]record.Record, len(benchExecLines))
	ids := make([][]byte, len(benchExecLines))
	for i, l := range benchExecLines {
		recs[i] = record.Record{Origin: origin, Message: []byte(l)}
		p.Parse(nil, &recs[i])
		for _, a := range recs[i].Attrs {
			if a.Key == KeyRequestID {
				ids[i] = a.Str
			}
		}
		if len(ids[i]) < 8 {
			b.Fatalf("line %d: no request id", i)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuMetric(b)()
	for i := 0; i < b.N; i++ {
		j := i % len(recs)
		if j == 0 {
			// the id's last 8 hex digits count the requests
			n := uint32(i / len(recs))
			for _, id := range ids {
				for k := 0; k < 8; k++ {
					id[len(id)-1-k] = "0123456789abcdef"[n>>(4*k)&15]
				}
			}
		}
		c.Observe(&recs[j])
	}
}
