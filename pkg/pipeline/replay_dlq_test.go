package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// refusedLetters makes the intake refuse n logs sent through the Firehose
// endpoint, so that they land in the dead-letter archive; it returns
// their ids.
func refusedLetters(t *testing.T, h *harness, n int) []string {
	t.Helper()
	require.NoError(t, h.intake.SetFailure(refuseLogs(400)))
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("dl%03d", i))
	}
	status, resp := firehoseRequest(t, h.url, "dead", recordsBody("dead", gz(envelope(ids...))), nil)
	require.Equal(t, http.StatusOK, status, "dead-lettered counts as handled: %v", resp)
	require.Len(t, readDLQ(t, h.dlqDir), n)
	h.intake.ClearFailure()
	h.intake.Reset()
	return ids
}

// refuseLogs fails the logs intake alone: the metrics derived meanwhile
// are not dead letters of the test.
func refuseLogs(status int) fakeintake.Failure {
	return fakeintake.Failure{Status: status, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointLogs}}
}

// archiveLetters counts the letters of every archive file under dir
// (sub-archives included) and the sub-archives.
func archiveLetters(t *testing.T, dir string) (letters, subArchives int) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() && path != dir {
			subArchives++
		}
		if ok, _ := filepath.Match("dlq-*.jsonl", d.Name()); ok {
			f, err := os.Open(path)
			require.NoError(t, err)
			defer f.Close()
			st, err := dlq.Read(f, func(dlq.Entry) error { return nil })
			require.NoError(t, err)
			letters += st.Entries
		}
		return nil
	}))
	return letters, subArchives
}

// replayDLQ runs `gwpipe replay --dlq-dir dir` with the configuration's
// own dead-letter directory being that archive (the default setup).
func replayDLQ(t *testing.T, h *harness, mutate ...func(*config.Config)) (ReplayResult, string, error) {
	t.Helper()
	cfg := h.p.Config()
	cfg.DLQ.Dir = h.dlqDir
	cfg.Replay.DLQ = h.dlqDir
	for _, m := range mutate {
		m(&cfg)
	}
	res, err := Replay(context.Background(), cfg, ReplayOptions{}, h.p.Logger())
	var out bytes.Buffer
	res.Write(&out)
	return res, out.String(), err
}

func intakeIDs(h *harness) map[string]int {
	seen := map[string]int{}
	for _, l := range h.intake.Logs() {
		req, _ := attr(l, "apigateway.requestId").(string)
		seen[req]++
	}
	return seen
}

// TestReplayDeadLettersTwiceSendsEachOnce: replaying the default archive
// with the default dlq.dir (the same directory) delivers every letter
// once; running the same command again sends nothing and the archive does
// not grow.
func TestReplayDeadLettersTwiceSendsEachOnce(t *testing.T) {
	h := start(t)
	ids := refusedLetters(t, h, 200)

	res, printed, err := replayDLQ(t, h)
	require.NoError(t, err)
	assert.EqualValues(t, 200, res.Sent)
	assert.EqualValues(t, 200, res.Delivered)
	assert.Zero(t, res.DeadLettered)
	assert.Empty(t, res.FailedAgainIn, "nothing failed again: no new archive left behind")
	assert.Contains(t, printed, "failed again     0")
	seen := intakeIDs(h)
	require.Len(t, seen, len(ids))
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], id)
	}

	res, printed, err = replayDLQ(t, h)
	require.NoError(t, err)
	assert.Zero(t, res.Sent, "running the same command again resends nothing")
	assert.Len(t, h.intake.Logs(), 200)
	assert.Contains(t, printed, "already done")
	assert.EqualValues(t, 200, res.AlreadyDelivered, "the ledger's settled letters are counted, though not read again")
	assert.Contains(t, printed, "already settled  200 letters")
	letters, subs := archiveLetters(t, h.dlqDir)
	assert.Equal(t, 200, letters, "the archive did not grow")
	assert.Zero(t, subs)
}

// TestReplayDeadLettersWhileTheIntakeRefusesThenAccepts: while the intake
// still refuses them, the letters fail again and go to a new archive
// (inside the one read, printed), never into the files read; the total
// of letters pending stays the same however many times the replay runs;
// once the intake accepts, the same command delivers every letter exactly
// once, and then nothing more.
func TestReplayDeadLettersWhileTheIntakeRefusesThenAccepts(t *testing.T) {
	h := start(t)
	ids := refusedLetters(t, h, 200)
	before, err := dlq.Files(h.dlqDir)
	require.NoError(t, err)
	sizes := map[string]int64{}
	for _, f := range before {
		st, err := os.Stat(f)
		require.NoError(t, err)
		sizes[f] = st.Size()
	}

	require.NoError(t, h.intake.SetFailure(refuseLogs(400)))
	var outs []string
	for run := range 3 {
		res, printed, err := replayDLQ(t, h)
		require.NoError(t, err, "run %d", run)
		assert.EqualValues(t, 200, res.DeadLettered, "run %d: every letter failed again", run)
		require.NotEmpty(t, res.FailedAgainIn)
		assert.Contains(t, printed, res.FailedAgainIn, "where they went is printed")
		assert.DirExists(t, res.FailedAgainIn)
		rel, err := filepath.Rel(h.dlqDir, res.FailedAgainIn)
		require.NoError(t, err)
		assert.NotContains(t, outs, rel, "a new archive each run")
		outs = append(outs, rel)
	}
	for f, size := range sizes {
		st, err := os.Stat(f)
		require.NoError(t, err)
		assert.Equal(t, size, st.Size(), "the files read were never written to: %s", f)
	}
	letters, subs := archiveLetters(t, h.dlqDir)
	assert.Equal(t, 4*200, letters, "the original letters and one copy per run, each settled in the file it came from")
	assert.Equal(t, 3, subs)
	assert.Zero(t, h.intake.Stats().LogsAccepted)

	h.intake.ClearFailure()
	res, _, err := replayDLQ(t, h)
	require.NoError(t, err)
	assert.EqualValues(t, 200, res.Delivered)
	assert.Empty(t, res.FailedAgainIn)
	seen := intakeIDs(h)
	require.Len(t, seen, len(ids), "200 letters, 200 logs")
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], id)
	}

	res, _, err = replayDLQ(t, h)
	require.NoError(t, err)
	assert.Zero(t, res.Sent)
	assert.Len(t, h.intake.Logs(), 200, "and then nothing more")
}

// TestReplayDeadLettersInterruptedWhileTheIntakeIsDown: the intake answers
// 503 (retried, never refused), the replay is interrupted: nothing was
// settled, nothing lost; once the intake is back the same command
// delivers every letter exactly once.
func TestReplayDeadLettersInterruptedWhileTheIntakeIsDown(t *testing.T) {
	h := start(t)
	ids := refusedLetters(t, h, 50)
	require.NoError(t, h.intake.SetFailure(refuseLogs(503)))
	cfg := h.p.Config()
	cfg.DLQ.Dir, cfg.Replay.DLQ = h.dlqDir, h.dlqDir
	cfg.Pipeline.DrainTimeout = time.Second
	// Batches the closed client could not deliver fail fast.
	cfg.Pipeline.Runtime.MaxRetries, cfg.Pipeline.Runtime.InitialInterval, cfg.Pipeline.Runtime.MaxInterval = 1, time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once the intake has refused something, as Ctrl-C does.
		_ = h.intake.Wait(context.Background(), func(st fakeintake.Stats) bool { return st.FailuresInjected > 0 })
		cancel()
	}()
	_, err := Replay(ctx, cfg, ReplayOptions{}, h.p.Logger())
	require.Error(t, err, "interrupted")
	assert.Zero(t, h.intake.Stats().LogsAccepted)

	h.intake.ClearFailure()
	res, _, err := replayDLQ(t, h)
	require.NoError(t, err)
	assert.EqualValues(t, 50, res.Delivered)
	seen := intakeIDs(h)
	require.Len(t, seen, len(ids))
	for _, id := range ids {
		assert.Equal(t, 1, seen[id], id)
	}
}

// TestReplayDeadLettersRemovesTheEmptyArchiveAKilledReplayLeft: a replay
// killed (-9) before its end leaves its new archive for letters that fail
// again, empty; the next replay removes it, but not the one of a replay
// of this host still running.
func TestReplayDeadLettersRemovesTheEmptyArchiveAKilledReplayLeft(t *testing.T) {
	h := start(t)
	refusedLetters(t, h, 20)
	host, err := os.Hostname()
	require.NoError(t, err)
	killed := filepath.Join(h.dlqDir, "replay-20261203T204549.000Z-"+host+"-999999999")
	elsewhere := filepath.Join(h.dlqDir, "replay-20261203T204549.000Z-other-host-1")
	running := filepath.Join(h.dlqDir, replayOutName(time.Now().Add(-time.Minute))) // this process's
	for _, d := range []string{killed, elsewhere, running} {
		require.NoError(t, os.Mkdir(d, 0o750))
	}
	res, _, err := replayDLQ(t, h)
	require.NoError(t, err)
	assert.EqualValues(t, 20, res.Delivered)
	assert.NoDirExists(t, killed)
	assert.NoDirExists(t, elsewhere)
	assert.DirExists(t, running, "a replay that still runs keeps its own")
}

// requestCount sums the apigateway.logs.count points the intake accepted,
// every host together, as Datadog does.
func requestCount(h *harness) float64 {
	var n float64
	for _, p := range h.intake.Series() {
		if p.Metric == "apigateway.logs.count" {
			n += p.Value
		}
	}
	return n
}

// TestReplayDeadLetteredLogsCountsTheirRequestsOnce: derive counts an
// access log when it takes it in, beside deliver-logs; a log the intake
// then refuses is dead-lettered, and replaying that letter delivers the log
// without counting its request a second time (it would be under the
// replay's host, summed with the first count by Datadog).
func TestReplayDeadLetteredLogsCountsTheirRequestsOnce(t *testing.T) {
	h := start(t)
	ids := refusedLetters(t, h, 30)
	h.shutdown(t, "the live run flushes its windows")
	require.EqualValues(t, len(ids), requestCount(h), "the live run counted every request")

	res, _, err := replayDLQ(t, h)
	require.NoError(t, err)
	assert.EqualValues(t, len(ids), res.Delivered, "the replay delivered the logs")
	require.Len(t, intakeIDs(h), len(ids))
	assert.EqualValues(t, len(ids), requestCount(h), "no request counted twice")
}
