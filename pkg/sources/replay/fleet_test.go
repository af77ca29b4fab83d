package replay

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
	"github.com/gwpipe/gwpipe/pkg/testkit/syncbuf"
)

// A checkpoint kept in a store (S3) resumes an interrupted replay exactly
// as a file does: nothing delivered is sent again.
func TestStoreCheckpointInterruptedAndResumed(t *testing.T) {
	m := archive()
	store := cas.NewS3(m, "b", "checkpoints/")
	cfg := Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), CheckpointStore: StoreCheckpoint(store, "r1.json"),
		Now: func() time.Time { return now }, Concurrency: 2, Object: s3obj.Config{EventsPerBatch: 50}}
	ctx, cancel := context.WithCancel(context.Background())
	first := &out{after: func(n int) {
		if n == 17 {
			cancel()
		}
	}}
	e, err := New(cfg, m, first, quiet())
	require.NoError(t, err)
	_, err = e.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, m.objects, "checkpoints/r1.json", "the checkpoint is an object")

	// A new process: a new store handle, as a restarted pod has.
	cfg.CheckpointStore = StoreCheckpoint(cas.NewS3(m, "b", "checkpoints/"), "r1.json")
	second := &out{}
	sum, err := runReplay(t, cfg, m, second)
	require.NoError(t, err)
	assert.True(t, sum.Resumed)
	seen := map[string]int{}
	for _, id := range append(first.ids(), second.ids()...) {
		seen[id]++
	}
	assert.Len(t, seen, 3600, "every event delivered")
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s delivered %d times", id, n)
	}
}

// A checkpoint is replaced only in the version its replay read: a replay
// whose lease was taken over cannot overwrite the progress of the one
// that took it.
func TestStoreCheckpointWritesAreFenced(t *testing.T) {
	s := cas.NewMemory()
	ctx := context.Background()
	a, b := StoreCheckpoint(s, "c.json"), StoreCheckpoint(s, "c.json")
	ca, err := a.Load(ctx)
	require.NoError(t, err)
	ca.Source = "s3://b/p"
	require.NoError(t, a.Save(ctx, ca))
	cb, err := b.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "s3://b/p", cb.Source)
	cb.Watermark = "p/9"
	require.NoError(t, b.Save(ctx, cb), "the replay that took over saves")
	ca.Watermark = "p/1"
	err = a.Save(ctx, ca)
	require.ErrorIs(t, err, cas.ErrConflict, "the deposed one cannot")
	assert.Contains(t, err.Error(), "another replay wrote it")
	got, err := StoreCheckpoint(s, "c.json").Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "p/9", got.Watermark)
}

// Two replays with the same lease do not both run: the second is refused
// with a message naming the holder, while the first goes on.
func TestReplayLeaseRefusesASecondReplay(t *testing.T) {
	m := archive()
	locks := cas.NewMemory()
	lc := lease.Config{TTL: 2 * time.Second}
	started, release := make(chan struct{}), make(chan struct{})
	first := &out{after: func(n int) {
		if n == 1 {
			close(started)
			<-release // the first replay is busy
		}
	}}
	cfg := Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Now: func() time.Time { return now },
		Object: s3obj.Config{EventsPerBatch: 500}, Concurrency: 1, MaxInFlightEvents: 500}
	cfg.Lease = lease.New(locks, "r1.json.lease", "first", lc)
	e1, err := New(cfg, m, first, quiet())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { _, err := e1.Run(context.Background()); done <- err }()
	<-started

	cfg.Lease = lease.New(locks, "r1.json.lease", "second", lc)
	second := &out{}
	e2, err := New(cfg, m, second, quiet())
	require.NoError(t, err)
	_, err = e2.Run(context.Background())
	var held *lease.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "first", held.Holder)
	assert.Contains(t, err.Error(), "another worker is running this")
	assert.Empty(t, second.events, "the second replay sent nothing")

	close(release)
	require.NoError(t, <-done)
	assert.Len(t, first.events, 3600)
	// Released at the end: the next replay starts at once.
	cfg.Lease = lease.New(locks, "r1.json.lease", "third", lc)
	e3, err := New(cfg, m, &out{}, quiet())
	require.NoError(t, err)
	_, err = e3.Run(context.Background())
	require.NoError(t, err)
}

// A replay that finds the lease held by a replay that was killed waits for
// it to expire, and says so at once, naming the holder, rather than
// starting a TTL later in silence.
func TestReplayWaitingForALeaseSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := archive()
		locks := cas.NewMemory()
		lc := lease.Config{TTL: 30 * time.Second}
		_, err := locks.Create(context.Background(), "r1.json.lease",
			[]byte(`{"holder":"killed/1/x","state":"held","renewed":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","ttl_ms":30000}`))
		require.NoError(t, err)
		logs := &syncbuf.Buffer{}
		cfg := Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Now: func() time.Time { return now },
			Object: s3obj.Config{EventsPerBatch: 500}, Lease: lease.New(locks, "r1.json.lease", "next", lc)}
		e, err := New(cfg, m, &out{}, slog.New(slog.NewTextHandler(logs, nil)))
		require.NoError(t, err)
		start := time.Now()
		done := make(chan error, 1)
		go func() { _, err := e.Run(context.Background()); done <- err }()
		synctest.Wait()
		assert.Contains(t, logs.String(), "waiting for the replay lease", "said at once")
		assert.Contains(t, logs.String(), "holder=killed/1/x")
		assert.Contains(t, logs.String(), "up_to=30s")
		require.NoError(t, <-done)
		assert.GreaterOrEqual(t, time.Since(start), lc.TTL, "the killed replay's lease expired first")
	})
}

// A replay that loses its lease (another took it over after this one could
// not renew it) stops and saves nothing more.
func TestReplayLeaseLostStopsSaving(t *testing.T) {
	m := archive()
	locks := cas.NewMemory()
	ckpts := cas.NewMemory()
	lc := lease.Config{TTL: 2 * time.Second}
	var usurp func()
	var l *lease.Lease
	o := &out{after: func(n int) {
		if n == 2 {
			usurp()
			// The replay learns it at its next renewal (TTL/3).
			assert.Eventually(t, func() bool { _, held := l.Held(); return !held }, 5*time.Second, 10*time.Millisecond)
		}
	}}
	cfg := Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Now: func() time.Time { return now },
		CheckpointStore: StoreCheckpoint(ckpts, "c.json"), Object: s3obj.Config{EventsPerBatch: 100}, Concurrency: 1, Drain: time.Second}
	l = lease.New(locks, "c.json.lease", "first", lc)
	cfg.Lease = l
	usurp = func() {
		// Another replay takes the lease over (as it would once this one
		// had been cut off for a TTL): it writes the lease record.
		_, v, err := locks.Get(context.Background(), "c.json.lease")
		assert.NoError(t, err)
		_, err = locks.Update(context.Background(), "c.json.lease", []byte(`{"holder":"other","state":"held","ttl_ms":2000}`), v)
		assert.NoError(t, err)
	}
	sum, err := runReplay(t, cfg, m, o)
	require.Error(t, err)
	assert.True(t, sum.Interrupted)
	assert.Contains(t, err.Error(), "lease")
	assert.Less(t, len(o.events), 3600, "it stopped")
	data, _, gerr := ckpts.Get(context.Background(), "c.json")
	if gerr == nil {
		assert.NotContains(t, string(data), `"complete": true`)
	}
	assert.Contains(t, err.Error(), "not saved")
}

// dlqObject is a gzip object of an S3 dead-letter archive.
func dlqObject(t *testing.T, ts int64, ids ...string) []byte {
	return corpus.Gzip(letterLines(t, ts, ids...))
}

// The ledger of a dead-letter archive in S3: <key>.replayed objects beside
// the archive's, written with conditional writes. The same replay run
// again sends nothing; objects other than the archive's (its lease, its
// markers, a replay's own new archive when excluded) are never read.
func TestStoreLedgerS3ArchiveReplayTwice(t *testing.T) {
	ts := now.Add(-time.Hour).UnixMilli()
	m := &memS3{objects: map[string][]byte{
		"dlq/dlq-20261129T110000.000Z-w1-1-000001" + dlq.S3Suffix: dlqObject(t, ts, "a", "raw1"),
		"dlq/dlq-20261129T110001.000Z-w2-1-000001" + dlq.S3Suffix: dlqObject(t, ts, "b"),
		"dlq/replay.lease": []byte(`{"holder":"x","state":"released"}`),
		"dlq/replay-20261129T115000.000Z-h-1/dlq-20261129T115000.000Z-h-1-000001" + dlq.S3Suffix: dlqObject(t, ts, "failed-again"),
		"dlq/notes.txt": []byte("not a dead letter"),
	}}
	run := func(exclude ...string) (*out, Summary) {
		o := &out{}
		e, err := New(Config{Bucket: "b", Prefix: "dlq/", Layout: s3obj.LayoutDLQ, SelectBy: SelectNone, KeyPattern: "dlq-*.jsonl*",
			Exclude: exclude, Ledger: StoreLedger(cas.NewS3(m, "b", "")), Now: func() time.Time { return now }}, m, o, quiet())
		require.NoError(t, err)
		sum, err := e.Run(context.Background())
		require.NoError(t, err)
		return o, sum
	}
	first, sum := run("dlq/replay-20261129T115000.000Z-h-1/")
	assert.ElementsMatch(t, []string{"a", "raw1.0", "raw1.1", "raw1.2", "b"}, first.ids(), "the excluded archive is not read")
	assert.EqualValues(t, 2, sum.Objects)
	var markers []string
	for k := range m.objects {
		if strings.HasSuffix(k, LedgerSuffix) {
			markers = append(markers, k)
		}
	}
	sort.Strings(markers)
	assert.Equal(t, []string{
		"dlq/dlq-20261129T110000.000Z-w1-1-000001.jsonl.gz.replayed",
		"dlq/dlq-20261129T110001.000Z-w2-1-000001.jsonl.gz.replayed",
	}, markers)

	second, sum := run()
	assert.Equal(t, []string{"failed-again"}, second.ids(), "a later replay reads what failed again, and only that")
	assert.EqualValues(t, 2, sum.ObjectsAlreadyDone)
	third, _ := run()
	assert.Empty(t, third.ids(), "nothing is sent twice")
}

// Two replays of one archive cannot both mark its letters: the second's
// marker write loses instead of overwriting the first's.
func TestStoreLedgerTwoReplaysCannotBothMark(t *testing.T) {
	s := cas.NewMemory()
	ctx := context.Background()
	a, b := StoreLedger(s), StoreLedger(s)
	ma, err := a.Load(ctx, "dlq/x.jsonl.gz")
	require.NoError(t, err)
	require.Nil(t, ma)
	mb, err := b.Load(ctx, "dlq/x.jsonl.gz")
	require.NoError(t, err)
	require.Nil(t, mb)
	require.NoError(t, a.Save(ctx, "dlq/x.jsonl.gz", &Marker{Version: markerVersion, Settled: [][2]int64{{0, 3}}}))
	err = b.Save(ctx, "dlq/x.jsonl.gz", &Marker{Version: markerVersion, Settled: [][2]int64{{0, 1}}})
	require.ErrorIs(t, err, ErrLedgerConflict)
	got, err := StoreLedger(s).Load(ctx, "dlq/x.jsonl.gz")
	require.NoError(t, err)
	assert.Equal(t, [][2]int64{{0, 3}}, got.Settled, "the first replay's marks stand")
	require.NoError(t, a.Save(ctx, "dlq/x.jsonl.gz", &Marker{Version: markerVersion, Settled: [][2]int64{{0, 4}}}), "a replay goes on marking its own")
}
