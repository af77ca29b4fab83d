package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// These tests run gwpipe as a real process — this test binary re-executed
// with runMainEnv set runs main() (see TestMain in demo_test.go) — so that
// signals, exit codes and the printed summary are the real ones.

const (
	ddKey       = "test-dd-key"
	firehoseKey = "test-firehose-key"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proc is a gwpipe process.
type proc struct {
	cmd      *exec.Cmd
	firehose string // endpoint URL
	admin    string
	dlqDir   string
	stdout   bytes.Buffer
	stderrMu sync.Mutex
	stderr   []string
	lines    chan string // stderr, line by line
	exited   chan struct{}
	waitErr  error
}

// startGwpipe runs `gwpipe run` against the intake base URL with extra
// environment, and waits until its admin endpoint answers.
func startGwpipe(t *testing.T, intake string, env ...string) *proc {
	t.Helper()
	return startGwpipeArgs(t, []string{"run"}, intake, env...)
}

// startGwpipeArgs is startGwpipe with the command line's arguments.
func startGwpipeArgs(t *testing.T, args []string, intake string, env ...string) *proc {
	t.Helper()
	p := &proc{firehose: "http://" + freeAddr(t) + "/", admin: freeAddr(t), dlqDir: t.TempDir(), lines: make(chan string, 1000), exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(),
		runMainEnv+"=1",
		"DD_API_KEY="+ddKey,
		"GWPIPE_DATADOG_LOGS_URL="+intake+"/api/v2/logs",
		"GWPIPE_DATADOG_API_URL="+intake,
		"GWPIPE_DATADOG_LOGS_RETRY_INITIAL=20ms",
		"GWPIPE_DATADOG_LOGS_RETRY_MAX=200ms",
		"GWPIPE_SOURCES_FIREHOSE_LISTEN="+strings.TrimSuffix(strings.TrimPrefix(p.firehose, "http://"), "/"),
		"GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="+firehoseKey,
		"GWPIPE_ADMIN_LISTEN="+p.admin,
		"GWPIPE_DLQ_DIR="+p.dlqDir,
		"GWPIPE_ENRICH_AWS_TAGS=false",
	)
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.stderrMu.Lock()
			p.stderr = append(p.stderr, sc.Text())
			p.stderrMu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			p.stderrMu.Lock()
			t.Logf("gwpipe stderr:\n%s\nstdout:\n%s", strings.Join(p.stderr, "\n"), p.stdout.String())
			p.stderrMu.Unlock()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.waitStatus(t, ctx, func(map[string]any) bool { return true })
	return p
}

// status is /status, or nil while the endpoint does not answer.
func (p *proc) status() map[string]any {
	resp, err := http.Get("http://" + p.admin + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]any
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil
	}
	return m
}

// waitStatus polls /status until cond holds: the process offers no other
// notification, and its figures are what the test waits for.
func (p *proc) waitStatus(t *testing.T, ctx context.Context, cond func(map[string]any) bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if st := p.status(); st != nil && cond(st) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gwpipe status: %v", ctx.Err())
		case <-p.exited:
			t.Fatalf("gwpipe exited: %v", p.waitErr)
		case <-tick.C:
		}
	}
}

// stage returns one stage's counter from a /status document.
func stage(st map[string]any, name, field string) int64 {
	stages, _ := st["stages"].([]any)
	for _, s := range stages {
		m, _ := s.(map[string]any)
		if m["name"] == name {
			v, _ := m[field].(float64)
			return int64(v)
		}
	}
	return 0
}

// exitCode waits for the process and returns its exit code.
func (p *proc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("gwpipe still running %s after the signal", within)
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		t.Fatal(p.waitErr)
	}
	return 0
}

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}

func envelope(ids ...string) string {
	var sb strings.Builder
	sb.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1b2c3d4e5/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%q,"timestamp":%d,"message":"{\"requestId\":\"%s\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200,\"responseLatency\":12}"}`, id, time.Now().UnixMilli(), id)
	}
	sb.WriteString("]}")
	return sb.String()
}

// answer is what a Firehose request was answered.
type answer struct {
	status  int
	message string
	records int
}

// post sends one Firehose request of n records and returns its answer,
// as Firehose would see it (no retry).
func post(url, reqID string, n int) answer {
	var sb strings.Builder
	fmt.Fprintf(&sb, `{"requestId":%q,"timestamp":%d,"records":[`, reqID, time.Now().UnixMilli())
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"data":%q}`, base64.StdEncoding.EncodeToString(gzipped(envelope(fmt.Sprintf("%s-%d", reqID, i)))))
	}
	sb.WriteString("]}")
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(sb.String()))
	req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
	req.Header.Set("X-Amz-Firehose-Request-Id", reqID)
	req.Header.Set("X-Amz-Firehose-Access-Key", firehoseKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{message: err.Error(), records: n}
	}
	defer resp.Body.Close()
	var body struct {
		ErrorMessage string `json:"errorMessage"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &body)
	return answer{status: resp.StatusCode, message: body.ErrorMessage, records: n}
}

// TestShutdownFitsDrainTimeoutWhateverTheIntake: with the intake refusing
// connections, accepting them and never answering, or refusing the API
// key, SIGTERM ends the process within pipeline.drain_timeout (plus slack
// for a loaded machine), exit 0; every request waiting for delivery gets
// a retryable 503, and the summary reports exactly the records handed back.
func TestShutdownFitsDrainTimeoutWhateverTheIntake(t *testing.T) {
	const drain = 2 * time.Second
	for _, mode := range []string{"down", "hanging", "refusing the key"} {
		t.Run(mode, func(t *testing.T) {
			var intake string
			switch mode {
			case "down":
				intake = "http://" + freeAddr(t) // nothing listens: connection refused
			default:
				s, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{ddKey}})
				f := fakeintake.Failure{LatencyMS: time.Hour.Milliseconds()}
				if mode == "refusing the key" {
					f = fakeintake.Failure{Status: http.StatusForbidden}
				}
				if err := s.SetFailure(f); err != nil {
					t.Fatal(err)
				}
				intake = base
			}
			p := startGwpipe(t, intake, "GWPIPE_PIPELINE_DRAIN_TIMEOUT="+drain.String(), "GWPIPE_SOURCES_FIREHOSE_ACK_TIMEOUT=2m")

			const requests = 6
			answers := make(chan answer, requests)
			for i := range requests {
				go func() { answers <- post(p.firehose, fmt.Sprint("req-", i), 3+i) }()
			}
			// Every request is admitted (waiting for delivery) or already
			// answered: once the key is refused, later requests are turned
			// away at once.
			var got []answer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p.waitStatus(t, ctx, func(st map[string]any) bool {
				for len(answers) > 0 {
					got = append(got, <-answers)
				}
				return stage(st, "ingest", "batches")+int64(len(got)) == requests && stage(st, "deliver-logs", "records_in") > 0
			})
			if mode != "refusing the key" && len(got) > 0 {
				t.Fatalf("answered before the shutdown: %+v", got)
			}

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			code := p.exitCode(t, drain+30*time.Second)
			took := time.Since(began)
			if code != 0 {
				t.Errorf("exit code %d, want 0: handing back is a clean drain", code)
			}
			t.Logf("shutdown took %s (drain_timeout %s); %d of %d requests were waiting", took, drain, requests-len(got), requests)
			if limit := drain + 2*time.Second; took > limit {
				t.Errorf("shutdown took %s, more than drain_timeout %s plus slack", took, drain)
			}
			for len(got) < requests {
				got = append(got, <-answers)
			}
			var handedBack, handedBackRecords int
			for _, a := range got {
				if a.status != http.StatusServiceUnavailable {
					t.Errorf("request answered %d (%s), want a retryable 503", a.status, a.message)
				}
				if strings.Contains(a.message, "shutting down") {
					handedBack++
					handedBackRecords += a.records
				}
			}
			if handedBack == 0 {
				t.Fatal("no request was waiting at the shutdown")
			}
			want := fmt.Sprintf("handed back               %d firehose records in %s (answered 503: Firehose sends them again)",
				handedBackRecords, plural(handedBack, "request"))
			if !strings.Contains(p.stdout.String(), want) {
				t.Errorf("summary does not say %q:\n%s", want, p.stdout.String())
			}
			if !regexp.MustCompile(`dead-lettered +0 written`).MatchString(p.stdout.String()) {
				t.Errorf("nothing may be dead-lettered:\n%s", p.stdout.String())
			}
			files, _ := filepath.Glob(filepath.Join(p.dlqDir, "*.jsonl"))
			for _, f := range files {
				if st, err := os.Stat(f); err == nil && st.Size() > 0 {
					t.Errorf("dead-letter file %s is not empty", f)
				}
			}
		})
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprint(n, " ", what, "s")
}

// waitLine waits for a line of stderr holding text, and returns the lines
// read before it; the process ending first fails the test.
func (p *proc) waitLine(t *testing.T, text string, within time.Duration) (before []string) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, text) {
				return before
			}
			before = append(before, l)
		case <-p.exited:
			t.Fatalf("the process ended (%v) before logging %q", p.waitErr, text)
		case <-timeout:
			t.Fatalf("no log line %q within %s", text, within)
		}
	}
}

// TestSIGHUPDoesNoHarm: SIGHUP (a reload request, or a terminal hanging
// up) with an unchanged configuration reloads nothing and says so: the
// process keeps serving, and SIGTERM still drains it, with its summary and
// exit 0.
func TestSIGHUPDoesNoHarm(t *testing.T) {
	s, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{ddKey}})
	p := startGwpipe(t, base)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "configuration reloaded: no key that reloads changed", 30*time.Second)
	if a := post(p.firehose, "after-hup", 2); a.status != http.StatusOK {
		t.Fatalf("after SIGHUP a request was answered %d (%s)", a.status, a.message)
	}
	if got := len(s.Logs()); got != 2 {
		t.Fatalf("intake holds %d logs, want 2", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	for _, want := range []string{"gwpipe summary after", "firehose requests         1 acknowledged, 0 refused, 0 timed out, 0 failed, 0 handed back, 0 duplicates", "logs delivered (2xx)      2"} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, p.stdout.String())
		}
	}
}

// TestReplayHelpIsTrue: each flag's help names one default, the one the
// code applies.
func TestReplayHelpIsTrue(t *testing.T) {
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"replay", "--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "--") {
			flags[f[0]] = l
		}
	}
	for name, l := range flags {
		if n := strings.Count(l, "default"); n > 1 {
			t.Errorf("%s names %d defaults: %s", name, n, l)
		}
	}
	if l := flags["--to"]; !strings.Contains(l, "when the replay starts") || strings.Contains(l, "no end") {
		t.Errorf("--to: %s", l)
	}
	if l := flags["--from"]; !strings.Contains(l, "required with --bucket") {
		t.Errorf("--from: %s", l)
	}
}

// TestFailedReplayPrintsOnlyItsError: a replay that fails before it reads
// anything (here: S3 cannot be reached) prints its error, not a summary of
// zeros.
func TestFailedReplayPrintsOnlyItsError(t *testing.T) {
	moto.Unreachable(t)
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	t.Setenv("DD_API_KEY", ddKey)
	t.Setenv("GWPIPE_DLQ_DIR", t.TempDir())
	t.Setenv("GWPIPE_ENRICH_AWS_TAGS", "false")
	t.Setenv("GWPIPE_LOG_LEVEL", "error")
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"replay", "--bucket", "archive", "--from", "-1h", "--progress=false"})
	err := cmd.Execute()
	if err == nil {
		t.Fatal("the replay of an unreachable bucket succeeded")
	}
	if out.Len() > 0 {
		t.Errorf("a failed replay printed a summary of nothing:\n%s", out.String())
	}
}

// TestValidateReportsWhatRunWouldRefuse: validate fails with the full key
// of each problem, warns about a GWPIPE_ variable that names no key (and
// fails on it with --strict).
func TestValidateReportsWhatRunWouldRefuse(t *testing.T) {
	validate := func(args ...string) (stdout, stderr string, err error) {
		cmd := rootCmd()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(append([]string{"validate"}, args...))
		err = cmd.Execute()
		return out.String(), errOut.String(), err
	}
	t.Setenv("DD_API_KEY", ddKey)
	t.Setenv("GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS", "k")
	t.Setenv("GWPIPE_DATADOG_LOGS_URLL", "http://127.0.0.1:1/api/v2/logs")
	out, errOut, err := validate()
	if err != nil || !strings.Contains(out, "configuration is valid") {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if want := "warning: GWPIPE_DATADOG_LOGS_URLL names no configuration key and is ignored (did you mean GWPIPE_DATADOG_LOGS_URL, key datadog.logs_url?)"; !strings.Contains(errOut, want) {
		t.Errorf("stderr %q lacks %q", errOut, want)
	}
	if _, _, err = validate("--strict"); err == nil || !strings.Contains(err.Error(), "name no configuration key (--strict)") {
		t.Errorf("validate --strict: %v", err)
	}

	t.Setenv("DD_SITE", "https://datadoghq.eu")
	t.Setenv("GWPIPE_ENRICH_MAPPINGS", `[{"log_group": "/aws/x/*"}]`)
	t.Setenv("GWPIPE_ENRICH_RATE_PER_SECOND", "5.5")
	_, _, err = validate()
	if err == nil {
		t.Fatal("validate accepted DD_SITE as a URL and a mapping without API")
	}
	for _, want := range []string{"datadog.site (set by DD_SITE): must be a site name", "enrich.mappings[0].api_id: is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "rate_per_second") {
		t.Errorf("a float from the environment is refused: %v", err)
	}
}
