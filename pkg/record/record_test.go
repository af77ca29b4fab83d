package record

import (
	"bytes"
	"testing"
)

// What Reserve made room for is kept in that one arena, and what was kept
// before it, in an arena Reserve replaced, is never written again.
func TestReserveKeepsInOneArena(t *testing.T) {
	t.Parallel()
	var b Batch
	first := b.Keep([]byte("first"))
	b.Reserve(3 * minArena)
	if got := cap(b.Arena); got != 3*minArena {
		t.Fatalf("arena of %d bytes after Reserve(%d)", got, 3*minArena)
	}
	arena := &b.Arena[:1][0]
	chunk := bytes.Repeat([]byte("x"), minArena)
	var kept [][]byte
	for range 3 {
		kept = append(kept, b.Keep(chunk))
	}
	if &b.Arena[:1][0] != arena {
		t.Fatal("Keep started another arena within what Reserve made room for")
	}
	b.Reserve(0) // room enough: nothing changes
	if &b.Arena[:1][0] != arena {
		t.Fatal("Reserve(0) replaced the arena")
	}
	b.Keep([]byte("more")) // no room left: a new arena
	if string(first) != "first" {
		t.Fatalf("kept bytes overwritten: %q", first)
	}
	for _, k := range kept {
		if !bytes.Equal(k, chunk) || cap(k) != len(k) {
			t.Fatal("kept bytes overwritten or extendable into the arena")
		}
	}
}
