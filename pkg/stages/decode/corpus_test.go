package decode

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// Every request of the corpus decodes to what its manifest says (the
// pipeline's TestCorpusEndToEnd checks the same through Firehose HTTP and
// the fake intake).
func TestCorpus(t *testing.T) {
	corpus.EachRequest(t, func(t *testing.T, r corpus.Request, now time.Time) {
		m := r.Manifest
		reg := telemetry.NewRegistry()
		md, err := metricstream.NewDecoder(metricstream.Config{Namespace: "aws.", PassOther: true, Percentiles: true})
		require.NoError(t, err)
		s := New(Config{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 32 << 20, MaxEventsPerBatch: 2000}, reg).WithMetricStreams(MetricStreams(md))
		arn := strings.Split(r.SourceARN, ":")
		o := &record.Origin{Source: "firehose", RequestID: r.Name, SourceARN: r.SourceARN, Region: arn[3], Account: arn[4]}
		in := &record.Batch{ID: r.Name, Origin: o}
		for _, d := range r.Data {
			in.Records = append(in.Records, record.Record{Origin: o, Kind: record.KindRaw, Message: []byte(d), Timestamp: now.UnixMilli()})
		}
		res := s.Decode(in)

		var ids, lines []string
		for _, rec := range all(res) {
			if rec.EventID == "" {
				lines = append(lines, string(rec.Message))
				continue
			}
			ids = append(ids, rec.EventID)
			if e, ok := m.Event(rec.EventID); ok && e.Account != "" {
				assert.Equal(t, e.Account, rec.Origin.Account, "event %s", e.ID)
			}
			if e, ok := m.Event(rec.EventID); ok && e.Region != "" {
				assert.Equal(t, e.Region, rec.Origin.Region, "event %s", e.ID)
			}
		}
		assert.Equal(t, nilIfEmpty(m.EventIDs()), ids, "events, each once, in order")
		assert.ElementsMatch(t, m.Lines, lines, "lines, each once")

		gotPoints := map[string]int{}
		for _, p := range points(res) {
			gotPoints[p.Name]++
		}
		assert.Equal(t, nilIfEmptyMap(m.MetricPoints), nilIfEmptyMap(gotPoints), "metric points by name")

		dead := deadRecords(res)
		require.Len(t, dead, len(m.DeadLetters), "dead letters: %v", reasons(dead))
		for i, want := range m.DeadLetters {
			d := dead[i]
			assert.Contains(t, d.Reason, want.Reason)
			assert.Equal(t, record.KindRaw, d.Kind)
			data, err := r.DeadData(i)
			require.NoError(t, err)
			assert.Equal(t, data, string(d.Message), "dead letter %d: record %d as delivered, or its part", i, want.Record)
		}
		for name, want := range m.Counters() {
			assert.EqualValues(t, want, reg.Value(name), name)
		}
	})
}

func nilIfEmptyMap(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	return m
}

func reasons(recs []record.Record) []string {
	return fields(recs, func(r record.Record) string { return r.Reason })
}
