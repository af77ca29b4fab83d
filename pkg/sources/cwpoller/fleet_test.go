package cwpoller

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

type replica struct {
	p     *Poller
	link  *cas.Link // cut: the replica's death
	lease *lease.Lease
}

func newReplica(t *testing.T, url string, shared cas.Store, name string, cfg Config) *replica {
	r := &replica{link: cas.NewLink(shared)}
	cfg.State = NewStoreState(r.link)
	cfg.Leases = func(tg Target) *lease.Lease {
		r.lease = lease.New(r.link, tg.Account+"-"+tg.Region+".lease", name, lease.Config{TTL: time.Second})
		return r.lease
	}
	r.p = newTestPoller(t, url, cfg)
	return r
}

// windows are the GetMetricData windows asked, in order.
func windows(f *fakeCloudWatch) [][2]int64 {
	var w [][2]int64
	for _, r := range f.requests() {
		w = append(w, [2]int64{r.Start, r.End})
	}
	sort.Slice(w, func(i, j int) bool { return w[i][0] < w[j][0] })
	return w
}

// contiguous checks that windows follow each other without a gap or an
// overlap: each period fetched once.
func contiguous(t *testing.T, w [][2]int64) {
	t.Helper()
	for i := 1; i < len(w); i++ {
		require.Equal(t, w[i-1][1], w[i][0], "window %d starts where %d ended: no period fetched twice or skipped (%v)", i, i-1, w)
	}
}

// Of two replicas, only the lease holder polls; when it dies, the other
// takes the lease over within the TTL and resumes exactly where the dead
// one's state stopped: each period fetched once, none skipped.
func TestTwoReplicasOnePollsAndTheOtherTakesOver(t *testing.T) {
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod}
	url := f.start(t)
	shared := cas.NewMemory()
	a := newReplica(t, url, shared, "a", Config{Backfill: 3 * time.Minute})
	b := newReplica(t, url, shared, "b", Config{Backfill: 3 * time.Minute})
	ctx := context.Background()
	require.NoError(t, a.lease.Acquire(ctx))
	held, err := b.lease.Try(ctx)
	require.NoError(t, err)
	require.False(t, held)

	var c collector
	for _, m := range []time.Duration{3, 4, 5} {
		now := minute0.Add(m * time.Minute)
		require.NoError(t, a.p.PollOnce(ctx, now, c.emit))
		require.NoError(t, b.p.PollOnce(ctx, now, c.emit))
	}
	assert.Equal(t, int64(3), b.p.Stats().Standby, "the replica without the lease polled nothing")
	ra, rb := telemetry.NewRegistry(), telemetry.NewRegistry()
	a.p.RegisterMetrics(ra)
	b.p.RegisterMetrics(rb)
	assert.Equal(t, int64(1), ra.Value("cwpoller.targets_polled"), "the holder polls its target")
	assert.Equal(t, int64(0), rb.Value("cwpoller.targets_polled"), "the standby polls none")
	assert.Equal(t, int64(3), rb.Value("cwpoller.standby"))
	assert.Len(t, windows(f), 3)

	a.link.Cut(true) // kill -9
	died := time.Now()
	require.NoError(t, b.lease.Acquire(ctx))
	assert.Less(t, time.Since(died), 1500*time.Millisecond, "taken over within the lease's TTL·1.5")
	_, aHolds := a.lease.Held()
	assert.False(t, aHolds, "the dead replica's hold ended before")
	require.NoError(t, a.p.PollOnce(ctx, minute0.Add(8*time.Minute), c.emit), "a replica without its lease polls nothing")
	require.NoError(t, b.p.PollOnce(ctx, minute0.Add(8*time.Minute), c.emit))
	assert.Equal(t, int64(1), rb.Value("cwpoller.targets_polled"), "the target moved to the survivor")
	w := windows(f)
	require.Len(t, w, 4)
	contiguous(t, w)
	assert.Equal(t, minute0.Add(6*time.Minute).Unix(), w[3][1])
	seen := map[string]bool{}
	for _, p := range c.take() {
		require.False(t, seen[p], "point emitted twice: %s", p)
		seen[p] = true
	}
	assert.Len(t, seen, 3+1+1+3)
}

// Two replicas running side by side (Run, with the leases kept in the
// background): the periods are fetched once between them, and when the
// polling one dies the other carries on within the lease time.
func TestTwoReplicasRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds")
	}
	f := &fakeCloudWatch{metrics: []fakeMetric{petstore}, value: everyPeriod}
	url := f.start(t)
	shared := cas.NewMemory()
	start := time.Now()
	// One real second is one CloudWatch minute: a period every second.
	clock := func() time.Time { return minute0.Add(time.Since(start) * 60) }
	cfg := Config{Backfill: 3 * time.Minute, Interval: time.Second, Lag: time.Minute, Now: clock}
	a := newReplica(t, url, shared, "a", cfg)
	b := newReplica(t, url, shared, "b", cfg)
	var c collector
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Go(func() { _ = r.p.Run(ctx, nil, c.emit) })
	}
	require.Eventually(t, func() bool { return len(f.requests()) >= 3 }, 10*time.Second, 10*time.Millisecond)
	holder, other := a, b
	if _, ok := b.lease.Held(); ok {
		holder, other = b, a
	}
	holder.link.Cut(true) // kill -9 of the polling replica
	died := time.Now()
	require.Eventually(t, func() bool { _, ok := other.lease.Held(); return ok }, 5*time.Second, 10*time.Millisecond)
	assert.Less(t, time.Since(died), 1600*time.Millisecond, "the other replica took over within the lease time")
	n := len(f.requests())
	require.Eventually(t, func() bool { return len(f.requests()) >= n+2 }, 10*time.Second, 10*time.Millisecond, "and polls")
	cancel()
	wg.Wait()
	// The dead replica's request in flight may have reached CloudWatch
	// (kill -9 cannot take it back): the survivor asks that period again,
	// so the windows asked may overlap there but never leave a gap, and
	// what was emitted has every period once.
	w := windows(f)
	for i := 1; i < len(w); i++ {
		require.LessOrEqual(t, w[i][0], w[i-1][1], "window %d leaves no gap after %d (%v)", i, i-1, w)
	}
	stamps := c.stamps()
	require.NotEmpty(t, stamps)
	for i := 1; i < len(stamps); i++ {
		require.Equal(t, stamps[i-1]+60, stamps[i], "every period emitted once, none skipped (%v)", stamps)
	}
}

// The shared state: one document per target, read before a poll and
// written in the version read, so a deposed replica cannot overwrite what
// the new holder recorded.
func TestStoreStateIsFenced(t *testing.T) {
	s := cas.NewMemory()
	ctx := context.Background()
	tg := Target{acct, "us-east-1"}
	k := Key{Account: acct, Region: "us-east-1", Namespace: "AWS/ApiGateway", Metric: "Count"}
	old, cur := NewStoreState(s), NewStoreState(s)
	require.NoError(t, old.Refresh(ctx, tg))
	require.NoError(t, old.Advance(ctx, []Key{k}, minute0))
	require.NoError(t, cur.Refresh(ctx, tg))
	last, ok := cur.Last(k)
	require.True(t, ok, "the state moves between workers")
	assert.Equal(t, minute0.Unix(), last.Unix())
	require.NoError(t, cur.Advance(ctx, []Key{k}, minute0.Add(time.Minute)))
	err := old.Advance(ctx, []Key{k}, minute0.Add(2*time.Minute))
	require.ErrorIs(t, err, cas.ErrConflict, "the deposed replica's write loses")
	fresh := NewStoreState(s)
	require.NoError(t, fresh.Refresh(ctx, tg))
	last, _ = fresh.Last(k)
	assert.Equal(t, minute0.Add(time.Minute).Unix(), last.Unix())
	assert.Equal(t, []string{StateKey(tg)}, s.Keys())
}
