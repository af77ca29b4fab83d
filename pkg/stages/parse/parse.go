// Package parse is the parse stage: every record of a batch is parsed in
// place by the API Gateway parser (package apigw), and the execution-log
// lines of one request are folded into a request summary (apigw's
// Correlator) that rides along in the same batch.
//
// Records are never dropped here: what cannot be parsed is marked and
// delivered. Summaries of requests whose last line never came are emitted
// by RunExpiry, and those still open at shutdown by Flush; neither carries
// a source's acknowledgement (their lines were acknowledged with their own
// batches).
package parse

import (
	"context"
	"log/slog"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// Name is the stage's name, as `gwpipe run --stages` takes it.
const Name = "parse"

// LineParser understands one record in place (*apigw.Parser).
type LineParser interface {
	Parse(b *record.Batch, rec *record.Record)
}

// Correlator folds the execution-log lines of one request into a summary
// record (*apigw.Correlator).
type Correlator interface {
	Observe(rec *record.Record) (record.Record, bool)
	Expire(now int64) []record.Record
	Flush() []record.Record
}

// Stage is the parse stage; it implements stage.Handler.
type Stage struct {
	p LineParser
	c Correlator // nil: no summaries
}

// New returns the stage; c may be nil (no request summaries).
func New(p LineParser, c Correlator) *Stage { return &Stage{p: p, c: c} }

// Handle parses every record of in and emits it, with the summaries of the
// requests it completed appended.
func (s *Stage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	n := len(in.Records)
	for i := 0; i < n; i++ {
		rec := &in.Records[i]
		s.p.Parse(in, rec)
		if s.c != nil && rec.Kind == record.KindExecution {
			if sum, ok := s.c.Observe(rec); ok {
				in.Records = append(in.Records, sum)
			}
		}
	}
	return out.Emit(ctx, in)
}

// ExpiryInterval is how often RunExpiry looks for requests older than
// maxAge: a quarter of it, at least every 100ms.
func ExpiryInterval(maxAge time.Duration) time.Duration {
	return max(maxAge/4, 100*time.Millisecond)
}

// RunExpiry emits, every interval until ctx ends, the summaries of the
// requests that timed out (their last line never came).
func (s *Stage) RunExpiry(ctx context.Context, out stage.Output, every time.Duration, log *slog.Logger) {
	if s.c == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := emitSummaries(ctx, out, s.c.Expire(now.UnixMilli())); err != nil && ctx.Err() == nil {
				log.Warn("request summaries could not be emitted", "error", err)
			}
		}
	}
}

// Flush emits the summaries of every request still open, at shutdown. On
// error it returns how many summaries were lost: nothing will send them
// again.
func (s *Stage) Flush(ctx context.Context, out stage.Output) (lost int, err error) {
	if s.c == nil {
		return 0, nil
	}
	sums := s.c.Flush()
	if err := emitSummaries(ctx, out, sums); err != nil {
		return len(sums), err
	}
	return 0, nil
}

// emitSummaries publishes summaries of requests that timed out or were
// open at shutdown.
func emitSummaries(ctx context.Context, out stage.Output, sums []record.Record) error {
	if len(sums) == 0 {
		return nil
	}
	return out.Emit(ctx, &record.Batch{ID: "summaries", Origin: sums[0].Origin, Records: sums})
}
