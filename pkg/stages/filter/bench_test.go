package filter

import (
	"fmt"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// BenchmarkApply: one batch of access logs with addresses through the
// filters of issue 16's benchmark (redact ip and email, an exclude
// expression, a sample rule).
func BenchmarkApply(b *testing.B) {
	f, err := New(Config{
		Redact: []string{RedactIP, RedactEmail}, ExcludeAtMatch: "/health",
		Sample: []Sample{{Matcher: Matcher{StatusClass: "2xx"}, Rate: rate(0.5)}},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var batch record.Batch
	var bytes int64
	for i := range 1000 {
		id := fmt.Sprintf("%08x-7c1e-4b5e-9a1d-%012d", i*2654435761, i)
		msg := fmt.Sprintf(`{"requestId":"%s","ip":"203.0.113.%d","caller":"-","user":"-","requestTime":"10/Feb/2026:12:34:56 +0000","httpMethod":"GET","resourcePath":"/pets/{petId}","status":%d,"protocol":"HTTP/1.1","responseLength":512,"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"}`, id, i%256, 200+i%3*100)
		bytes += int64(len(msg))
		batch.Records = append(batch.Records, access(id, "GET", "/pets/{petId}", 200+i%3*100, msg,
			record.StringAttr("network.client.ip", fmt.Appendf(nil, "203.0.113.%d", i%256)),
			record.StringAttr("http.useragent", []byte("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"))))
	}
	b.SetBytes(bytes)
	b.ReportAllocs()
	for b.Loop() {
		f.Apply(&batch)
	}
}
