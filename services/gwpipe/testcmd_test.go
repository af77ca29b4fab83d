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

// A test file is as strict as the configuration: a misspelt key anywhere,
// inside expect and outputs included, is an error with its line and the
// closest key, and so is an expect that asserts nothing. Either would let
// the case pass whatever its logs became.
func TestTestCommandIsStrict(t *testing.T) {
	noEnv(t)
	dir := t.TempDir()
	const head = "tests:\n  - name: a\n    log_group: /aws/api-gateway/x\n    input: '{\"requestId\":\"r1\",\"status\":\"500\"}'\n"
	for name, c := range map[string]struct{ body, want string }{
		"expect-typo": {head + "    expect:\n      atributes: {http.status_code: 200}\n",
			"line 6: unknown key tests[0].expect.atributes (did you mean tests[0].expect.attributes?)"},
		"expect-typo-tags": {head + "    expect: {tag: [env:prod]}\n",
			"line 5: unknown key tests[0].expect.tag (did you mean tests[0].expect.tags?)"},
		"outputs-typo": {head + "    expect:\n      outputs:\n        - atributes: {http.status_code: 200}\n",
			"line 7: unknown key tests[0].expect.outputs[0].atributes (did you mean tests[0].expect.outputs[0].attributes?)"},
		"expect-empty": {head + "    expect: {}\n",
			"line 5: tests[0].expect asserts nothing: give logs, attributes, tags, absent or outputs, or dropped, sampled_out or dead_letter"},
		"expect-empty-lists": {head + "    expect: {attributes: {}, tags: []}\n", "line 5: tests[0].expect asserts nothing"},
		"expect-null":        {head + "    expect:\n", "line 5: tests[0].expect has no value"},
		"no-expect":          {head, `tests[0] "a" has no expect`},
		"expect-word":        {head + "    expect: gone\n", `line 5: tests[0].expect: "gone" is neither dropped`},
		"outcome-key":        {head + "    expect: {outcome: dropped}\n", "line 5: unknown key tests[0].expect.outcome"},
	} {
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := inProcess(t, "", "test", p)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Contains(out, "PASS") {
			t.Errorf("%s: exit %d, want 1 and %q:\n%s%s", name, code, c.want, out, errOut)
		}
	}
}
