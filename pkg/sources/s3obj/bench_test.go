package s3obj

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/sources/s3obj/s3objtest"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// BenchmarkReadGzipArchive reads a Firehose archive of realistic API
// Gateway traffic (gzip members of CloudWatch envelopes) into batches:
// events/cpu-s is the reader's share of a replay's CPU budget.
func BenchmarkReadGzipArchive(b *testing.B) {
	a, err := s3objtest.FirehoseArchive(1, 200_000, 1<<30, time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	obj := a.Objects[0]
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	var events int64
	cpu0 := procstat.CPU()
	for b.Loop() {
		r := NewReader(bytes.NewReader(obj), Object{Bucket: "b", Key: "k", Source: "replay"}, Config{})
		eachChunk(b, r, func(c Chunk) { events += int64(len(c.Batch.Records)) })
		r.Close()
	}
	cpu := procstat.CPU() - cpu0
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
}

// BenchmarkReadLargeObjectRSS streams one generated object of
// GWPIPE_BENCH_OBJECT_BYTES (default 2 GiB) and reports the process's peak
// resident memory while reading it, and the resident memory at each
// quarter: the reader's memory does not grow with the object.
func BenchmarkReadLargeObjectRSS(b *testing.B) {
	size := s3objtest.LargeObjectSize(b)
	for b.Loop() {
		obj := s3objtest.NewLargeObject(size, time.Now())
		r := NewReader(obj, Object{Bucket: "b", Key: "big", Source: "replay"}, Config{})
		var events, chunks, peak int64
		quarter := []int64{}
		next := size / 4
		eachChunk(b, r, func(c Chunk) {
			events += int64(len(c.Batch.Records))
			if chunks++; chunks%64 == 0 {
				rss := procstat.RSS()
				peak = max(peak, rss)
				if st := r.Stats(); st.BytesIn >= next {
					quarter = append(quarter, rss)
					next += size / 4
				}
			}
		})
		r.Close()
		if events != obj.Events {
			b.Fatalf("read %d events of %d", events, obj.Events)
		}
		b.SetBytes(size)
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		for i, q := range quarter {
			b.ReportMetric(float64(q)/(1<<20), "RSS-MiB-at-"+strconv.Itoa(25*(i+1))+"%")
		}
		b.ReportMetric(float64(events), "events")
	}
}
