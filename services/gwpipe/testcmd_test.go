package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example file passes whole: every kind of case (attributes, tags,
// absent keys, outputs in turn, envelopes, dropped, dead letters; logs
// dropped, sampled out and redacted by filters) against the configuration
// it names or its own.
func TestTestCommandExamplePasses(t *testing.T) {
	noEnv(t)
	out, errOut, code := inProcess(t, "", "test", "testdata/gwpipe-test.yaml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	if strings.Count(out, "PASS  ") != 9 || !strings.HasSuffix(out, "9 passed, 0 failed\n") {
		t.Fatalf("output:\n%s", out)
	}
}

// Each failing case prints FAIL with the differences, and the command
// exits 2.
func TestTestCommandReportsDifferences(t *testing.T) {
	noEnv(t)
	out, errOut, code := inProcess(t, "", "test", "testdata/gwpipe-test-fail.yaml")
	if code != exitNotParsed {
		t.Fatalf("exit %d, want %d:\n%s%s", code, exitNotParsed, out, errOut)
	}
	for _, want := range []string{
		"FAIL  wrong status\n",
		"attribute http.status_code: want 200, got 404",
		"attribute http.method: want \"GET\", missing",
		"tag env:prod: missing from ddtags",
		"attribute http.request_id: want absent, got \"r1\"",
		"FAIL  expected dropped\n",
		"want dropped, got 1 logs and 0 dead letters",
		"FAIL  wrong count\n",
		"want 1 logs, got 2",
		"FAIL  dropped, not sampled out\n",
		"want sampled out, got dropped otherwise (1 by a filter rule, none by a sample rule)",
		"FAIL  bad inline configuration\n",
		"datadog.logs.max_batch_logs",
		"0 passed, 5 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "attribute gwpipe.parse_error") {
		t.Errorf("a key that is absent reported present:\n%s", out)
	}
}

// Without a config in the file, cases use --config; --run picks cases.
func TestTestCommandUsesConfigFlagAndRun(t *testing.T) {
	noEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("enrich:\n  tags: [env:staging]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(tf, []byte(`tests:
  - name: tagged
    log_group: /aws/api-gateway/x
    input: '{"requestId":"r1","status":"200"}'
    expect: {tags: [env:staging]}
  - name: other
    input: x
    expect: dropped
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := inProcess(t, "", "test", "--config", cfg, "--run", "tagged", tf)
	if code != 0 || out != "PASS  tagged\n1 passed, 0 failed\n" {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// Without --config the defaults have no env tag.
	out, _, code = inProcess(t, "", "test", "--run", "tagged", tf)
	if code != exitNotParsed || !strings.Contains(out, "tag env:staging: missing") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestTestCommandRejectsBadFiles(t *testing.T) {
	noEnv(t)
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown-key.yaml": "tests:\n  - name: a\n    input: x\n    expectt: dropped\n",
		"bad-expect.yaml":  "tests:\n  - name: a\n    input: x\n    expect: gone\n",
		"empty.yaml":       "",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := inProcess(t, "", "test", p)
		if code != 1 || !strings.Contains(errOut, name) {
			t.Errorf("%s: exit %d, %q", name, code, errOut)
		}
	}
}
