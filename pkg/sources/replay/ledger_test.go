package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// letterLines writes dead letters: a line letter per id, and for ids
// starting "raw" a raw Firehose record holding a CloudWatch envelope of
// three events (<id>.0, <id>.1, <id>.2).
func letterLines(t *testing.T, ts int64, ids ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, id := range ids {
		e := dlq.Entry{V: 1, Time: now, Stage: "deliver-logs", Reason: "rejected", Kind: "access", EventID: id, Timestamp: ts,
			Origin: dlq.Origin{Source: "firehose", Account: "111122223333", Region: "eu-west-1", LogGroup: "/aws/api-gateway/a1/prod"},
			Data:   []byte(`{"requestId":"` + id + `"}`)}
		if strings.HasPrefix(id, "raw") {
			var events []string
			for i := range 3 {
				events = append(events, fmt.Sprintf(`{"id":"%s.%d","timestamp":%d,"message":"m"}`, id, i, ts))
			}
			env := `{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/aws/api-gateway/a1/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[` + strings.Join(events, ",") + `]}`
			e = dlq.Entry{V: 1, Time: now, Stage: "decode", Reason: "gunzip", Kind: "raw", Timestamp: ts,
				Origin: dlq.Origin{Source: "firehose", Region: "eu-west-1"}, Data: []byte(b64(corpus.Gzip([]byte(env))))}
		}
		b, err := json.Marshal(e)
		require.NoError(t, err)
		buf.Write(append(b, '\n'))
	}
	return buf.Bytes()
}

func ledgerReplay(t *testing.T, dir string, o *out, mod ...func(*Config)) Summary {
	t.Helper()
	cfg := Config{Dir: dir, Layout: s3obj.LayoutDLQ, SelectBy: SelectNone, Ledger: DirLedger(dir), Now: func() time.Time { return now }}
	for _, m := range mod {
		m(&cfg)
	}
	sum, _ := runReplay(t, cfg, nil, o)
	return sum
}

// TestLedgerReplayTwiceSendsNothingTwice: the same replay of a
// dead-letter archive, run again, sends nothing; the letters are marked in
// the ledger beside the archive, whose files are untouched.
func TestLedgerReplayTwiceSendsNothingTwice(t *testing.T) {
	dir := t.TempDir()
	ts := now.Add(-time.Hour).UnixMilli()
	data := letterLines(t, ts, "a", "raw1", "b")
	name := filepath.Join(dir, "dlq-1.jsonl")
	require.NoError(t, os.WriteFile(name, data, 0o600))

	first := &out{}
	sum := ledgerReplay(t, dir, first)
	assert.ElementsMatch(t, []string{"a", "raw1.0", "raw1.1", "raw1.2", "b"}, first.ids())
	assert.EqualValues(t, 5, sum.Sent)
	assert.True(t, sum.Ledger)
	after, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, data, after, "the archive is never rewritten")
	assert.FileExists(t, name+LedgerSuffix)

	second := &out{}
	sum = ledgerReplay(t, dir, second)
	assert.Empty(t, second.ids(), "nothing sent twice")
	assert.EqualValues(t, 1, sum.ObjectsAlreadyDone)

	// More letters appended to the file (an archive still written to):
	// only they are sent.
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(letterLines(t, ts, "c"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	third := &out{}
	sum = ledgerReplay(t, dir, third)
	assert.Equal(t, []string{"c"}, third.ids())
	assert.EqualValues(t, 3, sum.AlreadyDelivered, "three letters settled earlier")
	assert.Contains(t, written(sum), "already settled  3 letters")
}

// TestLedgerSettlesLettersNotEvents: letters are numbered by entry, not by
// the events they decode into, so a replay that failed part-way resends
// exactly the letters not settled, even with other batch sizes or decode
// limits; letters filtered out (too old) are not settled.
func TestLedgerSettlesLettersNotEvents(t *testing.T) {
	dir := t.TempDir()
	ts := now.Add(-time.Hour).UnixMilli()
	old := now.Add(-20 * time.Hour).UnixMilli()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dlq-1.jsonl"), append(letterLines(t, ts, "a", "raw1", "b", "raw2", "c"), letterLines(t, old, "old")...), 0o600))

	// First run: batches of 2 events; the batch holding "b" fails.
	failing := &out{failIf: func(b *record.Batch) bool {
		return slices.ContainsFunc(b.Records, func(r record.Record) bool { return r.EventID == "b" })
	}}
	sum := ledgerReplay(t, dir, failing, func(c *Config) { c.Object.EventsPerBatch = 2 })
	assert.EqualValues(t, 1, sum.TooOld)
	delivered := failing.ids()

	// Second run, other batch sizes: what was not delivered, once.
	again := &out{}
	ledgerReplay(t, dir, again, func(c *Config) { c.Object.EventsPerBatch = 7 })
	all := []string{"a", "raw1.0", "raw1.1", "raw1.2", "b", "raw2.0", "raw2.1", "raw2.2", "c"}
	got := append(slices.Clone(delivered), again.ids()...)
	// A letter whose records straddled the failed batch is sent again
	// whole: its delivered events are the only duplicates possible.
	for _, id := range all {
		assert.Contains(t, got, id)
	}
	for _, id := range again.ids() {
		if slices.Contains(delivered, id) {
			assert.True(t, strings.HasPrefix(id, "raw"), "only a letter split across the failed batch is resent: %s", id)
		}
	}
	assert.Contains(t, again.ids(), "b")

	// The too-old letter stays pending: with --old-logs retimestamp it goes.
	third := &out{}
	ledgerReplay(t, dir, third, func(c *Config) { c.OldLogs = OldLogsRetimestamp })
	assert.Equal(t, []string{"old"}, third.ids())
	fourth := &out{}
	sum = ledgerReplay(t, dir, fourth)
	assert.Empty(t, fourth.ids())
	assert.EqualValues(t, 1, sum.ObjectsAlreadyDone)
}

// TestLedgerSkipsExcludedAndMarkers: a replay reads the archive's
// subdirectories (where earlier replays put letters that failed again),
// never the one it writes to, nor the ledger's markers.
func TestLedgerSkipsExcludedAndMarkers(t *testing.T) {
	dir := t.TempDir()
	ts := now.Add(-time.Hour).UnixMilli()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "replay-1"), 0o750))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "replay-2"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dlq-1.jsonl"), letterLines(t, ts, "a"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "replay-1", "dlq-1.jsonl"), letterLines(t, ts, "b"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "replay-2", "dlq-1.jsonl"), letterLines(t, ts, "c"), 0o600))
	o := &out{}
	ledgerReplay(t, dir, o, func(c *Config) { c.Exclude = []string{"replay-2"} })
	assert.ElementsMatch(t, []string{"a", "b"}, o.ids())
	assert.FileExists(t, filepath.Join(dir, "replay-1", "dlq-1.jsonl"+LedgerSuffix))
	assert.NoFileExists(t, filepath.Join(dir, "replay-2", "dlq-1.jsonl"+LedgerSuffix))
}

// FuzzLedgerDeliversEachLetterOnce: whatever batches fail, in whatever
// runs, replaying until nothing fails delivers every letter, and a letter
// already delivered is sent again only when its events straddled a failed
// batch (a letter is settled whole).
func FuzzLedgerDeliversEachLetterOnce(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint8(5))
	f.Add(uint64(7), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, perBatch, letters uint8) {
		if perBatch == 0 || letters == 0 || letters > 40 {
			return
		}
		dir := t.TempDir()
		ts := now.Add(-time.Hour).UnixMilli()
		var ids []string
		for i := range int(letters) {
			if i%4 == 1 {
				ids = append(ids, fmt.Sprintf("raw%d", i))
			} else {
				ids = append(ids, fmt.Sprint(i))
			}
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "dlq-1.jsonl"), letterLines(t, ts, ids...), 0o600))
		rng := rand.New(rand.NewPCG(seed, seed))
		delivered := map[string]int{}
		for run := 0; run < 20; run++ {
			failures := run < 10 // later runs succeed
			o := &out{failIf: func(*record.Batch) bool { return failures && rng.IntN(3) == 0 }}
			ledgerReplay(t, dir, o, func(c *Config) { c.Object.EventsPerBatch = int(perBatch) })
			for _, id := range o.ids() {
				delivered[id]++
			}
			if !failures && len(o.ids()) == 0 {
				break
			}
		}
		for _, id := range ids {
			if strings.HasPrefix(id, "raw") {
				for i := range 3 {
					require.Positive(t, delivered[fmt.Sprintf("%s.%d", id, i)], "%s.%d never delivered", id, i)
				}
				continue
			}
			require.Equal(t, 1, delivered[id], "letter %s", id)
		}
	})
}

// TestPartialLinesAreSkippedAndCounted: a letter cut short by a failed
// write (a full disk) is not sent; the summary says how many there were.
func TestPartialLinesAreSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	ts := now.Add(-time.Hour).UnixMilli()
	whole := letterLines(t, ts, "a", "b")
	cut := letterLines(t, ts, "c")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dlq-1.jsonl"), append(whole, cut[:len(cut)/2]...), 0o600))
	o := &out{}
	sum := ledgerReplay(t, dir, o)
	assert.Equal(t, []string{"a", "b"}, o.ids())
	assert.EqualValues(t, 1, sum.PartialLines)
	assert.Contains(t, written(sum), "partial lines    1")
}

// TestLedgerRecordsSettledLettersBeforeTheAcknowledgementReturns: once
// the intake's acknowledgement of a batch has returned, its letters are in
// the ledger on disk (all but the batch's last, which the next batch or
// the end of the file settles): a kill -9 at that moment re-sends none of
// them. The ledger saved once a second re-sent up to a second of letters.
func TestLedgerRecordsSettledLettersBeforeTheAcknowledgementReturns(t *testing.T) {
	dir := t.TempDir()
	ts := now.Add(-time.Hour).UnixMilli()
	var ids []string
	for i := range 100 {
		ids = append(ids, fmt.Sprintf("l%03d", i))
	}
	name := filepath.Join(dir, "dlq-1.jsonl")
	require.NoError(t, os.WriteFile(name, letterLines(t, ts, ids...), 0o600))
	onDisk := func() int64 {
		m, err := DirLedger(dir).Load(t.Context(), "dlq-1.jsonl")
		require.NoError(t, err)
		if m == nil {
			return 0
		}
		var n int64
		for _, r := range m.Settled {
			n += r[1] - r[0]
		}
		return n
	}
	// What a kill -9 would leave as batch n is accepted: batch n-1's
	// acknowledgement completed (a batch's completes once it was handed
	// over, after the intake's answer).
	var acked []int64
	o := &out{}
	o.after = func(int) { acked = append(acked, onDisk()) }
	sum := ledgerReplay(t, dir, o, func(c *Config) { c.Object.EventsPerBatch = 10 })
	require.EqualValues(t, 100, sum.Sent)
	require.Len(t, acked, 10)
	for i := 1; i < len(acked); i++ {
		assert.GreaterOrEqual(t, acked[i], int64(10*i-1), "batch %d acknowledged", i)
	}
	assert.EqualValues(t, 100, onDisk())
}

// gatedLedger holds every Save until gate closes, and keeps what was saved.
type gatedLedger struct {
	started chan string
	gate    chan struct{}
	mu      sync.Mutex
	saves   []Marker
}

func (g *gatedLedger) Load(context.Context, string) (*Marker, error) { return nil, nil }

func (g *gatedLedger) Save(_ context.Context, key string, m *Marker) error {
	g.started <- key
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.saves = append(g.saves, *m)
	return nil
}

// TestLedgerSavesAreGroupCommits: settlements go on while a marker write is
// under way, and the saves that wait behind it are carried by one more
// write (each letter's acknowledgement made its own write, in turn, under
// the lock that settlements wait for).
func TestLedgerSavesAreGroupCommits(t *testing.T) {
	g := &gatedLedger{started: make(chan string, 100), gate: make(chan struct{})}
	p := newLedgerProgress(g)
	p.m["k"] = &Marker{}
	p.settle("k", "e", 0)
	i := int64(0)
	savesBehindAWrite(t, func() { i++; p.settle("k", "e", i) }, p.save, func() { <-g.started }, func() { close(g.gate) })
	require.Len(t, g.saves, 2, "one write for the first save, one for the nine behind it")
	assert.Equal(t, [][2]int64{{0, 1}}, g.saves[0].Settled)
	assert.Equal(t, [][2]int64{{0, 10}}, g.saves[1].Settled)
}

// TestLedgerSaveWaitingForAWriteEndsWithItsContext: a save that waits for
// a marker write under way (S3 not answering) gives up when its context
// ends — a shutdown's deadline — and says so, instead of waiting for that
// write however long it takes.
func TestLedgerSaveWaitingForAWriteEndsWithItsContext(t *testing.T) {
	g := &gatedLedger{started: make(chan string, 100), gate: make(chan struct{})}
	defer close(g.gate)
	p := newLedgerProgress(g)
	p.m["k"] = &Marker{}
	p.settle("k", "e", 0)
	go func() { _ = p.save(context.Background()) }()
	<-g.started // the first write is under way, and hangs
	p.settle("k", "e", 1)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.save(ctx) }()
	cancel() // the deadline
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "still under way")
	case <-time.After(10 * time.Second):
		t.Fatal("the save waits for the write under way past its context")
	}
}
