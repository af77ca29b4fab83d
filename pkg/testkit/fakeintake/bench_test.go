package fakeintake

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// BenchmarkLogsGzip1000 measures accepting one gzip payload of 1,000 API
// Gateway-like logs (~330 B each), in-process and over loopback HTTP.
// SetBytes is the uncompressed payload, so MB/s is JSON throughput.
func BenchmarkLogsGzip1000(b *testing.B) {
	const logsPerPayload = 1000
	plain := logsPayload(logsPerPayload, 120)
	body, header := encode(b, "gzip", plain)

	// report adds logs per wall second and per CPU second of the whole
	// process (server and, for "http", client); cpu0 is taken just before
	// the loop.
	report := func(b *testing.B, cpu0 time.Duration) {
		logs := float64(b.N) * logsPerPayload
		b.ReportMetric(logs/b.Elapsed().Seconds(), "logs/s")
		if cpu := procstat.CPU() - cpu0; cpu > 0 {
			b.ReportMetric(logs/cpu.Seconds(), "logs/cpu-s")
		}
	}
	newRequest := func() *http.Request {
		req := httptest.NewRequest(http.MethodPost, logsPath, bytes.NewReader(body))
		req.Header.Set("DD-API-KEY", testKey)
		req.Header.Set("Content-Encoding", header)
		return req
	}
	// Keep bounds memory across iterations, as in a long benchmark run.
	cfg := Config{Keep: 100_000}
	newHandler := func(b *testing.B) *Server {
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		return s
	}

	b.Run("handler", func(b *testing.B) {
		s := newHandler(b)
		cpu0 := procstat.CPU()
		for b.Loop() {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, newRequest())
			if rec.Code != http.StatusAccepted {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
		report(b, cpu0)
	})

	b.Run("handler-parallel", func(b *testing.B) {
		s := newHandler(b)
		cpu0 := procstat.CPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, newRequest())
				if rec.Code != http.StatusAccepted {
					b.Errorf("status %d: %s", rec.Code, rec.Body)
					return
				}
			}
		})
		report(b, cpu0)
	})

	b.Run("http", func(b *testing.B) {
		_, c := start(b, cfg)
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		cpu0 := procstat.CPU()
		for b.Loop() {
			if r := c.post(logsPath, body, "Content-Encoding", header); r.status != http.StatusAccepted {
				b.Fatalf("status %d: %s", r.status, r.body)
			}
		}
		report(b, cpu0)
	})
}
