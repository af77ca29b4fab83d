package dedup

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWindowRemembersRecentIDs(t *testing.T) {
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
	assert.LessOrEqual(t, len(w.cur)+len(w.prev), 10)
}

func TestDisabledWindow(t *testing.T) {
	var w *Window = New(0)
	w.Add("a")
	assert.False(t, w.Seen("a"))
}
