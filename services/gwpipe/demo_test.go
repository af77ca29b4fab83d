package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// The tests run gwpipe itself in a subprocess: this test binary, re-executed
// with runMainEnv set, is gwpipe.
const runMainEnv = "GWPIPE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// demoProc is a gwpipe demo running in a subprocess.
type demoProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *bytes.Buffer

	mu    sync.Mutex
	out   []string
	grown chan struct{} // closed and replaced on every line
	eof   bool

	done chan struct{}
	err  error // once done is closed
}

// cleanEnv is the test's environment without any variable gwpipe reads.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GWPIPE_") || strings.HasPrefix(kv, "DD_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, runMainEnv+"=1"), extra...)
}

func startDemo(t *testing.T, env []string, args ...string) *demoProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"demo"}, args...)...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	d := &demoProc{t: t, cmd: cmd, stderr: &bytes.Buffer{}, grown: make(chan struct{}), done: make(chan struct{})}
	cmd.Stderr = d.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.out = append(d.out, sc.Text())
			close(d.grown)
			d.grown = make(chan struct{})
			d.mu.Unlock()
		}
		d.mu.Lock()
		d.eof = true
		close(d.grown)
		d.mu.Unlock()
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// waitLine waits for a line of stdout matching re and returns its groups.
func (d *demoProc) waitLine(re *regexp.Regexp) []string {
	d.t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	seen := 0
	for {
		d.mu.Lock()
		for ; seen < len(d.out); seen++ {
			if m := re.FindStringSubmatch(d.out[seen]); m != nil {
				d.mu.Unlock()
				return m
			}
		}
		eof, grown := d.eof, d.grown
		d.mu.Unlock()
		if eof {
			d.t.Fatalf("gwpipe demo ended without printing %q\nstdout:\n%s\nstderr:\n%s", re, d.stdout(), d.stderr)
		}
		select {
		case <-grown:
		case <-timeout.C:
			d.t.Fatalf("no line matching %q within 30s\nstdout:\n%s", re, d.stdout())
		}
	}
}

func (d *demoProc) stdout() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.out, "\n")
}

// wait waits for the process to exit and returns its exit code.
func (d *demoProc) wait() int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(90 * time.Second):
		d.t.Fatalf("gwpipe demo did not exit\nstdout:\n%s\nstderr:\n%s", d.stdout(), d.stderr)
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		d.t.Fatal(d.err)
	}
	return 0
}

var (
	firehoseLine = regexp.MustCompile(`Firehose endpoint http://([0-9.:]+)/`)
	statusLine   = regexp.MustCompile(`status http://([0-9.:]+)/status`)
	intakeLine   = regexp.MustCompile(`fake Datadog intake http://([0-9.:]+)`)
	deliveredRe  = regexp.MustCompile(`(?m)^  logs delivered \(2xx\)\s+(\d+)$`)
	intakeRe     = regexp.MustCompile(`(?m)^  fake intake accepted\s+(\d+) logs`)
	trafficRe    = regexp.MustCompile(`(?m)^  traffic generated\s+(\d+) events in (\d+) Firehose requests: (\d+) acknowledged`)
)

func figure(t *testing.T, re *regexp.Regexp, out string) int64 {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary lacks %q:\n%s", re, out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// intakeLogs reads the fake intake's count of accepted logs.
func intakeLogs(addr string) (int64, error) {
	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st fakeintake.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	return st.LogsAccepted, nil
}

var anyPort = []string{"--firehose-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--intake-listen", "127.0.0.1:0"}

// A signal while traffic flows (Ctrl-C, or the terminal closing) stops
// everything: every port is free, the summary is printed and counts what
// the intake received, and the exit status is 0.
func TestDemoStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			d := startDemo(t, cleanEnv(), append([]string{"--rate", "2000", "--report", "0"}, anyPort...)...)
			addrs := []string{d.waitLine(firehoseLine)[1], d.waitLine(intakeLine)[1], d.waitLine(statusLine)[1]}
			d.waitLine(regexp.MustCompile(`Ctrl-C stops everything`))

			// Wait until logs reach the intake: traffic is flowing.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if n, err := intakeLogs(addrs[1]); err == nil && n > 0 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("no log reached the intake\nstdout:\n%s\nstderr:\n%s", d.stdout(), d.stderr)
				case <-tick.C:
				}
			}

			if err := d.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := d.wait(); code != 0 {
				t.Fatalf("exit status %d after %s, want 0\nstderr:\n%s", code, sig, d.stderr)
			}
			out := d.stdout()
			if !strings.Contains(out, "gwpipe summary after") {
				t.Fatalf("no summary after %s:\n%s", sig, out)
			}
			delivered, received := figure(t, deliveredRe, out), figure(t, intakeRe, out)
			if delivered == 0 || delivered != received {
				t.Errorf("summary says %d logs delivered, the intake accepted %d", delivered, received)
			}
			if m := trafficRe.FindStringSubmatch(out); m == nil || m[2] != m[3] {
				t.Errorf("every Firehose request sent must be acknowledged after the drain:\n%s", out)
			}
			for _, a := range addrs {
				ln, err := net.Listen("tcp", a)
				if err != nil {
					t.Errorf("%s still taken after gwpipe demo exited: %v", a, err)
					continue
				}
				ln.Close()
			}
		})
	}
}

// A port in use is an error naming the port and the variable that changes
// it, and nothing starts.
func TestDemoPortTaken(t *testing.T) {
	for _, tc := range []struct{ flag, makeVar string }{
		{"--firehose-listen", "FIREHOSE_ADDR"},
		{"--admin-listen", "ADMIN_ADDR"},
		{"--intake-listen", "INTAKE_ADDR"},
	} {
		t.Run(tc.makeVar, func(t *testing.T) {
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			args := append([]string{}, anyPort...)
			for i := 0; i < len(args); i += 2 {
				if args[i] == tc.flag {
					args[i+1] = taken.Addr().String()
				}
			}
			d := startDemo(t, cleanEnv(), args...)
			if code := d.wait(); code == 0 {
				t.Fatal("gwpipe demo exited 0 with a port in use")
			}
			_, port, _ := net.SplitHostPort(taken.Addr().String())
			msg := d.stderr.String()
			for _, want := range []string{"port " + port + " is already in use", tc.makeVar + "=", tc.flag} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if out := d.stdout(); out != "" {
				t.Errorf("something started:\n%s", out)
			}
		})
	}
}

// canary stands for the user's real Datadog account: the HTTP intake and
// a local Agent's DogStatsD port.
type canary struct {
	intake *fakeintake.Server
	url    string
	udp    net.PacketConn
}

func newCanary(t *testing.T, key string) *canary {
	intake, url := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{key}})
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	return &canary{intake: intake, url: url, udp: udp}
}

// env points every Datadog destination of gwpipe at the canary.
func (c *canary) env(key string) []string {
	return cleanEnv("DD_API_KEY="+key,
		"GWPIPE_DATADOG_LOGS_URL="+c.url+"/api/v2/logs", "GWPIPE_DATADOG_API_URL="+c.url,
		"GWPIPE_METRICS_DELIVERY_MODE=dogstatsd", "GWPIPE_METRICS_DELIVERY_DOGSTATSD_ADDR="+c.udp.LocalAddr().String(),
		"GWPIPE_METRICS_TELEMETRY_ENABLED=true", "GWPIPE_METRICS_TELEMETRY_DOGSTATSD_ADDR="+c.udp.LocalAddr().String(),
		"GWPIPE_METRICS_TELEMETRY_INTERVAL=100ms")
}

// packets counts the datagrams already received: the sender has exited and
// loopback delivery is synchronous, so the buffer holds all there will be.
// (A deadline already past fails before reading: the short one only bounds
// the last, empty read.)
func (c *canary) packets(t *testing.T) int {
	t.Helper()
	n := 0
	buf := make([]byte, 65536)
	for {
		if err := c.udp.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.udp.ReadFrom(buf); err != nil {
			return n
		}
		n++
	}
}

// With DD_API_KEY exported, as most Datadog users have it, the demo's
// synthetic traffic stays on the fake intake and the screen says so; only
// --real (make run REAL=1) sends it to the account.
func TestDemoDDAPIKeyNeedsReal(t *testing.T) {
	const userKey = "the-users-real-key"
	const events = "3000"
	t.Run("without --real", func(t *testing.T) {
		c := newCanary(t, userKey)
		d := startDemo(t, c.env(userKey), append([]string{"--events", events, "--rate", "0", "--report", "0"}, anyPort...)...)
		if code := d.wait(); code != 0 {
			t.Fatalf("exit status %d\nstderr:\n%s", code, d.stderr)
		}
		out := d.stdout()
		if !strings.Contains(out, "DD_API_KEY is set, but nothing goes to your Datadog account: delivering to a local fake Datadog intake") ||
			!strings.Contains(out, "make run REAL=1") {
			t.Errorf("the screen does not say the fake intake is used and how to change it:\n%s", out)
		}
		if st := c.intake.Stats(); len(st.Requests) != 0 {
			t.Errorf("the user's Datadog intake got requests: %v", st.Requests)
		}
		if n := c.packets(t); n != 0 {
			t.Errorf("the user's Agent got %d DogStatsD packets", n)
		}
		if got := figure(t, intakeRe, out); strconv.FormatInt(got, 10) != events {
			t.Errorf("the fake intake accepted %d logs, want %s", got, events)
		}
	})
	t.Run("with --real", func(t *testing.T) {
		c := newCanary(t, userKey)
		d := startDemo(t, c.env(userKey), "--real", "--events", events, "--rate", "0", "--report", "0",
			"--firehose-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
		if code := d.wait(); code != 0 {
			t.Fatalf("exit status %d\nstderr:\n%s", code, d.stderr)
		}
		out := d.stdout()
		if !strings.Contains(out, "REAL=1: delivering this synthetic traffic to your Datadog account") {
			t.Errorf("the screen does not say the traffic goes to Datadog:\n%s", out)
		}
		if strings.Contains(out, "fake") {
			t.Errorf("no fake intake runs with --real:\n%s", out)
		}
		if got := c.intake.Stats().LogsAccepted; strconv.FormatInt(got, 10) != events {
			t.Errorf("the user's intake accepted %d logs with their key, want %s", got, events)
		}
		if c.packets(t) == 0 {
			t.Errorf("metrics did not reach the user's Agent\nstderr:\n%s", d.stderr)
		}
	})
	t.Run("--real without DD_API_KEY", func(t *testing.T) {
		d := startDemo(t, cleanEnv(), append([]string{"--real"}, anyPort...)...)
		if code := d.wait(); code == 0 || !strings.Contains(d.stderr.String(), "needs DD_API_KEY") {
			t.Errorf("exit status %d, stderr %q: want a refusal naming DD_API_KEY", code, d.stderr)
		}
	})
}

// make run is bin/gwpipe demo with the Makefile's variables passed as flags.
func TestMakeRunPassesVariables(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vars []string
		want string
	}{
		{nil, "./bin/gwpipe demo"},
		{[]string{"REAL=1", "RATE=250", "FIREHOSE_ADDR=127.0.0.1:1", "ADMIN_ADDR=127.0.0.1:2", "INTAKE_ADDR=127.0.0.1:3"},
			"./bin/gwpipe demo --real --rate '250' --firehose-listen '127.0.0.1:1' --admin-listen '127.0.0.1:2' --intake-listen '127.0.0.1:3'"},
		{[]string{"REAL=0"}, "./bin/gwpipe demo"},
	} {
		cmd := exec.Command("make", append([]string{"-n", "-s", "run"}, tc.vars...)...)
		cmd.Dir = root
		cmd.Env = makeEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n run %v: %v\n%s", tc.vars, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if last := lines[len(lines)-1]; last != tc.want {
			t.Errorf("make run %v runs\n  %s\nwant\n  %s", tc.vars, last, tc.want)
		}
	}
	cmd := exec.Command("make", "-n", "run", "REAL=maybe")
	cmd.Dir = root
	cmd.Env = makeEnv()
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "REAL=1") {
		t.Errorf("REAL=maybe must be refused, got %v: %s", err, out)
	}
}

// makeEnv is the environment without the variables make run reads.
func makeEnv() []string {
	var env []string
	for _, kv := range cleanEnv() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "REAL", "RATE", "FIREHOSE_ADDR", "ADMIN_ADDR", "INTAKE_ADDR", "MAKEFLAGS":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// TestDemoStopsWithinDrainTimeoutWhenTheIntakeStalls: the demo's intake
// stops answering while traffic flows, then SIGTERM: the requests waiting
// are handed back and the load generator's retries have nowhere to go.
// The demo exits within pipeline.drain_timeout (2 s here). It waited two
// more seconds for the load generator after the drain (about 4 s; 6.0 s
// of a 5 s drain_timeout by hand).
func TestDemoStopsWithinDrainTimeoutWhenTheIntakeStalls(t *testing.T) {
	const drain = 2 * time.Second
	d := startDemo(t, cleanEnv("GWPIPE_PIPELINE_DRAIN_TIMEOUT=2s"), append([]string{"--rate", "2000", "--report", "0"}, anyPort...)...)
	intake := d.waitLine(intakeLine)[1]
	d.waitLine(regexp.MustCompile(`Ctrl-C stops everything`))
	stats := func() fakeintake.Stats {
		var st fakeintake.Stats
		resp, err := http.Get("http://" + intake + "/stats")
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	until := func(what string, cond func(fakeintake.Stats) bool) {
		for !cond(stats()) {
			select {
			case <-ctx.Done():
				t.Fatalf("%s never happened\nstderr:\n%s", what, d.stderr)
			case <-tick.C:
			}
		}
	}
	until("a log reaching the intake", func(st fakeintake.Stats) bool { return st.LogsAccepted > 0 })
	resp, err := http.Post("http://"+intake+"/admin/fail", "application/json", strings.NewReader(`{"latency_ms":600000}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	until("a request held by the intake", func(st fakeintake.Stats) bool { return st.DelaysInFlight > 0 })

	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := d.wait()
	took := time.Since(start)
	if code != 0 {
		t.Errorf("exit status %d, want 0 (handing back is a clean exit)\nstderr:\n%s", code, d.stderr)
	}
	// The drain ends by its deadline; printing and exiting take moments.
	if took > drain+500*time.Millisecond {
		t.Errorf("the demo took %s to stop, drain_timeout is %s\nstdout:\n%s", took.Round(time.Millisecond), drain, d.stdout())
	}
	if out := d.stdout(); !strings.Contains(out, "firehose records in") {
		t.Errorf("nothing was handed back: the intake did not hold the drain\n%s", out)
	}
}
