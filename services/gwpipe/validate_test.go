package main

import (
	"os"
	"strings"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// TestValidateConnect: `gwpipe validate --connect` against the fake intake
// with the good key passes, one ✓ line per check; with a wrong key each
// Datadog check fails on its ✗ line, with the reason, and the exit code
// is 1. (The AWS and NATS checks are tested in pkg/preflight against moto
// and an embedded NATS server.)
func TestValidateConnect(t *testing.T) {
	noEnv(t)
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{ddKey}})
	cfg := t.TempDir() + "/gwpipe.yaml"
	if err := os.WriteFile(cfg, []byte("datadog:\n  api_url: "+base+"\n  logs_url: "+base+"/api/v2/logs\nsources:\n  firehose:\n    access_keys: [k]\nenrich:\n  aws_tags: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DD_API_KEY", ddKey)
	out, errOut, code := inProcess(t, "", "validate", "--config", cfg, "--connect")
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	want := "configuration is valid\n" +
		"✓ datadog.api_key: valid (GET " + base + "/api/v1/validate answered 200)\n" +
		"✓ datadog.logs_url: " + base + "/api/v2/logs is reachable and takes the API key (an empty payload answered 400)\n" +
		"all 2 connection checks passed\n"
	if out != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want)
	}

	t.Setenv("DD_API_KEY", "not-the-key")
	out, errOut, code = inProcess(t, "", "validate", "--config", cfg, "--connect")
	if code != 1 || !strings.Contains(errOut, "2 of 2 connection checks failed") {
		t.Fatalf("exit %d with a wrong key:\n%s%s", code, out, errOut)
	}
	for _, line := range []string{
		"✗ datadog.api_key: refused: GET " + base + "/api/v1/validate answered 403",
		"✗ datadog.logs_url: " + base + "/api/v2/logs is reachable but refused the API key: 403",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out+errOut, "not-the-key") {
		t.Errorf("the key is printed:\n%s%s", out, errOut)
	}
}
