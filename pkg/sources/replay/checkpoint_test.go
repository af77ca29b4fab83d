package replay

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
