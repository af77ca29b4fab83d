package cas

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
)

// Memory is a Store in one process's memory: the contract as the other
// stores keep it, atomically, for tests and for a fleet of one.
type Memory struct {
	mu   sync.Mutex
	seq  int64
	keys map[string]memEntry
	// Fail, when set, is asked before every call: a non-nil error is
	// returned instead (an unreachable store).
	Fail func(op, key string) error
}

type memEntry struct {
	value   []byte
	version string
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{keys: map[string]memEntry{}} }

func (m *Memory) fail(op, key string) error {
	if m.Fail == nil {
		return nil
	}
	return m.Fail(op, key)
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("get", key); err != nil {
		return nil, "", err
	}
	e, ok := m.keys[key]
	if !ok {
		return nil, "", ErrNotFound
	}
	return append([]byte(nil), e.value...), e.version, nil
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, key string, value []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("create", key); err != nil {
		return "", err
	}
	if _, ok := m.keys[key]; ok {
		return "", ErrConflict
	}
	return m.putLocked(key, value), nil
}

// Update implements Store.
func (m *Memory) Update(_ context.Context, key string, value []byte, version string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("update", key); err != nil {
		return "", err
	}
	if e, ok := m.keys[key]; !ok || e.version != version {
		return "", ErrConflict
	}
	return m.putLocked(key, value), nil
}

func (m *Memory) putLocked(key string, value []byte) string {
	m.seq++
	v := strconv.FormatInt(m.seq, 10)
	m.keys[key] = memEntry{value: append([]byte(nil), value...), version: v}
	return v
}

// Delete removes key (a test's way to lose state).
func (m *Memory) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, key)
}

// Keys lists the keys held, for tests.
func (m *Memory) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.keys))
}

// Name implements Store.
func (m *Memory) Name() string { return "memory" }
