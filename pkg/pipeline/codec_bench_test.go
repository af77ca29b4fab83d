package pipeline

import (
	"testing"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// parsedBatch is a batch as it leaves the parse stage: loadgen's access
// logs (the bench mix) through the real parser, with an enrichment tag list.
func parsedBatch(tb testing.TB, n int, mix string) *record.Batch {
	tb.Helper()
	m, err := loadgen.ParseMix(mix)
	if err != nil {
		tb.Fatal(err)
	}
	g, err := loadgen.NewGenerator(loadgen.Config{Seed: 1, Mix: m})
	if err != nil {
		tb.Fatal(err)
	}
	defer g.Close()
	parser, err := apigw.New(apigw.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tags := []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3d4e5", "stage:prod", "apiname:petstore", "team:payments"}
	b := &record.Batch{ID: "x"}
	// Records of one CloudWatch envelope share an origin, as decode makes them.
	origins := map[string]*record.Origin{}
	for len(b.Records) < n {
		req, err := g.NextRequest()
		if err != nil {
			tb.Fatal(err)
		}
		for _, ev := range req.Events {
			if len(b.Records) == n {
				break
			}
			o := origins[ev.LogGroup+"\x00"+ev.LogStream]
			if o == nil {
				o = &record.Origin{Source: "firehose", Account: ev.Account, Region: ev.Region, LogGroup: ev.LogGroup, LogStream: ev.LogStream}
				origins[ev.LogGroup+"\x00"+ev.LogStream] = o
			}
			b.Records = append(b.Records, record.Record{Origin: o, EventID: ev.ID, Timestamp: ev.Timestamp, Message: []byte(ev.Message), Kind: record.KindLine})
			parser.Parse(b, &b.Records[len(b.Records)-1])
			b.Records[len(b.Records)-1].Tags = tags
		}
	}
	return b
}

// BenchmarkCodecParsedLoadgen is one inter-stage hop (encode, then decode)
// of the batches the fleet benchmark moves after parsing.
func BenchmarkCodecParsedLoadgen(b *testing.B) {
	in := parsedBatch(b, 2000, "json=1")
	attrs := 0
	for i := range in.Records {
		attrs += len(in.Records[i].Attrs)
	}
	for _, c := range []struct {
		name string
		c    stage.Compression
	}{{"s2", stage.CompressS2}, {"none", stage.CompressNone}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				p, _ := stage.EncodeBatchWith(in, c.c)
				size = len(p)
				if _, err := stage.DecodeBatch(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(in.Records))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(size)/float64(len(in.Records)), "bytes/record")
			b.ReportMetric(float64(attrs)/float64(len(in.Records)), "attrs/record")
		})
	}
}
