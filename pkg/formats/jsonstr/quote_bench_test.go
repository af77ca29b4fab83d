package jsonstr

import "testing"

// accessLog is an access log as CloudWatch carries it in a message: the
// renderer escapes one of these per log, a quote every few bytes.
const accessLog = `{"requestId":"c6af9ac6-7b61-11e6-9a41-93e8deadbeef","ip":"192.0.2.10","caller":"-","user":"-","requestTime":"03/Dec/2026:17:42:23 +0000","httpMethod":"GET","resourcePath":"/pets/{id}","status":"200","protocol":"HTTP/1.1","responseLength":"1024","integrationLatency":"27","responseLatency":"31","domainName":"api.example.com","apiId":"a1b2c3d4e5","stage":"prod"}`

// BenchmarkAppendQuoted: one append per run between quotes took about
// 450-500 ns per access log here and 23 ns per plain line of 100 bytes;
// escaping every quote of a word in place, words stored whole, about
// 325-375 ns, plain lines unchanged (they still take one copy: the word
// path starts at the first special). Storing clean bytes 8 at a time but
// stopping at each quote was tried before: no change on access logs, 20 %
// slower on plain lines.
func BenchmarkAppendQuoted(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"access-log", accessLog},
		{"plain", "GET /pets/{id} HTTP/1.1 200 1024 27ms a plain text line without any quotes at all, as CLF logs are"},
	} {
		b.Run(c.name, func(b *testing.B) {
			dst := make([]byte, 0, 4096)
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				dst = AppendQuoted(dst[:0], c.s)
			}
		})
	}
}
