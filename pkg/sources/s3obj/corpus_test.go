package s3obj

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// Every object of the corpus reads as its manifest says (the pipeline's
// TestCorpusObjectsReplayed and TestCorpusObjectsThroughSQS check the same
// through S3 and the fake intake).
func TestCorpusObjects(t *testing.T) {
	t.Parallel()
	corpus.EachObject(t, func(t *testing.T, o corpus.Object) {
		m := o.Manifest
		out := readObject(t, o.Body, Object{Bucket: "corpus", Key: o.Key, Region: "us-east-1"}, Config{Metrics: streams(t)})
		assert.Equal(t, m.Layout, out.stats.Layout.String())

		var ids, lines []string
		for _, e := range out.events {
			if e.EventID == "" {
				lines = append(lines, string(e.Message))
			} else {
				ids = append(ids, e.EventID)
			}
		}
		assert.Equal(t, nilIfEmpty(m.EventIDs()), ids, "events, each once, in order")
		assert.ElementsMatch(t, m.Lines, lines, "lines, each once, exactly as they came")

		points := map[string]int{}
		for _, p := range out.points {
			points[p.Name]++
		}
		if len(m.MetricPoints) == 0 {
			assert.Empty(t, points)
		} else {
			assert.Equal(t, m.MetricPoints, points, "metric-stream points by name")
		}

		require.Len(t, out.dead, len(m.DeadLetters), "dead letters: %v", out.dead)
		for i, want := range m.DeadLetters {
			d := out.dead[i]
			assert.Contains(t, d.Reason, want.Reason)
			data, ok, err := o.DeadData(i)
			require.NoError(t, err)
			if !ok {
				assert.Empty(t, d.Message, "dead letter %d names the object, holds none of it", i)
				continue
			}
			assert.Equal(t, base64.StdEncoding.EncodeToString(data), string(d.Message), "dead letter %d: part %d", i, want.Record)
		}
	})
}
