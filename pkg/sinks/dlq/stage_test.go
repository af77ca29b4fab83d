package dlq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// TestStageCountsOnlyWhatTheArchiveWrote: a letter counts as dead under
// the stage that dead-lettered it ("unknown" when unnamed) once written,
// and not at all when the write failed.
func TestStageCountsOnlyWhatTheArchiveWrote(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	var fail error
	archive := stage.HandlerFunc(func(context.Context, *record.Batch, stage.Output) error { return fail })
	s := NewStage(archive, reg)
	two := &record.Batch{Stage: "decode", Records: make([]record.Record, 2)}
	if err := s.Handle(context.Background(), two, &stagetest.Output{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Handle(context.Background(), &record.Batch{Records: make([]record.Record, 1)}, &stagetest.Output{}); err != nil {
		t.Fatal(err)
	}
	fail = errors.New("disk full")
	if err := s.Handle(context.Background(), two, &stagetest.Output{}); err == nil {
		t.Fatal("a failed write succeeded")
	}
	if n := reg.Stage("decode").Dead.Load(); n != 2 {
		t.Errorf("decode dead = %d, want 2 (the failed write is not counted)", n)
	}
	if n := reg.Stage("unknown").Dead.Load(); n != 1 {
		t.Errorf("unknown dead = %d, want 1", n)
	}
}

// TestOpenSinkOpensTheArchiveTheConfigurationPlaces: a URL opens an S3
// archive through the store given for it (and reaches nothing else), a
// directory a local archive; each error starts with the key at fault.
func TestOpenSinkOpensTheArchiveTheConfigurationPlaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	noS3 := func(context.Context, string) (*cas.S3, error) { t.Fatal("a local archive reached S3"); return nil, nil }
	local, err := OpenSink(ctx, cfg, noS3)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := local.(*Archive); !ok || local.Location() != cfg.Dir || cfg.Location() != cfg.Dir {
		t.Errorf("dir %s opened %T at %s (config says %s)", cfg.Dir, local, local.Location(), cfg.Location())
	}
	if err := local.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.URL = "s3://bucket/dlq/"
	var asked string
	inS3, err := OpenSink(ctx, cfg, func(_ context.Context, url string) (*cas.S3, error) {
		asked = url
		return cas.NewS3(nil, "bucket", "dlq/"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inS3.(*S3Archive); !ok || inS3.Location() != cfg.URL || cfg.Location() != cfg.URL || asked != cfg.URL {
		t.Errorf("url %s opened %T at %s (config says %s, store asked for %s)", cfg.URL, inS3, inS3.Location(), cfg.Location(), asked)
	}
	if err := inS3.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = OpenSink(ctx, cfg, func(context.Context, string) (*cas.S3, error) { return nil, errors.New("no credentials") })
	if err == nil || !strings.HasPrefix(err.Error(), "url: ") {
		t.Errorf("S3 unreachable: got %v, want an error starting with url:", err)
	}
	cfg.URL, cfg.Dir = "", filepath.Join(cfg.Dir, "file")
	if err := os.WriteFile(cfg.Dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = filepath.Join(cfg.Dir, "dlq") // under a file: cannot be made
	if _, err = OpenSink(ctx, cfg, noS3); err == nil || !strings.HasPrefix(err.Error(), "dir: ") {
		t.Errorf("directory under a file: got %v, want an error starting with dir:", err)
	}
}
