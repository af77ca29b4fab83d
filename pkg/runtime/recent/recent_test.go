package recent

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestMemoryForgetsAfterTTL(t *testing.T) {
	t.Parallel()
	m := New[int](time.Minute, 0)
	m.Put("a", 1, t0)
	v, ok := m.Get("a", t0.Add(59*time.Second))
	require.True(t, ok)
	assert.Equal(t, 1, v)
	_, ok = m.Get("a", t0.Add(time.Minute))
	assert.False(t, ok, "gone at ttl, even before a prune")
	m.Prune(t0.Add(time.Minute))
	assert.Zero(t, m.Len())
}

func TestMemoryPutAgainLivesFromTheLaterPut(t *testing.T) {
	t.Parallel()
	m := New[string](time.Minute, 0)
	m.Put("a", "first", t0)
	m.Put("a", "second", t0.Add(50*time.Second))
	// The first put's entry expires now; the value put later stays.
	m.Prune(t0.Add(70 * time.Second))
	v, ok := m.Get("a", t0.Add(70*time.Second))
	require.True(t, ok)
	assert.Equal(t, "second", v)
	m.Prune(t0.Add(110 * time.Second))
	assert.Zero(t, m.Len())
}

func TestMemoryBoundInNumberForgetsTheOldest(t *testing.T) {
	t.Parallel()
	m := New[int](time.Hour, 3)
	for i := range 5 {
		m.Put(fmt.Sprint(i), i, t0.Add(time.Duration(i)*time.Second))
	}
	assert.Equal(t, 3, m.Len())
	now := t0.Add(5 * time.Second)
	for i := range 5 {
		_, ok := m.Get(fmt.Sprint(i), now)
		assert.Equal(t, i >= 2, ok, "key %d", i)
	}
	assert.Len(t, m.order, 3, "the order shrinks with the keys")
}

func TestMemoryTakeAndForget(t *testing.T) {
	t.Parallel()
	m := New[int](time.Minute, 0)
	m.Put("a", 1, t0)
	m.Put("b", 2, t0)
	v, ok := m.Take("a", t0)
	require.True(t, ok)
	assert.Equal(t, 1, v)
	_, ok = m.Get("a", t0)
	assert.False(t, ok, "taken")
	_, ok = m.Take("expired", t0)
	assert.False(t, ok)
	m.Put("c", 3, t0)
	m.Forget("b")
	_, ok = m.Get("b", t0)
	assert.False(t, ok)
	// A key taken when past ttl answers nothing, and is forgotten too.
	_, ok = m.Take("c", t0.Add(time.Minute))
	assert.False(t, ok)
	assert.Zero(t, m.Len())
}
