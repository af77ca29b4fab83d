package metricstream

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// joiner pairs the CacheHitCount and CacheMissCount of one stage and period
// into a hit ratio. The halves may arrive in the same record, in different
// records, or (polling) in different GetMetricData calls; a half waits for
// its other half in a bounded set, oldest evicted first, so memory stays
// bounded whatever the traffic. The ratio is emitted with the second half:
// no point waits for a timer.
type joiner struct {
	mu      sync.Mutex
	max     int
	pending map[joinKey]half
	order   []joinKey // insertion order, for eviction; may hold stale keys
	// paired keeps both halves of the last max pairs completed: a half that
	// comes again (its record sent again because the attempt that carried
	// the ratio failed, or a period the poller fetches again after a failed
	// emit) gives the ratio again, rather than waiting, unpaired, for the
	// other half, which came already and will not come again.
	paired      map[joinKey]pair
	pairedOrder []joinKey // completion order, for eviction

	unpaired atomic.Int64
}

type pair struct {
	hits, misses float64
	hitLast      bool // the hit count completed the pair (the ratio went with it)
}

// ratio is the pair's hit ratio; none without any request.
func (p pair) ratio() (float64, bool) {
	if p.hits+p.misses <= 0 {
		return 0, false
	}
	return p.hits / (p.hits + p.misses), true
}

type joinKey struct {
	stage string
	ts    int64
}

type half struct {
	v   float64
	hit bool
}

func (j *joiner) init(max int) {
	j.max = max
	j.pending = make(map[joinKey]half)
	j.paired = make(map[joinKey]pair)
}

// add records one half and returns the ratio when it completes a pair. A
// pair without any request (0 hits, 0 misses) has no ratio.
func (j *joiner) add(stage string, hit bool, ts int64, v float64) (float64, bool) {
	k := joinKey{stage, ts}
	j.mu.Lock()
	defer j.mu.Unlock()
	if p, ok := j.paired[k]; ok {
		// A half of a pair already complete, again, with its latest value.
		// The ratio went with the half that completed the pair: it comes
		// again with that half, whose delivery may have failed, and not
		// with the other, which carried none.
		if hit {
			p.hits = v
		} else {
			p.misses = v
		}
		j.paired[k] = p
		if hit != p.hitLast {
			return 0, false
		}
		return p.ratio()
	}
	if h, ok := j.pending[k]; ok {
		if h.hit == hit {
			// The same half again (a redelivered record): keep the latest.
			j.pending[k] = half{v, hit}
			return 0, false
		}
		delete(j.pending, k)
		p := pair{hits: v, misses: h.v, hitLast: true}
		if !hit {
			p = pair{hits: h.v, misses: v}
		}
		j.remember(k, p)
		return p.ratio()
	}
	for len(j.pending) >= j.max && len(j.order) > 0 {
		old := j.order[0]
		j.order = j.order[1:]
		if _, ok := j.pending[old]; ok {
			delete(j.pending, old)
			j.unpaired.Add(1)
		}
	}
	j.pending[k] = half{v, hit}
	j.order = append(j.order, k)
	if len(j.order) > 2*j.max+16 {
		// Drop the keys of pairs already completed, keeping the order.
		live := j.order[:0]
		for _, ok := range j.order {
			if _, p := j.pending[ok]; p {
				live = append(live, ok)
			}
		}
		clear(j.order[len(live):])
		j.order = live
	}
	return 0, false
}

// remember keeps a completed pair, the oldest forgotten first.
func (j *joiner) remember(k joinKey, p pair) {
	for len(j.paired) >= j.max && len(j.pairedOrder) > 0 {
		delete(j.paired, j.pairedOrder[0])
		j.pairedOrder = j.pairedOrder[1:]
	}
	j.paired[k] = p
	// The head cut off above is freed when append moves the rest.
	j.pairedOrder = append(j.pairedOrder, k)
}

// pendingLen is the number of halves waiting, for tests.
func (j *joiner) pendingLen() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// stageJoinKey identifies a stage (or API, or method) across the hit and
// miss metrics: account, region and dimensions.
// The dimensions are sorted: the two metrics need not list them in the same
// order.
func stageJoinKey(d *rawDatum) string {
	dims := slices.Clone(d.dims)
	slices.SortFunc(dims, func(a, b rawDim) int { return bytes.Compare(a.name, b.name) })
	var b strings.Builder
	b.Write(d.account)
	b.WriteByte(0)
	b.Write(d.region)
	for _, dm := range dims {
		b.WriteByte(0)
		b.Write(dm.name)
		b.WriteByte(1)
		b.Write(dm.value)
	}
	return b.String()
}
