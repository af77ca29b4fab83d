package enrich

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// consoleTags knows one stage's tags and counts its lookups.
type consoleTags struct{ lookups int }

func (c *consoleTags) ResolveNormalized(_ context.Context, account, region, apiID, apiName, st string) (awstags.StageKey, bool) {
	if apiName != "petstore" || st != "prod" {
		return awstags.StageKey{}, false
	}
	return awstags.StageKey{Account: account, Region: region, APIID: "a1", Stage: st}, true
}

func (c *consoleTags) Lookup(context.Context, awstags.StageKey) (awstags.Info, bool) {
	c.lookups++
	return awstags.Info{Tags: []string{"team:pets", "stage:ignored"}}, true
}

// TestWithMetricTagsAddsTheStagesTagsOncePerSeries: a point gets its
// stage's console tags (a key it has is kept), the points of one series
// are tagged once, points of no known stage are left alone, and the
// records go on to the next handler.
func TestWithMetricTagsAddsTheStagesTagsOncePerSeries(t *testing.T) {
	series := []string{"aws_account:123456789012", "region:us-east-1", "apiname:petstore", "stage:prod"}
	other := []string{"aws_account:123456789012", "region:us-east-1", "apiname:zoo", "stage:prod"}
	in := &record.Batch{
		Metrics: []record.Metric{{Name: "a", Tags: series}, {Name: "b", Tags: series}, {Name: "c", Tags: other}},
		Records: []record.Record{{EventID: "log"}},
	}
	tags := &consoleTags{}
	var next []*record.Batch
	h := WithMetricTags(stage.HandlerFunc(func(_ context.Context, b *record.Batch, _ stage.Output) error {
		next = append(next, b)
		return nil
	}), tags)
	require.NoError(t, h.Handle(context.Background(), in, &stagetest.Output{}))
	require.Len(t, next, 1)
	want := append(append([]string(nil), series...), "team:pets")
	assert.Equal(t, want, in.Metrics[0].Tags)
	assert.Equal(t, want, in.Metrics[1].Tags)
	assert.Equal(t, other, in.Metrics[2].Tags)
	assert.Equal(t, 1, tags.lookups, "one lookup per series")
	assert.Len(t, series, 4, "the series' shared tag slice was modified")
}
