package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if err := check(srv.URL+"/healthz", time.Second); err != nil {
		t.Fatalf("healthy endpoint: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := check(srv.URL+"/healthz", time.Second); err == nil {
		t.Fatal("503 must fail the check")
	}
	if code := run(nil); code != 2 {
		t.Fatalf("no argument: exit %d, want 2", code)
	}
	srv.Close()
	if code := run([]string{srv.URL}); code != 1 {
		t.Fatalf("closed server: exit %d, want 1", code)
	}
}
