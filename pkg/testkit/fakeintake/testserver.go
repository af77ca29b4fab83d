package fakeintake

import (
	"net/http/httptest"
	"testing"
)

// NewTestServer starts a Server configured by cfg on a 127.0.0.1 port and
// returns it with its base URL (e.g. "http://127.0.0.1:41234"). It is stopped
// when the test ends: injected latencies are abandoned first, so a test that
// leaves a slow failure configured does not hang its cleanup.
func NewTestServer(tb testing.TB, cfg Config) (*Server, string) {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("start fake intake: %v", err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(func() {
		s.abandonWaits()
		ts.Close()
		if err := s.Close(); err != nil {
			tb.Errorf("stop fake intake: %v", err)
		}
	})
	return s, ts.URL
}
