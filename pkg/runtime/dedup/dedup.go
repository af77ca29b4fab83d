// Package dedup remembers recently delivered CloudWatch event ids, so that
// a batch redelivered by a broker after a worker crashed does not reach
// Datadog twice.
package dedup

import (
	"hash/maphash"
	"sync"
)

// Window holds the last ids in two generations: when the current one is
// full it becomes the previous one, and the oldest generation is dropped.
// An id is remembered for between Size/2 and Size later ids.
//
// Each generation is an open-addressing table of 64-bit hashes, at most half
// full, probed linearly: deliver-logs looks up and inserts every record it
// delivers, and a table of bare hashes costs one cache line per probe where
// a map costs several: 125–150 ns per delivered record against ~235 for
// two maps (BenchmarkWindow), where the maps were ~5% of a delivery
// worker's CPU. Memory is allocated once: 16 MiB for a window of a million.
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

// Seen reports whether id was added within the window. Empty ids are never
// seen: records without an id are not de-duplicated.
func (w *Window) Seen(id string) bool {
	if w == nil || id == "" {
		return false
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur.has(k) || w.prev.has(k)
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
