package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// entries lists dir's names: no temporary file may be left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, Write(path, []byte("first")))
	require.NoError(t, Write(path, []byte("second, longer")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "second, longer", string(got))
	assert.Equal(t, []string{"state.json"}, entries(t, dir))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "state may name accounts: the owner's only")
}

func TestWriteFailureLeavesTheOldContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The rename fails: path is a directory that is not empty.
	path := filepath.Join(dir, "state")
	require.NoError(t, os.MkdirAll(filepath.Join(path, "inside"), 0o755))
	err := Write(path, []byte("new"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path, "the error names the file")
	assert.ElementsMatch(t, []string{"state"}, entries(t, dir), "the temporary file is removed")
	assert.DirExists(t, filepath.Join(path, "inside"))
}

func TestWriteNoDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "state.json")
	err := Write(path, []byte("x"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.NoFileExists(t, path)
}
