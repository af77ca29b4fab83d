package floor

import (
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// BenchmarkStages measures gwpipe's hot stages one at a time, in process, on
// the floor's corpus, each in CPU-ns per event (run with -cpu 1): decode
// (base64, gunzip, envelope, as the pipeline's decode stage with metric
// streams recognised), parse (the API Gateway parser), and deliver's
// encoding (render Datadog logs, payloads of 1,000 gzipped at level 1). The
// floor's own loop is measured alongside. Comparing two builds' test
// binaries run alternately isolates a change to one stage far better than
// end-to-end runs on a busy machine.
func BenchmarkStages(b *testing.B) {
	c, err := NewCorpus(benchConfig(), 20000)
	if err != nil {
		b.Fatal(err)
	}
	origin := &record.Origin{Source: "firehose", RequestID: "bench", Account: "123456789012", Region: "us-east-1"}
	raw := &record.Batch{ID: "bench", Origin: origin}
	for _, r := range c.Base64 {
		raw.Records = append(raw.Records, record.Record{Origin: origin, Kind: record.KindRaw, Message: r, Timestamp: 1})
	}
	ms, err := metricstream.NewDecoder(metricstream.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	dec := decode.New(decode.DefaultConfig(), nil).WithMetricStreams(decode.MetricStreams(ms))
	parser, err := apigw.New(apigw.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	decoded := func() []*record.Batch {
		res := dec.Decode(raw)
		if res.Dead != nil {
			b.Fatalf("dead letters: %s", res.Dead.Records[0].Reason)
		}
		return res.Batches
	}
	parsed := func() []*record.Batch {
		bs := decoded()
		for _, bt := range bs {
			for i := range bt.Records {
				parser.Parse(bt, &bt.Records[i])
			}
		}
		return bs
	}
	// measure runs f b.N times and reports its CPU per event; setup is
	// not counted.
	measure := func(b *testing.B, setup func(), f func()) {
		b.ReportAllocs()
		var cpu time.Duration
		for b.Loop() {
			setup()
			t0 := procstat.CPU()
			f()
			cpu += procstat.CPU() - t0
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*c.Events), "cpu-ns/event")
	}

	for _, contract := range []bool{false, true} {
		name := "floor"
		if contract {
			name = "floor-contract"
		}
		b.Run(name, func(b *testing.B) {
			w := NewWorker()
			w.Contract = contract
			measure(b, func() {}, func() {
				for _, r := range c.Records {
					if err := w.Record(r); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
	b.Run("decode", func(b *testing.B) {
		measure(b, func() {}, func() { decoded() })
	})
	// decode-req decodes request by request, as the pipeline does (a raw
	// batch is one Firehose request's records).
	b.Run("decode-req", func(b *testing.B) {
		per := benchConfig().RecordsPerRequest
		var reqs []*record.Batch
		for i := 0; i < len(raw.Records); i += per {
			reqs = append(reqs, &record.Batch{ID: "bench", Origin: origin, Records: raw.Records[i:min(i+per, len(raw.Records))]})
		}
		measure(b, func() {}, func() {
			for _, r := range reqs {
				if res := dec.Decode(r); res.Dead != nil {
					b.Fatalf("dead letters: %s", res.Dead.Records[0].Reason)
				}
			}
		})
	})
	b.Run("parse", func(b *testing.B) {
		var bs []*record.Batch
		measure(b, func() { bs = decoded() }, func() {
			for _, bt := range bs {
				for i := range bt.Records {
					parser.Parse(bt, &bt.Records[i])
				}
			}
		})
	})
	// render-gzip is deliver's encoding as configured by default;
	// render-zstd the same with zstd at its fastest level, which the logs
	// intake's public API does not list (identity, gzip, deflate).
	for _, enc := range []string{"gzip", "zstd"} {
		b.Run("render-"+enc, func(b *testing.B) {
			bs := parsed()
			d := ddlogs.Defaults{Source: "apigateway", Service: "apigateway"}
			zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
			zs, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			var payload, zbuf []byte
			var out countWriter
			flush := func() {
				payload = append(payload, ']')
				if enc == "gzip" {
					zw.Reset(&out)
					_, _ = zw.Write(payload)
					_ = zw.Close()
				} else {
					zbuf = zs.EncodeAll(payload, zbuf[:0])
					out.n += int64(len(zbuf))
				}
				payload = payload[:0]
			}
			measure(b, func() {}, func() {
				n := 0
				for _, bt := range bs {
					for i := range bt.Records {
						if n == 0 {
							payload = append(payload, '[')
						} else {
							payload = append(payload, ',')
						}
						payload = ddlogs.AppendLog(payload, &bt.Records[i], d)
						if n++; n == LogsPerPayload {
							flush()
							n = 0
						}
					}
				}
				if n > 0 {
					flush()
				}
			})
			b.ReportMetric(float64(out.n)/float64(b.N*c.Events), "out-bytes/event")
		})
	}
}
