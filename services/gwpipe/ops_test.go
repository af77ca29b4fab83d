package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/ops/top"
)

// flowing are the stages every event of the demo goes through.
var flowing = []string{"ingest", "decode", "parse", "enrich", "derive", "deliver-logs", "deliver-metrics"}

// gwpipe runs gwpipe with args in a subprocess, its stdout a pipe.
func gwpipe(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = cleanEnv()
	return cmd
}

// TestTopAndTapOnARunningDemo: against a demo under load (a real process),
// the live view's model shows every stage with non-zero rates, gwpipe top
// prints plain lines when its stdout is not a terminal, and gwpipe tap
// prints the events asked for and exits.
func TestTopAndTapOnARunningDemo(t *testing.T) {
	// Metric windows of a second, so that points flow within the test.
	env := cleanEnv("GWPIPE_METRICS_WINDOW=1s", "GWPIPE_METRICS_ALLOWED_LATENESS=0s")
	d := startDemo(t, env, append([]string{"--rate", "3000", "--report", "0"}, anyPort...)...)
	admin := d.waitLine(statusLine)[1]
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGINT)
		d.wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("model", func(t *testing.T) {
		p := &top.Poller{Addrs: []string{admin}, Scrape: top.HTTPScraper(http.DefaultClient, 5*time.Second)}
		m := top.NewModel(ctx, p, time.Second, "gwpipe top")
		// Frames until every stage has been seen with a non-zero rate (the
		// metric points come once a window closes).
		moving := map[string]bool{}
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for len(moving) < len(flowing) {
			select {
			case <-ctx.Done():
				t.Fatalf("stages never seen moving: have %v\n%s", moving, ansi.Strip(m.Text()))
			case <-tick.C:
			}
			f := p.Poll(ctx)
			next, _ := m.Update(top.FrameMsg(f))
			m = next.(top.Model)
			text := ansi.Strip(m.Text())
			for _, st := range flowing {
				// "-" until a second frame gives a rate.
				row := regexp.MustCompile(`(?m)^ ` + regexp.QuoteMeta(st) + ` +(-|[0-9.]+[kMG]?/s) `).FindStringSubmatch(text)
				require.NotNil(t, row, "no row for %s in\n%s", st, text)
				if row[1] != "-" && row[1] != "0/s" {
					moving[st] = true
				}
			}
			for _, section := range []string{"Sources", "firehose", "Delivery to Datadog", "Enrichment", "dlq"} {
				require.Contains(t, text, section)
			}
		}
	})

	t.Run("plain", func(t *testing.T) {
		cmd := gwpipe("top", "--admin", admin, "--interval", "300ms")
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(out)
		line := regexp.MustCompile(`^\d\d:\d\d:\d\d stage=(\S+) in=(\S+)/s out=\S+ in_flight=\d+ queue=\S+ errors=\d+ dead=\d+ broker_dlq=\S+ p99=\S+$`)
		// top prints until interrupted: lines that never match (a format
		// changed) must fail the test, not hang it until go test's timeout.
		giveUp := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
		seen := map[string]bool{}
		var last string
		for len(seen) < 3 && sc.Scan() {
			last = sc.Text()
			if m := line.FindStringSubmatch(last); m != nil && m[2] != "0" {
				seen[m[1]] = true // ingest, decode, parse move at every interval
			}
		}
		require.True(t, giveUp.Stop(), "no plain lines with rates of three stages within a minute; the last line: %q\nstderr: %s", last, stderr.String())
		require.GreaterOrEqual(t, len(seen), 3, "plain lines with rates: %v\nstderr: %s", seen, stderr.String())
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		go func() { _, _ = bufio.NewReader(out).WriteTo(new(bytes.Buffer)) }()
		require.NoError(t, cmd.Wait(), "interrupted is a normal end: %s", stderr.String())
	})

	t.Run("tap", func(t *testing.T) {
		cmd := gwpipe("tap", "--admin", admin, "--topic", "parsed", "--limit", "5")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), stderr.String())
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		require.Len(t, lines, 5)
		for _, l := range lines {
			var ev struct {
				Topic string
				Log   map[string]any
			}
			require.NoError(t, json.Unmarshal([]byte(l), &ev))
			assert.Equal(t, "parsed", ev.Topic)
			assert.Equal(t, "apigateway", ev.Log["ddsource"])
		}
		assert.Equal(t, "tap: 5 events of parsed\n", stderr.String())

		bad := gwpipe("tap", "--admin", admin, "--topic", "nope")
		out, err := bad.CombinedOutput()
		require.Error(t, err)
		assert.Contains(t, string(out), "--topic: want one of raw, decoded, parsed, enriched, metrics, dlq")
	})
}
