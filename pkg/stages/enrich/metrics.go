package enrich

import (
	"context"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// MetricTagger is what tagging metric points needs from *awstags.Tagger.
type MetricTagger interface {
	// ResolveNormalized names the stage of a metric point's dimensions.
	ResolveNormalized(ctx context.Context, account, region, apiID, apiName, stage string) (awstags.StageKey, bool)
	// Lookup returns the stage's tags, waiting for AWS until ctx ends.
	Lookup(ctx context.Context, key awstags.StageKey) (awstags.Info, bool)
}

// WithMetricTags gives the CloudWatch metric points of a batch (metric
// streams, the poller) their stage's console tags, then hands the batch to
// next (the log enrichment). Points keep the tags they have: a tag read
// from AWS is added only when its key is not there yet.
func WithMetricTags(next stage.Handler, t MetricTagger) stage.Handler {
	return metricTags{next: next, t: t}
}

type metricTags struct {
	next stage.Handler
	t    MetricTagger
}

func (h metricTags) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if len(in.Metrics) > 0 {
		// Points of one series share a tag slice: tag each slice once.
		done := map[*string][]string{}
		for i := range in.Metrics {
			m := &in.Metrics[i]
			if len(m.Tags) == 0 {
				continue
			}
			if tags, ok := done[&m.Tags[0]]; ok {
				m.Tags = tags
				continue
			}
			first := &m.Tags[0]
			m.Tags = h.tag(ctx, m.Tags)
			done[first] = m.Tags
		}
	}
	return h.next.Handle(ctx, in, out)
}

func (h metricTags) tag(ctx context.Context, tags []string) []string {
	k, ok := metricstream.KeyOfTags(tags)
	if !ok {
		return tags
	}
	key, ok := h.t.ResolveNormalized(ctx, k.Account, k.Region, k.APIID, k.APIName, k.Stage)
	if !ok {
		return tags
	}
	info, _ := h.t.Lookup(ctx, key)
	have := map[string]bool{}
	for _, t := range tags {
		key, _, _ := strings.Cut(t, ":")
		have[key] = true
	}
	out := append([]string(nil), tags...) // the series' slice is shared: copy
	for _, t := range info.Tags {
		key, _, _ := strings.Cut(t, ":")
		if !have[key] {
			out = append(out, t)
		}
	}
	return out
}
