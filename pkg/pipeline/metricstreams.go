package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// metricStreams is the reader of CloudWatch metric-stream data the
// configuration asks for, shared by the decode stage and the readers of S3
// objects (SQS notifications, replay); nil when metric streams are off. Its
// figures are registered on reg, unless nil.
func metricStreams(cfg config.Config, reg *telemetry.Registry) (decode.MetricDecoder, error) {
	ms := cfg.Metrics.Streams
	if !cfg.Metrics.Enabled || !ms.Enabled {
		return nil, nil
	}
	dec, err := metricstream.NewDecoder(ms.Config)
	if err != nil {
		return nil, fmt.Errorf("metrics.streams: %w", err)
	}
	if reg != nil {
		dec.RegisterMetrics(reg)
	}
	return decode.MetricStreams(dec), nil
}

// metricTags gives CloudWatch metric points their stage's console tags,
// before the log enrichment runs on the batch's records.
type metricTags struct {
	next stage.Handler
	t    *awstags.Tagger
}

func (h metricTags) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if len(in.Metrics) > 0 && h.t != nil {
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

// metricsThrough forwards CloudWatch metric points to the metrics topic,
// beside the metrics the derive stage computes from the batch's logs. The
// forwarded batch carries the source's acknowledgement: it completes when
// the metrics API accepted the points.
type metricsThrough struct{ next stage.Handler }

func (h metricsThrough) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if len(in.Metrics) > 0 {
		if err := out.Emit(ctx, &record.Batch{ID: in.ID, Origin: in.Origin, Ack: in.Ack, Metrics: in.Metrics}); err != nil {
			return err
		}
	}
	if len(in.Records) == 0 {
		return nil
	}
	return h.next.Handle(ctx, in, out)
}
