// Package recent remembers keys for a while, bounded in time and in
// number: what a source must recognise when it comes again — a Firehose
// retry of a request id, an SQS message received twice, a copy of an S3
// event — and what an earlier attempt of it achieved.
package recent

import "time"

// Memory maps keys to values for ttl after they were put, and to at most
// max keys (0: no bound in number), forgetting the oldest first. It is
// not safe for concurrent use: its owner locks it, usually with the state
// the answer decides.
type Memory[V any] struct {
	ttl   time.Duration
	max   int
	items map[string]item[V]
	// order holds the keys by time put, oldest first, so that forgetting
	// costs what is forgotten rather than a scan of every key: a scan on
	// every request would grow with the failures of an outage.
	order []put
}

type item[V any] struct {
	at time.Time
	v  V
}

type put struct {
	key string
	at  time.Time
}

// New returns an empty memory.
func New[V any](ttl time.Duration, max int) *Memory[V] {
	return &Memory[V]{ttl: ttl, max: max, items: map[string]item[V]{}}
}

// Get returns the value of key if it was put less than ttl before now.
func (m *Memory[V]) Get(key string, now time.Time) (V, bool) {
	it, ok := m.items[key]
	if !ok || now.Sub(it.at) >= m.ttl {
		var zero V
		return zero, false
	}
	return it.v, true
}

// Take returns the value of key as Get does, and forgets it.
func (m *Memory[V]) Take(key string, now time.Time) (V, bool) {
	v, ok := m.Get(key, now)
	delete(m.items, key)
	return v, ok
}

// Put remembers v for key from now, replacing what key held, and forgets
// what is older than ttl or beyond max.
func (m *Memory[V]) Put(key string, v V, now time.Time) {
	m.items[key] = item[V]{now, v}
	m.order = append(m.order, put{key, now})
	m.Prune(now)
}

// Prune forgets what is older than ttl at now, and the oldest keys beyond
// max.
func (m *Memory[V]) Prune(now time.Time) {
	i := 0
	for i < len(m.order) && (now.Sub(m.order[i].at) >= m.ttl || (m.max > 0 && len(m.order)-i > m.max)) {
		// A key put again since has a later entry further on: this one
		// only forgets the value it put.
		if it, ok := m.items[m.order[i].key]; ok && it.at == m.order[i].at {
			delete(m.items, m.order[i].key)
		}
		i++
	}
	if i > 0 {
		m.order = append(m.order[:0], m.order[i:]...)
	}
}

// Forget forgets key.
func (m *Memory[V]) Forget(key string) { delete(m.items, key) }

// Len is how many keys are remembered, some of them perhaps past ttl
// until the next Put or Prune.
func (m *Memory[V]) Len() int { return len(m.items) }
