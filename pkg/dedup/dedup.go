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
// Memory stays bounded (about 16 bytes per remembered id); an id is
// remembered for between Size/2 and Size later ids.
type Window struct {
	seed maphash.Seed
	half int

	mu        sync.Mutex
	cur, prev map[uint64]struct{}
}

// New returns a window of about size ids; size 0 disables it.
func New(size int) *Window {
	if size <= 0 {
		return nil
	}
	half := max(size/2, 1)
	return &Window{seed: maphash.MakeSeed(), half: half, cur: make(map[uint64]struct{}, half)}
}

func (w *Window) key(id string) uint64 { return maphash.String(w.seed, id) }

// Seen reports whether id was added within the window. Empty ids are never
// seen: records without an id are not de-duplicated.
func (w *Window) Seen(id string) bool {
	if w == nil || id == "" {
		return false
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.cur[k]; ok {
		return true
	}
	_, ok := w.prev[k]
	return ok
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
		if len(w.cur) >= w.half {
			w.prev, w.cur = w.cur, make(map[uint64]struct{}, w.half)
		}
		w.cur[w.key(id)] = struct{}{}
	}
}
