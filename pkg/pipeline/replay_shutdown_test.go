package pipeline

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/testkit/gate"
)

// heldProxy is a real HTTP server in front of target: once held, requests
// whose path matches wait until the gate opens (or their client gives
// up); the first pass of them go through at once.
type heldProxy struct {
	URL  string
	gate gate.Gate
	held chan struct{} // receives when a request starts waiting
}

func newHeldProxy(t *testing.T, target string, match func(*http.Request) bool, pass int64) *heldProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a request whose client gave up
	h := &heldProxy{held: make(chan struct{}, 1)}
	h.gate.Hold()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) && n.Add(1) > pass {
			select {
			case h.held <- struct{}{}:
			default:
			}
			if h.gate.Wait(r.Context()) != nil {
				panic(http.ErrAbortHandler) // the client gave up: no answer
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.gate.Release) // runs first: Close waits for the requests
	h.URL = srv.URL
	return h
}

// logWatch calls do, as the message is logged, the first time the log
// has a message containing substr.
type logWatch struct {
	slog.Handler
	w *watched
}

type watched struct {
	substr string
	once   sync.Once
	do     func()
}

func watchLog(log *slog.Logger, substr string, do func()) *slog.Logger {
	return slog.New(&logWatch{Handler: log.Handler(), w: &watched{substr: substr, do: do}})
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }

func (l *logWatch) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.w.substr) {
		l.w.once.Do(l.w.do)
	}
	if !l.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return l.Handler.Handle(ctx, r)
}

func (l *logWatch) WithAttrs(as []slog.Attr) slog.Handler {
	return &logWatch{Handler: l.Handler.WithAttrs(as), w: l.w}
}

func (l *logWatch) WithGroup(name string) slog.Handler {
	return &logWatch{Handler: l.Handler.WithGroup(name), w: l.w}
}

// TestReplayInterruptedSavesWhatTheShutdownDelivered: a replay interrupted
// while the intake holds its requests gives up waiting for them (its share
// of pipeline.drain_timeout); the intake then answers, and the pipeline's
// shutdown delivers what was held. The checkpoint is saved after that
// shutdown: it holds what the shutdown delivered, so the next run with it
// sends the rest, and nothing twice. Saved before (as it was), the next
// run sent what the shutdown had delivered again.
func TestReplayInterruptedSavesWhatTheShutdownDelivered(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "arch")
	_, events := putArchive(t, a, "arch", "fh/", 7, 20_000, 1_000)
	e := newReplayEnv(t, 100_000)
	intake := newHeldProxy(t, e.cfg.Datadog.APIURL, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/logs") }, 2)
	e.cfg.Datadog.LogsURL, e.cfg.Datadog.APIURL = intake.URL+"/api/v2/logs", intake.URL
	e.cfg.Pipeline.DrainTimeout = 5 * time.Second // 3 s for the replay's drain, 1 s for the pipeline's shutdown, 1 s for the checkpoint
	// The replay gives up waiting: the intake answers from now on.
	before := -1
	e.log = watchLog(e.log, "events still unacknowledged at the end of the replay's drain", func() {
		before = len(e.intake.Logs())
		intake.gate.Release()
	})
	ckpt := filepath.Join(t.TempDir(), "replay.ckpt")
	cfg := func(r *config.Replay) {
		r.Bucket, r.Prefix, r.From, r.Checkpoint = "arch", "fh/", "-2h", ckpt
		// Little in flight: what the intake held is delivered well
		// within the shutdown's share (a second), whole batches.
		r.EventsPerBatch, r.MaxInFlightEvents = 250, 1_000
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-intake.held: // two requests were delivered, the third waits
		case <-ctx.Done():
		}
		cancel() // Ctrl-C
	}()
	first, err := e.run(t, ctx, cfg, ReplayOptions{S3: a.s3})
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, first.Interrupted)
	require.GreaterOrEqual(t, before, 0, "the replay did not give up waiting for what it sent: the test's premise failed")
	n1 := len(e.intake.Logs())
	require.Greater(t, n1, before, "the pipeline's shutdown delivered what the intake held")
	require.Less(t, n1, events, "interrupted before the end")
	assert.EqualValues(t, n1, first.Sent, "the report counts what the shutdown delivered")
	assert.Empty(t, first.NotSaved)

	second, err := e.run(t, context.Background(), cfg, ReplayOptions{S3: a.s3})
	require.NoError(t, err)
	assert.True(t, second.Resumed)
	assert.EqualValues(t, events-n1, second.Sent, "the checkpoint held what the shutdown delivered")
	seen := map[string]int{}
	for _, l := range e.intake.Logs() {
		seen[l.Message]++
	}
	assert.Len(t, seen, events, "every event delivered")
	for msg, n := range seen {
		require.Equal(t, 1, n, "delivered %d times: %s", n, msg)
	}
}

// TestReplayInterruptedWithItsCheckpointStoreUnreachableSaysSo: a replay
// with its checkpoint in S3 is interrupted while S3 no longer answers for
// the checkpoint's bucket. It ends within pipeline.drain_timeout all the
// same, and its summary is printed and says the checkpoint could not be
// saved (the next run resumes from its last save and sends again what was
// delivered since), instead of nothing at all (the replay had not stopped
// by the deadline, and its summary was empty) or a claim that it resumes.
func TestReplayInterruptedWithItsCheckpointStoreUnreachableSaysSo(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "arch")
	a.bucket(t, "state")
	putArchive(t, a, "arch", "fh/", 9, 20_000, 1_000)
	var cut atomic.Bool
	s3p := newHeldProxy(t, a.moto.Endpoint, func(r *http.Request) bool {
		return cut.Load() && strings.HasPrefix(r.URL.Path, "/state/")
	}, 0)
	awsCfg := a.moto.AWSConfig()
	awsCfg.BaseEndpoint = &s3p.URL
	client := awsconf.S3(awsCfg)

	e := newReplayEnv(t, 100_000)
	const budget = 3 * time.Second
	e.cfg.Pipeline.DrainTimeout = budget
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cutAt atomic.Int64
	go func() {
		_ = e.intake.WaitLogs(ctx, 1_000)
		cut.Store(true) // the checkpoint's bucket stops answering
		cutAt.Store(time.Now().UnixNano())
		cancel()
	}()
	res, err := e.run(t, ctx, func(r *config.Replay) {
		r.Bucket, r.Prefix, r.From, r.Checkpoint = "arch", "fh/", "-2h", "s3://state/replays/r1.json"
		r.Rate = 5_000 // four seconds for the archive: the interruption comes first
	}, ReplayOptions{S3: client})
	took := time.Since(time.Unix(0, cutAt.Load()))
	require.Error(t, err)
	assert.Less(t, took, budget+2*time.Second, "the shutdown kept to pipeline.drain_timeout (with 2 s for a loaded machine: the defect waited a minute)")
	require.True(t, res.Interrupted)
	require.True(t, res.DidSomething(), "the summary is printed")
	assert.Positive(t, res.Sent)
	assert.NotEmpty(t, res.NotSaved)
	var out bytes.Buffer
	res.Write(&out)
	assert.Contains(t, out.String(), "(interrupted, and its checkpoint could not be saved: run it again with the same checkpoint to resume from its last save, which sends again what was delivered since)")
	assert.Contains(t, out.String(), "  checkpoint       not saved: ")
	assert.NotContains(t, out.String(), "(interrupted: run it again with the same checkpoint to resume)")
}
