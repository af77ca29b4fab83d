package dlq_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq/dlqtest"
)

// readAll reads every archive file of dir: the event ids in order, and the
// partial lines skipped.
func readAll(t *testing.T, dir string) (ids []string, partial int) {
	t.Helper()
	files, err := dlq.Files(dir)
	require.NoError(t, err)
	slices.Sort(files)
	for _, name := range files {
		f, err := os.Open(name)
		require.NoError(t, err)
		st, err := dlq.Read(f, func(e dlq.Entry) error { ids = append(ids, e.EventID); return nil })
		f.Close()
		require.NoError(t, err, name)
		partial += st.Partial
	}
	return ids, partial
}

// TestArchiveRecoversAfterDiskFull: a write that fails on a full disk is
// refused whole; once space is back, the next write succeeds, and the
// archive holds what was accepted, once, with no partial line — cut back
// when the file can be truncated, else left at the end of a file never
// written again and skipped (and counted) by the reader.
func TestArchiveRecoversAfterDiskFull(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		failTruncate bool
		failSync     bool
		wantPartial  int
		wantFiles    int
	}{
		{"truncated", false, false, 0, 1},
		{"truncate fails too", true, false, 1, 2},
		{"sync fails", false, true, 0, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			d := &dlqtest.Disk{}
			a, err := dlq.Open(dir, dlq.WithOpenFile(d.Open))
			require.NoError(t, err)
			defer a.Close()

			require.NoError(t, a.Write(dlq.LetterBatch("a", 3)))
			d.Set(dlqtest.State{Full: !c.failSync, Cut: 17, FailSync: c.failSync})
			err = a.Write(dlq.LetterBatch("b", 3))
			require.Error(t, err, "not archived: the batch must not be acknowledged")
			if !c.failSync {
				assert.ErrorIs(t, err, syscall.ENOSPC)
			}
			// Still failing: refused again, nothing repaired yet.
			require.Error(t, a.Write(dlq.LetterBatch("b", 3)))

			d.Set(dlqtest.State{FailTruncate: c.failTruncate})
			require.NoError(t, a.Write(dlq.LetterBatch("b", 3)), "space is back: the retried batch is archived")
			require.NoError(t, a.Write(dlq.LetterBatch("c", 1)))
			assert.Positive(t, a.Recoveries())

			ids, partial := readAll(t, dir)
			assert.Equal(t, []string{"a-0", "a-1", "a-2", "b-0", "b-1", "b-2", "c-0"}, ids, "each batch once, in order")
			assert.Equal(t, c.wantPartial, partial)
			files, _ := dlq.Files(dir)
			assert.Len(t, files, c.wantFiles)
		})
	}
}

// FuzzArchiveFailures: whatever sequence of writes fails and wherever they
// cut their bytes, the archive ends up holding every batch whose Write
// returned nil, in order, each once, and nothing of a refused batch — as
// long as the file can be cut back. When it cannot (truncate fails too), a
// refused batch's entries may remain, whole, beside the accepted ones;
// partial lines are at most one per file and always skipped.
func FuzzArchiveFailures(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 2, 0, 3, 0})
	f.Add([]byte{1, 1, 1, 0})
	f.Add([]byte{0, 0x81, 0, 0x42, 0})
	f.Fuzz(func(t *testing.T, steps []byte) {
		if len(steps) > 64 {
			return
		}
		dir := t.TempDir()
		d := &dlqtest.Disk{}
		a, err := dlq.Open(dir, dlq.WithOpenFile(d.Open))
		require.NoError(t, err)
		defer a.Close()
		var want []string
		refused := map[string]bool{}
		cuttable := true
		for i, s := range steps {
			// bit 0: the disk is full; bit 1: truncate fails; bit 2: sync
			// fails; the rest: how many bytes a failing write stores.
			d.Set(dlqtest.State{Full: s&1 != 0, FailTruncate: s&2 != 0, FailSync: s&4 != 0, Cut: int(s>>3) * 7})
			cuttable = cuttable && s&2 == 0
			b := dlq.LetterBatch(fmt.Sprint(i), 1+int(s%3))
			err := a.Write(b)
			for _, r := range b.Records {
				if err == nil {
					want = append(want, r.EventID)
				} else {
					refused[r.EventID] = true
				}
			}
			if err != nil && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EIO) {
				t.Fatalf("step %d: unexpected error %v", i, err)
			}
		}
		d.Set(dlqtest.State{}) // shut down with the disk healthy
		require.NoError(t, a.Close())
		ids, partial := readAll(t, dir)
		files, _ := filepath.Glob(filepath.Join(dir, "dlq-*.jsonl"))
		require.LessOrEqual(t, partial, len(files))
		if cuttable {
			if len(want) == 0 {
				want = nil
			}
			require.Equal(t, want, ids)
			return
		}
		var accepted []string
		for _, id := range ids {
			if !refused[id] {
				accepted = append(accepted, id)
			}
		}
		if len(accepted) == 0 {
			accepted = nil
		}
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, accepted, "every accepted entry once, in order")
	})
}
