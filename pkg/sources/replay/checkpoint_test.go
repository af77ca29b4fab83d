package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
)

func TestAddRange(t *testing.T) {
	cases := []struct {
		name     string
		in       [][2]int64
		from, to int64
		want     [][2]int64
	}{
		{"into nothing", nil, 0, 10, [][2]int64{{0, 10}}},
		{"empty range", [][2]int64{{0, 10}}, 5, 5, [][2]int64{{0, 10}}},
		{"after, disjoint", [][2]int64{{0, 10}}, 20, 30, [][2]int64{{0, 10}, {20, 30}}},
		{"before, disjoint", [][2]int64{{20, 30}}, 0, 10, [][2]int64{{0, 10}, {20, 30}}},
		{"adjacent after", [][2]int64{{0, 10}}, 10, 20, [][2]int64{{0, 20}}},
		{"adjacent before", [][2]int64{{10, 20}}, 0, 10, [][2]int64{{0, 20}}},
		{"fills a hole", [][2]int64{{0, 10}, {20, 30}}, 10, 20, [][2]int64{{0, 30}}},
		{"overlaps several", [][2]int64{{0, 5}, {8, 9}, {12, 15}, {40, 50}}, 3, 20, [][2]int64{{0, 20}, {40, 50}}},
		{"inside", [][2]int64{{0, 100}}, 10, 20, [][2]int64{{0, 100}}},
		{"between", [][2]int64{{0, 5}, {40, 50}}, 10, 20, [][2]int64{{0, 5}, {10, 20}, {40, 50}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := addRange(append([][2]int64(nil), c.in...), c.from, c.to)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestCovered(t *testing.T) {
	rs := [][2]int64{{0, 5}, {10, 20}, {30, 31}}
	for n, want := range map[int64]bool{0: true, 4: true, 5: false, 9: false, 10: true, 19: true, 20: false, 30: true, 31: false, -1: false, 100: false} {
		assert.Equal(t, want, covered(rs, n), "%d", n)
	}
	assert.False(t, covered(nil, 0))
}

func TestProgressWatermarkAdvancesOverCompletedPrefix(t *testing.T) {
	c := &Checkpoint{Version: checkpointVersion}
	p := newProgress(c)
	for _, k := range []string{"a", "b", "c", "d"} {
		p.register(k, false)
	}
	p.register("e", true) // skipped: done at once
	p.objectDone("c")
	assert.Empty(t, c.Watermark, "a is not done")
	assert.Equal(t, []string{"c", "e"}, c.Done)
	p.ack("a", `"etag-a"`, 0, 1000)
	p.ack("a", `"etag-a"`, 2000, 3000)
	assert.Equal(t, [][2]int64{{0, 1000}, {2000, 3000}}, c.Partial["a"].Ranges)
	p.objectDone("a")
	assert.Equal(t, "a", c.Watermark)
	assert.NotContains(t, c.Partial, "a", "a done object keeps no ranges")
	p.objectDone("b")
	assert.Equal(t, "c", c.Watermark, "the watermark passes over b and c")
	assert.Equal(t, []string{"e"}, c.Done)
	p.objectDone("d")
	assert.Equal(t, "e", c.Watermark)
	assert.Empty(t, c.Done)
	for k, want := range map[string]bool{"a": true, "c": true, "e": true, "f": false} {
		assert.Equal(t, want, p.isDone(k), k)
	}
}

func TestCheckpointSaveAndLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay.ckpt")
	fresh, err := LoadCheckpoint(path)
	require.NoError(t, err)
	assert.Equal(t, checkpointVersion, fresh.Version)

	c := &Checkpoint{Version: checkpointVersion, Source: "s3://b/p", Watermark: "p/1", Done: []string{"p/3"},
		Partial: map[string]*Partial{"p/2": {ETag: `"e"`, Ranges: [][2]int64{{0, 10}}}}}
	require.NoError(t, c.Save(path))
	got, err := LoadCheckpoint(path)
	require.NoError(t, err)
	assert.Equal(t, c.Source, got.Source)
	assert.Equal(t, c.Watermark, got.Watermark)
	assert.Equal(t, c.Done, got.Done)
	assert.Equal(t, c.Partial, got.Partial)
	assert.Equal(t, [][2]int64{{0, 10}}, got.Acked("p/2", `"e"`))
	assert.Nil(t, got.Acked("p/2", `"rewritten"`), "an object that changed starts again")
	assert.True(t, got.IsDone("p/0"))
	assert.True(t, got.IsDone("p/3"))
	assert.False(t, got.IsDone("p/2"))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	require.NoError(t, os.WriteFile(path, []byte("not json"), 0o600))
	_, err = LoadCheckpoint(path)
	assert.ErrorContains(t, err, "not a gwpipe replay checkpoint")
	require.NoError(t, os.WriteFile(path, []byte(`{"version":99}`), 0o600))
	_, err = LoadCheckpoint(path)
	assert.ErrorContains(t, err, "version 99")
}

// gatedCheckpoint is a checkpoint store whose writes wait until released:
// a slow S3 write.
type gatedCheckpoint struct {
	CheckpointStore
	entered chan struct{} // receives when a write starts waiting
	release chan struct{} // closed: writes go on
}

func (g *gatedCheckpoint) Save(ctx context.Context, c *Checkpoint) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.CheckpointStore.Save(ctx, c)
}

// TestAcknowledgementsGoOnWhileTheCheckpointIsWritten: a checkpoint write
// that takes long (S3 slow to answer) does not hold back the
// acknowledgements of what the replay sent — they record their progress
// in the checkpoint kept in memory, which the write had locked for its
// whole length, and with them the delivery stages that settle batches.
// What they record goes into the next write.
func TestAcknowledgementsGoOnWhileTheCheckpointIsWritten(t *testing.T) {
	m := archive()
	path := filepath.Join(t.TempDir(), "replay.ckpt")
	store := &gatedCheckpoint{CheckpointStore: FileCheckpoint(path), entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := &holdOut{emitted: make(chan struct{}, 100)}
	e, err := New(Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Now: func() time.Time { return now },
		CheckpointStore: store, CheckpointEvery: time.Millisecond,
		MaxInFlightEvents: 100, Object: s3obj.Config{EventsPerBatch: 50}}, m, h, quiet())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(context.Background())
		done <- err
	}()
	for range 2 {
		<-h.emitted // the window is full: two batches wait for their acknowledgement
	}
	<-store.entered // a write of the checkpoint is under way, and waits

	acked := make(chan struct{})
	go func() {
		h.releaseAll()
		close(acked)
	}()
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("the acknowledgements wait for the checkpoint write")
	}
	// The window has room again: the replay sends on while the write waits.
	<-h.emitted
	close(store.release)

	for {
		h.releaseAll()
		select {
		case <-h.emitted:
			continue
		case err := <-done:
			require.NoError(t, err)
			saved, err := LoadCheckpoint(path)
			require.NoError(t, err)
			assert.True(t, saved.Complete)
			assert.EqualValues(t, 6, saved.DoneObjects)
			return
		}
	}
}

// TestInterruptedSummarySaysHowToResume: the first line of an interrupted
// replay's summary tells what a run again does, from what was kept: the
// checkpoint, the archive's ledger, nothing (no --checkpoint: it starts
// over), or a checkpoint that could not be saved.
func TestInterruptedSummarySaysHowToResume(t *testing.T) {
	for _, c := range []struct {
		sum  Summary
		want string
	}{
		{Summary{Checkpoint: "r.ckpt"}, "(interrupted: run it again with the same checkpoint to resume)"},
		{Summary{Ledger: true}, "(interrupted: run it again to resume)"},
		{Summary{}, "(interrupted, with no checkpoint (--checkpoint): run again, it starts from the beginning)"},
		{Summary{DryRun: true}, "(interrupted)\n"},
		{Summary{Checkpoint: "s3://b/k", NotSaved: "write checkpoint: timeout"}, "(interrupted, and its checkpoint could not be saved: run it again with the same checkpoint to resume from its last save, which sends again what was delivered since)"},
		{Summary{Ledger: true, NotSaved: "replay ledger: timeout"}, "(interrupted, and its ledger could not be saved: run it again to resume from the ledger's last save, which sends again what was delivered since)"},
	} {
		c.sum.Source, c.sum.Interrupted = "s3://arch/fh/", true
		out := written(c.sum)
		first, _, _ := strings.Cut(out, "\n")
		assert.Equal(t, "replay of s3://arch/fh/ "+strings.TrimSuffix(c.want, "\n"), first)
		if c.sum.NotSaved != "" {
			assert.Contains(t, out, " not saved: "+c.sum.NotSaved+"\n")
		} else {
			assert.NotContains(t, out, "not saved")
		}
	}
}
