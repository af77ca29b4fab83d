package filter

import (
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
)

// A batch none of whose logs a rule matches costs the same few
// allocations whatever its size: nothing is copied per log, also when the
// rules read the API id and stage from the log itself (no enrichment tags).
// Not parallel: AllocsPerRun refuses to run in a parallel test.
func TestApplyNoMatchAllocatesPerBatch(t *testing.T) {
	f, err := New(Config{
		ExcludeAtMatch: "/health",
		Drop:           []Matcher{{APIID: "zzzzzz", Stage: "nope"}, {Route: "/admin/*", Status: new(500)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(n int) float64 {
		var b record.Batch
		for range n {
			r := access("req-1", "GET", "/pets/{petId}", 200, `{"resourcePath":"/pets/{petId}"}`,
				record.StringAttr(derive.KeyAPIID, []byte("a1b2c3")), record.StringAttr(derive.KeyStage, []byte("prod")))
			r.Tags = nil
			b.Records = append(b.Records, r)
		}
		if got := f.Apply(&b); got != &b {
			t.Fatalf("a batch nothing matched was copied")
		}
		return testing.AllocsPerRun(20, func() { f.Apply(&b) })
	}
	small, large := allocs(10), allocs(1000)
	if large > small+2 {
		t.Errorf("Apply of 1000 unmatched logs: %v allocations, of 10: %v; want the same per batch", large, small)
	}
}
