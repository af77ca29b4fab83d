package fakeintake

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 2*MaxLogBytes)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	return lines
}

func TestJSONLRecording(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out") // created by New
	s, c := start(t, Config{OutDir: dir})

	require.Equal(t, http.StatusAccepted, c.post(logsPath, []byte(`[{"message":"a", "n": 1},{"message":"b"}]`)).status)
	require.Equal(t, http.StatusAccepted, c.post(logsPath, []byte(`{"message":"c"}`)).status)
	require.Equal(t, http.StatusBadRequest, c.post(logsPath, []byte(`[{"nomessage":1}]`)).status)
	require.Equal(t, http.StatusAccepted, c.post(seriesPath, seriesPayload("m", testNow.Unix(), testNow.Unix()-1, 0)).status)
	require.Equal(t, http.StatusAccepted, c.post(distPath, distPayload("d", 1700000000, 1, 2)).status)
	require.NoError(t, s.SetFailure(Failure{Status: 500}))
	require.Equal(t, http.StatusInternalServerError, c.post(logsPath, []byte(`{"message":"failed"}`)).status)

	// Lines are written before the answer, so no wait is needed.
	assert.Equal(t, []string{`{"message":"a","n":1}`, `{"message":"b"}`, `{"message":"c"}`},
		readLines(t, filepath.Join(dir, "logs.jsonl")))

	series := readLines(t, filepath.Join(dir, "series.jsonl"))
	require.Len(t, series, 2, "the too-old point is not recorded")
	var p SeriesPoint
	require.NoError(t, json.Unmarshal([]byte(series[1]), &p))
	assert.Equal(t, s.Series()[1], p)

	dists := readLines(t, filepath.Join(dir, "distribution_points.jsonl"))
	require.Len(t, dists, 1)
	var d DistributionPoint
	require.NoError(t, json.Unmarshal([]byte(dists[0]), &d))
	assert.Equal(t, s.Distributions()[0], d)

	assert.Zero(t, s.Stats().RecordErrors)
}

func TestJSONLAppendsAcrossServers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, msg := range []string{"first", "second"} {
		s, err := New(Config{OutDir: dir})
		require.NoError(t, err)
		b := &batch{logs: []logEntry{{raw: []byte(`{"message":"` + msg + `"}`)}}}
		require.NoError(t, s.record(EndpointLogs, b))
		require.NoError(t, s.Close())
	}
	assert.Equal(t, []string{`{"message":"first"}`, `{"message":"second"}`},
		readLines(t, filepath.Join(dir, "logs.jsonl")))
}

func TestOutDirError(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := New(Config{OutDir: filepath.Join(file, "sub")})
	require.Error(t, err)
}
