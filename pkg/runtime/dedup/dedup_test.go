package dedup

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWindowRemembersRecentIDs(t *testing.T) {
	t.Parallel()
	w := New(10)
	assert.False(t, w.Seen("a"))
	w.Add("a", "b", "")
	assert.True(t, w.Seen("a"))
	assert.True(t, w.Seen("b"))
	assert.False(t, w.Seen(""), "records without an id are never duplicates")
	for i := 0; i < 5; i++ {
		w.Add(fmt.Sprint(i))
	}
	assert.True(t, w.Seen("a"), "still within the window")
	for i := 5; i < 20; i++ {
		w.Add(fmt.Sprint(i))
	}
	assert.False(t, w.Seen("a"), "forgotten after the window: memory stays bounded")
	assert.True(t, w.Seen("19"))
	assert.LessOrEqual(t, w.cur.n+w.prev.n, 10)
}

// Ids never added are never seen, however full the tables get across
// generations: a false "seen" would drop a log.
func TestWindowHasNoFalseSightings(t *testing.T) {
	t.Parallel()
	w := New(1000)
	for round := 0; round < 10; round++ {
		for i := 0; i < 700; i++ {
			w.Add(fmt.Sprintf("added-%d-%d", round, i))
		}
		for i := 0; i < 700; i++ {
			require.False(t, w.Seen(fmt.Sprintf("new-%d-%d", round, i)))
		}
		assert.True(t, w.Seen(fmt.Sprintf("added-%d-699", round)))
	}
}

func TestDisabledWindow(t *testing.T) {
	t.Parallel()
	var w *Window = New(0)
	w.Add("a")
	assert.False(t, w.Seen("a"))
}

// SeenEach answers for a batch what Seen answers for each of its ids, in a
// window small enough that probes collide, generations turn over and ids
// repeat within a batch.
func TestSeenEachAgreesWithSeen(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	w := New(64)
	for round := 0; round < 500; round++ {
		ids := make([]string, rng.IntN(40))
		for i := range ids {
			if rng.IntN(10) > 0 {
				ids[i] = fmt.Sprint(rng.IntN(200))
			}
		}
		seen := make([]bool, len(ids))
		w.SeenEach(seen, func(i int) string { return ids[i] })
		for i, id := range ids {
			require.Equal(t, w.Seen(id), seen[i], "round %d, id %q", round, id)
		}
		w.Add(ids[:len(ids)/2]...)
	}
	var off *Window
	seen := []bool{true, true}
	off.SeenEach(seen, func(int) string { return "a" })
	assert.Equal(t, []bool{false, false}, seen, "a disabled window has seen nothing")
}

// BenchmarkWindowSeenEach is deliver-logs' use per batch of 1,024 records:
// one lookup for the batch before delivery and the inserts after, in a
// full window of a million ids.
func BenchmarkWindowSeenEach(b *testing.B) {
	w := New(1_000_000)
	ids := make([]string, 1<<21)
	for i := range ids {
		ids[i] = fmt.Sprintf("3195310660696698337880902507980421114328961542429%07d", i)
	}
	w.Add(ids...)
	const batch = 1024 // divides len(ids): a batch never wraps
	seen := make([]bool, batch)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		at := (i * batch) & (len(ids) - 1)
		w.SeenEach(seen, func(j int) string { return ids[(at+j)&(len(ids)-1)] })
		w.Add(ids[at : at+batch]...)
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

// BenchmarkWindow is deliver-logs' use per record: a lookup before
// delivery and an insert after, in a full window of a million ids.
func BenchmarkWindow(b *testing.B) {
	w := New(1_000_000)
	ids := make([]string, 1<<21) // twice the window: most lookups miss, as most records are new
	for i := range ids {
		ids[i] = fmt.Sprintf("3195310660696698337880902507980421114328961542429%07d", i)
	}
	for _, id := range ids {
		w.Add(id)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := ids[i&(len(ids)-1)]
		if w.Seen(id+"x"[:0]) && i < 0 {
			b.Fatal()
		}
		w.Add(id)
		i++
	}
}
