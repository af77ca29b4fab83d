// Package dedup remembers recently delivered CloudWatch event ids, so that
// a batch redelivered by a broker after a worker crashed does not reach
// Datadog twice.
package dedup

import (
	"hash/maphash"
	"slices"
	"sync"
)

// Window holds the last ids in two generations: when the current one is
// full it becomes the previous one, and the oldest generation is dropped.
// An id is remembered for between Size/2 and Size later ids.
//
// Each generation is an open-addressing table of 64-bit hashes, at most half
// full, probed linearly: deliver-logs looks up and inserts every record it
// delivers, and a table of bare hashes costs one cache line per probe where
// a map costs several: 125–190 ns per delivered record against ~235 for
// two maps (BenchmarkWindow), where the maps were ~5% of a delivery
// worker's CPU. Looked up a batch at a time (SeenEach), ~57 ns
// (BenchmarkWindowSeenEach). Memory is allocated once: 16 MiB for a
// window of a million.
// A 64-bit hash makes a false "seen" (a log dropped) a ~1e-13 event per
// record.
type Window struct {
	seed maphash.Seed
	half int // ids per generation

	mu        sync.Mutex
	cur, prev table
}

type table struct {
	slots []uint64 // 0 is empty; a power of two ≥ 2×half
	n     int
}

// New returns a window of about size ids; size 0 disables it.
func New(size int) *Window {
	if size <= 0 {
		return nil
	}
	half := max(size/2, 1)
	slots := 1
	for slots < 2*half {
		slots <<= 1
	}
	return &Window{seed: maphash.MakeSeed(), half: half,
		cur: table{slots: make([]uint64, slots)}, prev: table{slots: make([]uint64, slots)}}
}

func (w *Window) key(id string) uint64 {
	if k := maphash.String(w.seed, id); k != 0 {
		return k
	}
	return 1 // 0 marks an empty slot
}

func (t *table) has(k uint64) bool {
	mask := uint64(len(t.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
	}
}

func (t *table) add(k uint64) {
	mask := uint64(len(t.slots) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.slots[i] {
		case k:
			return
		case 0:
			t.slots[i] = k
			t.n++
			return
		}
	}
}

// Seen reports whether id was added within the window: one id at a time,
// the plain form SeenEach is held to. Empty ids are never seen: records
// without an id are not de-duplicated.
func (w *Window) Seen(id string) bool {
	if w == nil || id == "" {
		return false
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur.has(k) || w.prev.has(k)
}

// SeenEach sets seen[i] to whether id(i) was added within the window, for
// every i below len(seen): Seen for a whole batch. In a large window
// nearly every first probe is a cache miss; here the first probes of the
// whole batch are loads that depend on nothing
// before them, so the processor overlaps their misses instead of taking
// them one after the other, and only a probe that finds another id in its
// slot walks on (the next slots are on the same cache line mostly).
func (w *Window) SeenEach(seen []bool, id func(i int) string) {
	if w == nil {
		clear(seen)
		return
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		if cap(sc.keys) <= maxPooled { // a rare huge batch's are not kept
			scratchPool.Put(sc)
		}
	}()
	n := len(seen)
	keys := slices.Grow(sc.keys[:0], n)[:n]
	cur := slices.Grow(sc.cur[:0], n)[:n]
	prev := slices.Grow(sc.prev[:0], n)[:n]
	sc.keys, sc.cur, sc.prev = keys, cur, prev
	for i := range keys {
		keys[i] = 0 // no id: never seen
		if s := id(i); s != "" {
			keys[i] = w.key(s)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur.first(keys, cur)
	w.prev.first(keys, prev)
	for i, k := range keys {
		seen[i] = k != 0 && (w.cur.resolve(k, cur[i]) || w.prev.resolve(k, prev[i]))
	}
}

// scratch holds a SeenEach call's keys and first probes.
type scratch struct{ keys, cur, prev []uint64 }

const maxPooled = 1 << 16

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// first loads the first slot each key probes, without a branch on what it
// finds.
func (t *table) first(keys, into []uint64) {
	mask := uint64(len(t.slots) - 1)
	for i, k := range keys {
		into[i] = t.slots[k&mask]
	}
}

// resolve is has(k) given the content of k's first slot.
func (t *table) resolve(k, first uint64) bool {
	switch first {
	case k:
		return true
	case 0:
		return false
	}
	return t.has(k)
}

// Add remembers ids.
func (w *Window) Add(ids ...string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if id == "" {
			continue
		}
		if w.cur.n >= w.half {
			// The oldest generation goes; its memory becomes the new one.
			w.prev, w.cur = w.cur, w.prev
			clear(w.cur.slots)
			w.cur.n = 0
		}
		w.cur.add(w.key(id))
	}
}
