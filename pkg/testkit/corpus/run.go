package corpus

import (
	"testing"
	"time"
)

// EachRequest runs test as a subtest per request of the corpus, named
// after its case. Each request is rendered for the time its subtest
// starts, which test receives as now. A corpus that does not load, or
// holds no request, fails t.
func EachRequest(t *testing.T, test func(t *testing.T, r Request, now time.Time)) {
	t.Helper()
	cases, err := Cases()
	if err != nil || len(cases) == 0 {
		t.Fatalf("corpus: %d requests: %v", len(cases), err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			now := time.Now()
			r, err := c.Render(now)
			if err != nil {
				t.Fatal(err)
			}
			test(t, r, now)
		})
	}
}

// EachObject is EachRequest for the objects of the corpus.
func EachObject(t *testing.T, test func(t *testing.T, o Object)) {
	t.Helper()
	cases, err := ObjectCases()
	if err != nil || len(cases) == 0 {
		t.Fatalf("corpus: %d objects: %v", len(cases), err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			o, err := c.Render(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			test(t, o)
		})
	}
}
