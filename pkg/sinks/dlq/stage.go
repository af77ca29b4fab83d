package dlq

import (
	"context"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// StageName is the dlq stage's name: it runs in every process, whatever
// stages the process runs.
const StageName = "dlq"

// Sink is a dead-letter archive the dlq stage writes to: a local
// directory (Archive) or an S3 prefix (S3Archive).
type Sink interface {
	stage.Handler
	// Location names the archive: its directory or its s3:// URL.
	Location() string
	RegisterMetrics(*telemetry.Registry)
	Close() error
}

// S3Store returns the store of an s3://bucket/prefix/ URL (cas.NewS3 with
// the process's S3 client).
type S3Store func(ctx context.Context, url string) (*cas.S3, error)

// OpenSink opens the archive cfg places: in S3 (cfg.URL), through the
// store s3 returns for it, or else in the directory cfg.Dir, with opts.
// Its errors start with the key of what could not be opened.
func OpenSink(ctx context.Context, cfg Config, s3 S3Store, opts ...Option) (Sink, error) {
	if cfg.URL == "" {
		a, err := Open(cfg.Dir, opts...)
		if err != nil {
			return nil, fmt.Errorf("dir: %w", err)
		}
		return a, nil
	}
	store, err := s3(ctx, cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	store.ContentType = "application/gzip"
	return NewS3(store, cfg.URL, cfg), nil
}

// NewStage returns the dlq stage: it writes dead letters to archive and
// only then counts them, under the stage that dead-lettered them
// (StageStats.Dead). It is the one owner of that count: a dead letter
// published and never written is not reported as kept.
func NewStage(archive stage.Handler, metrics *telemetry.Registry) stage.Handler {
	return archiveStage{archive: archive, metrics: metrics}
}

type archiveStage struct {
	archive stage.Handler
	metrics *telemetry.Registry
}

func (d archiveStage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	if err := d.archive.Handle(ctx, in, out); err != nil {
		return err
	}
	name := in.Stage
	if name == "" {
		name = "unknown"
	}
	d.metrics.Stage(name).Dead.Add(int64(in.Len()))
	return nil
}
