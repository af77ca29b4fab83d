package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/dryrun"
	"github.com/gwpipe/gwpipe/pkg/formats/apigw/goldentest"
)

// inProcess runs the command line with stdin and returns stdout, stderr and
// the exit code main would return.
func inProcess(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := rootCmd()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.Execute()
	if err != nil && exitCode(err) != exitNotParsed {
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), exitCode(err)
}

// configDefaults is the built-in configuration, without the environment.
func configDefaults() config.Config { return config.DefaultConfig() }

// noEnv keeps the test's environment (DD_TAGS, GWPIPE_…) out of the
// configuration the commands load.
func noEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GWPIPE_") || strings.HasPrefix(k, "DD_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var logs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		logs = append(logs, m)
	}
	return logs
}

func TestParseCommandExitCodes(t *testing.T) {
	noEnv(t)
	good := `{"requestId":"r1","ip":"203.0.113.7","requestTime":"29/Jun/2023:12:01:02 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200","protocol":"HTTP/1.1","responseLength":"42"}`
	out, errOut, code := inProcess(t, good+"\n\n"+good+"\n", "parse", "--log-group", "/aws/api-gateway/shop", "--account", "123456789012")
	if code != 0 {
		t.Fatalf("exit %d for parseable lines: %s", code, errOut)
	}
	logs := jsonLines(t, out)
	if len(logs) != 2 {
		t.Fatalf("2 lines (and a blank one) printed %d logs:\n%s", len(logs), out)
	}
	if logs[0]["hostname"] != "/aws/api-gateway/shop" || !strings.Contains(logs[0]["ddtags"].(string), "aws_account:123456789012") {
		t.Fatalf("log %v", logs[0])
	}
	if !strings.Contains(errOut, "2 lines: 2 parsed, 0 with a parse error, 0 dead-lettered, 0 dropped; 2 logs") {
		t.Fatalf("summary: %q", errOut)
	}

	out, errOut, code = inProcess(t, good+"\nnot an access log\nbin\x00\x00\x00\x00\x00\x01\n", "parse", "--log-group", "/aws/api-gateway/shop")
	if code != exitNotParsed {
		t.Fatalf("exit %d for an unparseable line, want %d: %s", code, exitNotParsed, errOut)
	}
	logs = jsonLines(t, out)
	if len(logs) != 3 {
		t.Fatalf("want a log, a log with its parse error and a dead letter:\n%s", out)
	}
	if g, _ := logs[1]["gwpipe"].(map[string]any); g["parse_error"] == nil || logs[1]["message"] != "not an access log" {
		t.Fatalf("unparseable line printed as %v", logs[1])
	}
	if d, _ := logs[2]["dead_letter"].(map[string]any); d["stage"] != "decode" || d["line"] != float64(3) || d["reason"] == "" {
		t.Fatalf("binary line printed as %v", logs[2])
	}
	if !strings.Contains(errOut, "3 lines: 1 parsed, 1 with a parse error, 1 dead-lettered, 0 dropped; 2 logs") {
		t.Fatalf("summary: %q", errOut)
	}
}

// --format applies to the lines without a log group, as a parse.formats
// rule; and stdin may be gzipped CloudWatch data.
func TestParseCommandFormatAndGzippedEnvelope(t *testing.T) {
	noEnv(t)
	out, errOut, code := inProcess(t, "ip=203.0.113.9 st=502\n", "parse", "--format", "ip=$context.identity.sourceIp st=$context.status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f := map[string]any{}
	flatten("", jsonLines(t, out)[0], f)
	if f["network.client.ip"] != "203.0.113.9" || f["http.status_code"] != float64(502) || f["status"] != "error" {
		t.Fatalf("format not applied: %s", out)
	}

	env := `{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"/aws/api-gateway/shop","logStream":"s","subscriptionFilters":["f"],"logEvents":[` +
		`{"id":"e1","timestamp":1732850000000,"message":"{\"requestId\":\"a\",\"status\":\"200\"}"},` +
		`{"id":"e2","timestamp":1732850000001,"message":"{\"requestId\":\"b\",\"status\":\"500\"}"}]}` + "\n" +
		`{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}` + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(env))
	_ = zw.Close()
	out, errOut, code = inProcess(t, gz.String(), "parse")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	logs := jsonLines(t, out)
	if len(logs) != 3 || logs[0]["id"] != "e1" || logs[1]["id"] != "e2" || logs[1]["status"] != "error" {
		t.Fatalf("envelope gave:\n%s", out)
	}
	if d, _ := logs[2]["dropped"].(map[string]any); d["line"] != float64(2) {
		t.Fatalf("control message gave %v", logs[2])
	}
	if !strings.Contains(errOut, "2 lines: 1 parsed, 0 with a parse error, 0 dead-lettered, 1 dropped; 2 logs") {
		t.Fatalf("summary: %q", errOut)
	}
}

// TestParseCommandGolden runs the parser's golden files (the formats of
// the parsing issue: access logs in every format, execution logs) through
// `gwpipe parse`, one run per log group and format, and checks that every
// attribute the parser's golden output holds is in the delivered log:
// what the parser found reaches Datadog unchanged.
func TestParseCommandGolden(t *testing.T) {
	noEnv(t)
	files, _ := filepath.Glob("../../pkg/formats/apigw/testdata/*.txt")
	if len(files) < 5 {
		t.Fatalf("golden files not found: %v", files)
	}
	checked := 0
	for _, path := range files {
		cases := goldentest.Read(t, path)
		var golden []struct {
			Line, Level, Source string
			ParseError          string `json:"parse_error"`
			Attrs               []string
		}
		data, err := os.ReadFile(strings.TrimSuffix(path, ".txt") + ".golden.json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &golden); err != nil {
			t.Fatal(err)
		}
		for start := 0; start < len(cases); {
			end := start
			c := cases[start]
			for end < len(cases) && cases[end].Group == c.Group && cases[end].Stream == c.Stream &&
				cases[end].Format == c.Format && cases[end].Prefix == c.Prefix {
				end++
			}
			first := start
			start = end
			if c.Group == "" || c.Prefix != "" {
				continue // a stream or a prefix setting: not a parse flag
			}
			args := []string{"parse", "--log-group", c.Group}
			if c.Format != "" {
				args = append(args, "--format", c.Format)
			}
			var in strings.Builder
			var want []int
			for i := first; i < end; i++ {
				if l := cases[i].Line; !strings.ContainsAny(l, "\r\n") && strings.TrimSpace(l) != "" {
					in.WriteString(l + "\n")
					want = append(want, i)
				} // else not one line of stdin
			}
			out, errOut, _ := inProcess(t, in.String(), args...)
			logs := jsonLines(t, out)
			var delivered []map[string]any
			for _, l := range logs {
				if _, ok := l["message"]; ok {
					delivered = append(delivered, l)
				}
			}
			if len(delivered) != len(want) {
				t.Fatalf("%s %v: %d lines delivered %d logs: %s\n%s", path, args, len(want), len(delivered), errOut, out)
			}
			for i, gi := range want {
				g := golden[gi]
				l := delivered[i]
				where := fmt.Sprintf("%s line %q", filepath.Base(path), g.Line)
				if l["message"] != g.Line || l["status"] != g.Level || (g.Source != "" && l["ddsource"] != g.Source) {
					t.Errorf("%s: delivered %v", where, l)
				}
				flat := map[string]any{}
				flatten("", l, flat)
				if pe, _ := flat["gwpipe.parse_error"].(string); pe != g.ParseError {
					t.Errorf("%s: parse error %q, golden %q", where, pe, g.ParseError)
				}
				for _, a := range g.Attrs {
					key, val, ok := goldenAttr(a)
					if !ok || shadowed(key, g.Attrs) {
						continue
					}
					if reservedTop(key) {
						key = "apigateway." + key
					}
					got, present := flat[key]
					if !present {
						t.Errorf("%s: attribute %s missing from the delivered log", where, key)
						continue
					}
					if fmt.Sprint(got) != fmt.Sprint(val) {
						t.Errorf("%s: attribute %s = %v delivered, golden %v", where, key, got, val)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d attributes checked", checked)
	if checked < 100 {
		t.Fatalf("only %d attributes checked", checked)
	}
}

// goldenAttr reads `key: <json> (kind)` as the golden files write it.
func goldenAttr(s string) (string, any, bool) {
	key, v, ok := strings.Cut(s, ": ")
	if !ok {
		return "", nil, false
	}
	if i := strings.LastIndex(v, " ("); i > 0 && strings.HasSuffix(v, ")") {
		v = v[:i]
	}
	var val any
	if err := json.Unmarshal([]byte(v), &val); err != nil {
		return "", nil, false
	}
	return key, val, true
}

// shadowed: the renderer keeps the last of duplicate keys, and an object
// over a leaf of the same name (ddlogs.AppendLog).
func shadowed(key string, attrs []string) bool {
	seen := false
	for _, a := range attrs {
		k, _, _ := strings.Cut(a, ": ")
		if k == key {
			if seen {
				return true
			}
			seen = true
		}
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

func reservedTop(key string) bool {
	top, _, _ := strings.Cut(key, ".")
	switch top {
	case "ddsource", "ddtags", "hostname", "host", "service", "status", "message", "timestamp", "@timestamp", "source", "id":
		return true
	}
	return false
}

// FuzzParseCommand: whatever stdin holds, `gwpipe parse` accounts for
// every non-blank line exactly once in its summary (parsed, parse error,
// dead-lettered or dropped), prints at least one JSON line for each, and
// exits 0 or 2, never failing as a command.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"requestId":"r1","status":"200"}`,
		"not an access log\n\n  \nsecond\r\n",
		"bin\x00\x01\x02\x03\x04\x05\n",
		`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[{"id":"1","timestamp":1,"message":"m"}]}`,
		`{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[]}`,
		`{"messageType":"DATA_MESSAGE_V2"}`,
		"{}{}\n[1,2]\n\xff\xfe\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) >= 2 && in[0] == 0x1f && in[1] == 0x8b {
			return // gzipped stdin: its lines are not these
		}
		var out, errOut bytes.Buffer
		err := runParse(context.Background(), configDefaults(), strings.NewReader(in), &out, &errOut, dryrun.Input{LogGroup: "/aws/api-gateway/fuzz"})
		if c := exitCode(err); c != 0 && c != exitNotParsed {
			t.Fatalf("exit %d: %v", c, err)
		}
		lines := 0
		for _, l := range strings.Split(in, "\n") {
			if len(bytes.TrimSpace([]byte(strings.TrimRight(l, "\r")))) > 0 {
				lines++
			}
		}
		outLines := 0
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l == "" {
				continue
			}
			outLines++
			if !json.Valid([]byte(l)) {
				t.Fatalf("output line not JSON: %q", l)
			}
		}
		if outLines < lines {
			t.Fatalf("%d input lines printed %d JSON lines", lines, outLines)
		}
		var n, parsed, perr, dead, dropped, logs int
		if _, err := fmt.Sscanf(errOut.String(), "%d lines: %d parsed, %d with a parse error, %d dead-lettered, %d dropped; %d logs",
			&n, &parsed, &perr, &dead, &dropped, &logs); err != nil {
			t.Fatalf("summary %q: %v", errOut.String(), err)
		}
		if n != lines || parsed+perr+dead+dropped != n {
			t.Fatalf("summary %q for %d lines", errOut.String(), lines)
		}
		if (perr+dead > 0) != (exitCode(err) == exitNotParsed) {
			t.Fatalf("exit %d with summary %q", exitCode(err), errOut.String())
		}
	})
}

// Lines the configuration's filters drop or sample out print why.
func TestParseCommandSaysWhatFiltersDid(t *testing.T) {
	noEnv(t)
	cfg := t.TempDir() + "/gwpipe.yaml"
	if err := os.WriteFile(cfg, []byte("filters:\n  drop: [{route: /health}]\n  sample: [{route: /pets, rate: 0}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := `{"requestId":"a","resourcePath":"/health","status":"200"}` + "\n" +
		`{"requestId":"b","resourcePath":"/pets","status":"200"}` + "\n" +
		`{"requestId":"c","resourcePath":"/orders","status":"200"}` + "\n"
	out, errOut, code := inProcess(t, in, "parse", "--config", cfg, "--log-group", "/aws/api-gateway/shop")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := jsonLines(t, out)
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", out)
	}
	d0, _ := lines[0]["dropped"].(map[string]any)
	d1, _ := lines[1]["dropped"].(map[string]any)
	if !strings.HasPrefix(fmt.Sprint(d0["reason"]), "dropped by a filter") || d1["reason"] != "sampled out by filters.sample" || lines[2]["message"] == nil {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(errOut, "3 lines: 1 parsed, 0 with a parse error, 0 dead-lettered, 2 dropped; 1 logs") {
		t.Fatalf("summary %q", errOut)
	}
}
