// Package enrich is the pipeline stage that gives every log the tags of
// its API Gateway stage as the AWS console shows them (package awstags):
// apiid, apiname, stage, region, aws_account, the API's and stage's AWS
// tags, and service from the stage's "service" tag.
//
// A batch is handled in three passes: resolve every record's stage (no AWS
// call, no allocation), look up each distinct stage once (starting every
// fetch the batch needs at once, then waiting for them together, at most
// MaxWait per batch), and assign: every record of a stage gets the same
// shared tag slice. Records are never held beyond MaxWait and never
// dropped: those whose tags were not known in time carry
// awstags.PartialTag.
//
// The Tagger is *awstags.Tagger, or *awstags.Offline with enrich.aws_tags
// off: both name a record's stage by the same rules and build its
// identity tags (apiid, stage, region, aws_account) the same way, so the
// tags a log carries by itself do not depend on the AWS settings.
//
// The configured static tags and "replay:true" are not added here: the
// logs deliverer (package ddlogs) adds both to every log it renders, and
// derive copies the static tags of allowlisted keys onto the metrics.
// Handling a batch twice (the runtime retries a batch whose Emit failed)
// does not add the tags twice.
package enrich

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// Tagger is what the stage needs from *awstags.Tagger.
type Tagger interface {
	// Resolve names a record's stage without calling AWS.
	Resolve(rec *record.Record) (awstags.StageKey, bool)
	// Peek answers from the cache, starting a fetch on a miss; settled is
	// false when waiting for that fetch may improve the answer.
	Peek(key awstags.StageKey) (info awstags.Info, settled bool)
	// Wait waits (until ctx is done) for a key Peek left unsettled.
	Wait(ctx context.Context, key awstags.StageKey) (info awstags.Info, complete bool)
}

// Config tunes the stage.
type Config struct {
	// MaxWait bounds how long a batch waits for tags not cached yet, all
	// its stages together (default awstags.DefaultMaxWait, 200ms).
	MaxWait time.Duration
	Logger  *slog.Logger
	// Reparse, when set, parses again a record the parse stage could not
	// route (record.KindOther), once its stage was looked up: the lookup
	// reads the stage's access-log format from AWS and teaches it to the
	// parser (awstags Config.OnFormat), which the parse stage — upstream,
	// and in a fleet in another worker — could not have known. Without it
	// the first records of a custom-format log group, and in a fleet all
	// of them, would be delivered unparsed and uncounted by the metrics.
	Reparse func(b *record.Batch, rec *record.Record)
}

// Stats are the stage's counters since New.
type Stats struct {
	Batches int64
	Records int64
	// Unnamed records named no stage (they get the account and region).
	Unnamed int64
	// Partial records went on before their stage's tags were known.
	Partial int64
	// Waits counts batches that waited for tags.
	Waits int64
}

// Stage is the enrich stage; it implements stage.Handler.
type Stage struct {
	t    Tagger
	cfg  Config
	log  *slog.Logger
	pool sync.Pool // *scratch

	batches, records, unnamed, partial, waits atomic.Int64
}

var _ stage.Handler = (*Stage)(nil)

// New returns the enrich stage over a Tagger.
func New(t Tagger, cfg Config) (*Stage, error) {
	if t == nil {
		return nil, errors.New("enrich: a Tagger is required")
	}
	if cfg.MaxWait < 0 {
		return nil, errors.New("enrich: max_wait must not be negative")
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = awstags.DefaultMaxWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Stage{t: t, cfg: cfg, log: cfg.Logger.With("stage", "enrich")}
	s.pool.New = func() any { return &scratch{index: map[awstags.StageKey]int32{}} }
	return s, nil
}

// Stats returns a snapshot of the counters.
func (s *Stage) Stats() Stats {
	return Stats{Batches: s.batches.Load(), Records: s.records.Load(), Unnamed: s.unnamed.Load(),
		Partial: s.partial.Load(), Waits: s.waits.Load()}
}

// scratch is one batch's working memory, pooled so that a steady stream of
// batches allocates nothing.
type scratch struct {
	keys    []awstags.StageKey // distinct keys of the batch; may alias its bytes
	infos   []awstags.Info     // answer per key
	slot    []int32            // record → key
	pending []int32            // keys to wait for
	index   map[awstags.StageKey]int32
}

// linearKeys is how many distinct keys are searched linearly before the
// map takes over: a batch usually comes from one log stream, one stage.
const linearKeys = 8

func (sc *scratch) find(k awstags.StageKey, last int32) int32 {
	if last >= 0 && sc.keys[last] == k {
		return last
	}
	if len(sc.keys) <= linearKeys {
		for j := range sc.keys {
			if sc.keys[j] == k {
				return int32(j)
			}
		}
		if len(sc.keys) == linearKeys {
			for j, key := range sc.keys {
				sc.index[key] = int32(j)
			}
		}
	} else if j, ok := sc.index[k]; ok {
		return j
	}
	j := int32(len(sc.keys))
	sc.keys = append(sc.keys, k)
	if len(sc.keys) > linearKeys {
		sc.index[k] = j
	}
	return j
}

// reset drops every reference into the batch (keys alias its bytes) before
// the scratch goes back to the pool; oversized buffers are let go.
func (sc *scratch) reset() {
	clear(sc.keys)
	clear(sc.infos)
	clear(sc.index)
	sc.keys, sc.infos, sc.slot, sc.pending = sc.keys[:0], sc.infos[:0], sc.slot[:0], sc.pending[:0]
	if cap(sc.slot) > 1<<16 {
		sc.slot = nil
	}
}

// Handle enriches every record of the batch in place and emits it.
func (s *Stage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if n := len(in.Records); n > 0 {
		s.enrich(ctx, in)
	}
	return out.Emit(ctx, in)
}

func (s *Stage) enrich(ctx context.Context, b *record.Batch) {
	recs := b.Records
	sc := s.pool.Get().(*scratch)
	defer func() {
		sc.reset()
		s.pool.Put(sc)
	}()

	// 1. Resolve: which stage each record belongs to.
	sc.slot = slices.Grow(sc.slot[:0], len(recs))[:len(recs)]
	var unnamed int64
	last := int32(-1)
	for i := range recs {
		key, named := s.t.Resolve(&recs[i])
		if !named {
			unnamed++
		}
		last = sc.find(key, last)
		sc.slot[i] = last
	}

	// 2. Look up each stage once. Peek first at all of them, so that every
	// fetch the batch needs runs at the same time, then wait for those
	// under one deadline: a batch waits MaxWait at most, not per stage.
	for j, key := range sc.keys {
		info, settled := s.t.Peek(key)
		sc.infos = append(sc.infos, info)
		if !settled {
			sc.pending = append(sc.pending, int32(j))
		}
	}
	if len(sc.pending) > 0 {
		s.waits.Add(1)
		wctx, cancel := context.WithTimeout(ctx, s.cfg.MaxWait)
		for _, j := range sc.pending {
			sc.infos[j], _ = s.t.Wait(wctx, sc.keys[j])
		}
		cancel()
	}

	// 3. Assign: the stage's slice itself, shared, unless the record has
	// tags of its own.
	var partial int64
	for i := range recs {
		r := &recs[i]
		if r.Kind == record.KindOther && s.cfg.Reparse != nil {
			s.cfg.Reparse(b, r) // before the service tag below: parsing names the service
		}
		info := &sc.infos[sc.slot[i]]
		r.Tags = withTags(r.Tags, info.Tags)
		if info.Service != "" {
			r.Service = info.Service
		}
		if info.Partial {
			partial++
		}
	}
	if partial > 0 {
		s.log.Debug("records delivered with partial tags", "records", partial, "stages", len(sc.pending))
	}
	s.batches.Add(1)
	s.records.Add(int64(len(recs)))
	s.unnamed.Add(unnamed)
	s.partial.Add(partial)
}

// withTags returns have followed by add. A retried batch comes back with
// the tags of the first attempt: they are not added twice.
func withTags(have, add []string) []string {
	switch {
	case len(have) == 0:
		return add
	case len(add) == 0:
		return have
	case len(have) >= len(add) && &have[len(have)-len(add)] == &add[0]:
		return have // the very slice of the previous attempt
	case len(have) >= len(add) && slices.Equal(have[len(have)-len(add):], add):
		return have
	}
	// Copy: add is shared by every record of the stage.
	out := make([]string, 0, len(have)+len(add))
	return append(append(out, have...), add...)
}
