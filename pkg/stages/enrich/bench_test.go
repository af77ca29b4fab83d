package enrich

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

const benchBatch = 500

// benchTaggerConfig lifts the per-account rate limit so that warming 1,000
// stages takes milliseconds; the limit is not what is measured.
var benchTaggerConfig = awstags.Config{RatePerSecond: 1e6, Burst: 1e6}

// benchFleet has 1,000 stages: 5 accounts × 2 regions × 50 REST APIs × 2
// stages.
func benchFleet() *fleet {
	return newFleet([]string{"111111111111", "222222222222", "333333333333", "444444444444", "555555555555"},
		[]string{"us-east-1", "eu-west-1"}, 50)
}

// stageBatches makes one batch of benchBatch records per stage of the
// fleet, as a CloudWatch subscription delivers them (one log group per
// envelope); rec makes each record.
func (f *fleet) stageBatches(rec func(o *record.Origin, apiID, stage string) record.Record) []*record.Batch {
	var out []*record.Batch
	for _, a := range f.accounts {
		for _, r := range f.regions {
			for i := range f.apis {
				for _, stage := range []string{"prod", "dev"} {
					id := f.apiID(a, r, i)
					o := &record.Origin{Source: "firehose", Account: a, Region: r, LogGroup: "/gw/" + id + "/" + stage}
					b := &record.Batch{Records: make([]record.Record, benchBatch)}
					for k := range b.Records {
						b.Records[k] = rec(o, id, stage)
					}
					out = append(out, b)
				}
			}
		}
	}
	return out
}

// BenchmarkEnrich measures the stage on warm caches over 1,000 distinct
// stages, and reports ns per record and the AWS calls made: all of them
// while warming up, none per batch, so calls do not grow with log volume.
func BenchmarkEnrich(b *testing.B) {
	cases := []struct {
		name  string
		build func(f *fleet) []*record.Batch
	}{
		// CloudWatch subscriptions deliver one log group (one stage) per
		// envelope: the common case.
		{"one-stage-per-batch", func(f *fleet) []*record.Batch { return f.stageBatches(accessRecord) }},
		// Direct Firehose delivery mixing stages: every batch touches 500
		// of the 1,000 stages.
		{"mixed-stages-per-batch", func(f *fleet) []*record.Batch {
			var keys []awstags.StageKey
			for _, a := range f.accounts {
				for _, r := range f.regions {
					for i := range f.apis {
						keys = append(keys, awstags.StageKey{Account: a, Region: r, APIID: f.apiID(a, r, i), Stage: "prod"},
							awstags.StageKey{Account: a, Region: r, APIID: f.apiID(a, r, i), Stage: "dev"})
					}
				}
			}
			origins := map[string]*record.Origin{}
			var out []*record.Batch
			for n := range 40 {
				b := &record.Batch{Records: make([]record.Record, benchBatch)}
				for k := range b.Records {
					key := keys[(n*benchBatch+k*7)%len(keys)]
					o := origins[key.Account+key.Region]
					if o == nil {
						o = &record.Origin{Source: "firehose", Account: key.Account, Region: key.Region, Stream: "amazon-apigateway-all"}
						origins[key.Account+key.Region] = o
					}
					b.Records[k] = accessRecord(o, key.APIID, key.Stage)
				}
				out = append(out, b)
			}
			return out
		}},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			f := benchFleet()
			tg, events := newFleetTagger(b, f, benchTaggerConfig)
			st, err := New(tg, Config{})
			if err != nil {
				b.Fatal(err)
			}
			batches := bc.build(f)
			out := &captureOutput{emitted: make([]*record.Batch, 0, 1)}
			// Warm up: the first record of every account and region starts
			// its read.
			for _, batch := range batches {
				for k := range batch.Records {
					key, _ := tg.Resolve(&batch.Records[k])
					tg.Peek(key)
				}
			}
			awaitReads(b, f, events)
			if n := tg.Stats().Stages; n != int64(f.stages()) {
				b.Fatalf("%d stages cached, want %d", n, f.stages())
			}
			warmCalls := f.Calls()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := procstat.CPU()
			for i := 0; b.Loop(); i++ {
				out.emitted = out.emitted[:0]
				batch := batches[i%len(batches)]
				for k := range batch.Records {
					batch.Records[k].Tags = nil
				}
				if err := st.Handle(ctx, batch, out); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			records := float64(b.N) * benchBatch
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
			b.ReportMetric(float64((procstat.CPU()-cpu0).Nanoseconds())/records, "cpu-ns/record")
			b.ReportMetric(float64(warmCalls), "awscalls-warmup")
			b.ReportMetric(float64(f.Calls()-warmCalls)*1e6/records, "awscalls/Mlogs")
			if s := st.Stats(); s.Partial != 0 {
				b.Fatalf("%d partial records on a warm cache", s.Partial)
			}
		})
	}
}

// BenchmarkResolveAndPeek is the per-record and per-stage hot path alone.
func BenchmarkResolveAndPeek(b *testing.B) {
	f := benchFleet()
	f.accounts, f.regions = f.accounts[2:3], f.regions[1:]
	tg, events := newFleetTagger(b, f, benchTaggerConfig)
	o := &record.Origin{Account: "333333333333", Region: "eu-west-1", LogGroup: "/custom"}
	rec := accessRecord(o, f.apiID("333333333333", "eu-west-1", 7), "prod")
	key, _ := tg.Resolve(&rec)
	tg.Peek(key)
	awaitReads(b, f, events)
	b.ReportAllocs()
	for b.Loop() {
		k, _ := tg.Resolve(&rec)
		if info, settled := tg.Peek(k); !settled || info.Partial {
			b.Fatal(fmt.Sprint("not cached: ", k))
		}
	}
}

// BenchmarkParseThenEnrich puts the stage's cost next to the parse stage's,
// on the records the parse stage really produces (the Datadog-recommended
// access-log format, which carries apiId and stage), over 1,000 stages, one
// stage per batch. "enrich-share" is enrich's part of the two stages' CPU;
// its part of the whole pipeline (decode, parse, enrich, derive, deliver)
// is smaller still.
func BenchmarkParseThenEnrich(b *testing.B) {
	f := benchFleet()
	tg, events := newFleetTagger(b, f, benchTaggerConfig)
	st, err := New(tg, Config{})
	if err != nil {
		b.Fatal(err)
	}
	parser, err := apigw.New(apigw.Config{Formats: []apigw.FormatRule{{LogGroup: "/gw/*", Format: apigw.FormatDatadog}}})
	if err != nil {
		b.Fatal(err)
	}
	batches := f.stageBatches(func(o *record.Origin, id, stage string) record.Record {
		line := `{"apiId":"` + id + `","stage":"` + stage + `","requestId":"c0475a28-8de8-11e7-8d3f-4183da788f0f","ip":"203.0.113.7","caller":"-","user":"-","requestTime":1732850000000,"httpMethod":"GET","resourcePath":"/pets/{petId}","status":404,"protocol":"HTTP/1.1","responseLength":512}`
		return record.Record{Origin: o, Message: []byte(line)}
	})
	for _, batch := range batches {
		for k := range batch.Records {
			parser.Parse(batch, &batch.Records[k])
		}
		key, _ := tg.Resolve(&batch.Records[0])
		tg.Peek(key)
	}
	awaitReads(b, f, events)
	out := &captureOutput{emitted: make([]*record.Batch, 0, 1)}
	ctx := context.Background()
	var parseCPU, enrichCPU time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		batch := batches[i%len(batches)]
		batch.Arena = batch.Arena[:0]
		t0 := procstat.CPU()
		for k := range batch.Records {
			batch.Records[k].Tags = nil
			parser.Parse(batch, &batch.Records[k])
		}
		t1 := procstat.CPU()
		out.emitted = out.emitted[:0]
		if err := st.Handle(ctx, batch, out); err != nil {
			b.Fatal(err)
		}
		t2 := procstat.CPU()
		parseCPU += t1 - t0
		enrichCPU += t2 - t1
	}
	b.StopTimer()
	records := float64(b.N) * benchBatch
	b.ReportMetric(float64(parseCPU.Nanoseconds())/records, "parse-cpu-ns/record")
	b.ReportMetric(float64(enrichCPU.Nanoseconds())/records, "enrich-cpu-ns/record")
	b.ReportMetric(100*float64(enrichCPU)/float64(parseCPU+enrichCPU), "enrich-share-%")
	if s := st.Stats(); s.Partial != 0 {
		b.Fatalf("%d partial records on a warm cache", s.Partial)
	}
}
