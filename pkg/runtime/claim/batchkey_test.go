package claim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// oldBatchKey is BatchKey as it was written first (one hash.Hash write per
// id): keys must not change, or workers of two versions in one fleet would
// not recognise each other's batches.
func oldBatchKey(ids []string) string {
	h := sha256.New()
	n := 0
	var lenBuf [binary.MaxVarintLen64]byte
	for _, id := range ids {
		if id == "" {
			continue
		}
		h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(id)))])
		h.Write([]byte(id))
		n++
	}
	if n == 0 {
		return ""
	}
	return "batch/" + hex.EncodeToString(h.Sum(nil)[:16])
}

func batchIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("3%055d", i*7919)
	}
	return ids
}

// Not parallel: AllocsPerRun refuses to run in a parallel test.
func TestBatchKeyUnchangedAndPerBatch(t *testing.T) {
	long := strings.Repeat("x", 20<<10) // longer than BatchKey's chunk
	for _, ids := range [][]string{nil, {""}, {"a"}, {"", "a", "bc"}, {"ab", "c"}, batchIDs(500), batchIDs(5000),
		{long}, {"a", long, "b"}, append(batchIDs(140), long, "c")} {
		if got, want := BatchKey(slices.Values(ids)), oldBatchKey(ids); got != want {
			t.Errorf("BatchKey(%q) = %q, want %q", ids, got, want)
		}
	}
	ids := batchIDs(500)
	allocs := testing.AllocsPerRun(20, func() { BatchKey(slices.Values(ids)) })
	// The hash, its chunk and the key: a few per batch, not one per id.
	if allocs > 8 {
		t.Errorf("BatchKey of 500 ids: %v allocations, want a few per batch", allocs)
	}
}

func BenchmarkBatchKey(b *testing.B) {
	ids := batchIDs(500)
	b.ReportAllocs()
	for b.Loop() {
		BatchKey(slices.Values(ids))
	}
}
