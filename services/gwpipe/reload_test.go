package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// writeConfig replaces the configuration file at once (as a deployment
// tool does), so that a reload never reads half of it.
func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func loadTo(p *proc, events int64, instance uint16) loadgen.Config {
	return loadgen.Config{
		URL: p.firehose, AccessKey: firehoseKey, Events: events, Concurrency: 8, Seed: 11, Instance: instance,
		RecordsPerRequest: 20, EventsPerRecord: 50,
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, RetryDuration: time.Minute,
		RequestTimeout: 30 * time.Second,
	}
}

// TestSIGHUPReloadsUnderLoad: SIGHUP to a running `gwpipe run` under
// Firehose load reloads its configuration file: no request is refused, no
// event lost or sent twice, and the new static tags are on every log sent
// after the reload (each log has one set or the other); log.level applies
// at once; a key read only at start is reported by name and not applied;
// an invalid file and one that does not parse are rejected with the
// reason, the running configuration staying; /status shows the last
// reload and the counts; SIGTERM still drains, exit 0.
func TestSIGHUPReloadsUnderLoad(t *testing.T) {
	s, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{ddKey}, Keep: 1_000_000})
	cfgPath := filepath.Join(t.TempDir(), "gwpipe.yaml")
	writeConfig(t, cfgPath, "enrich:\n  tags: [reload:old]\n")
	p := startGwpipeArgs(t, []string{"run", "--config", cfgPath}, base)

	const events = 20_000
	load := loadgen.Start(context.Background(), loadTo(p, events, 0))
	<-load.Flowing // traffic goes through

	// New tags, a quieter log, and a key that needs a restart.
	writeConfig(t, cfgPath, "log:\n  level: warn\nenrich:\n  tags: [reload:new, team:payments]\ndatadog:\n  logs:\n    concurrency: 2\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "SIGHUP received: reloading the configuration", time.Minute)
	p.waitLine(t, `msg="configuration reloaded" applied="[log.level enrich.tags]"`, time.Minute)
	p.waitLine(t, `msg="configuration changes that need a restart were left as they were" keys=[datadog.logs.concurrency]`, time.Minute)

	// Invalid: rejected with the full keys; the running tags stay.
	writeConfig(t, cfgPath, "log:\n  level: warn\nenrich:\n  tags: [reload:bad]\ndatadog:\n  logs:\n    max_batch_logs: 0\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	before := p.waitLine(t, "configuration reload rejected: the running configuration stays", time.Minute)
	for _, l := range before {
		if strings.Contains(l, "SIGHUP received: reloading") {
			t.Errorf("an info line was written at log.level warn: %s", l)
		}
	}
	p.stderrMu.Lock()
	last := p.stderr[len(p.stderr)-1]
	p.stderrMu.Unlock()
	if !strings.Contains(last, "datadog.logs.max_batch_logs: must be 1 to 1000") {
		t.Errorf("the rejection does not say why with the full key: %s", last)
	}
	// A file that does not parse: rejected too.
	writeConfig(t, cfgPath, "enrich:\n  tags: [reload:bad\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "configuration reload rejected: the running configuration stays", time.Minute)

	lr, err := load.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if lr.EventsAcked != events || lr.Retries != 0 {
		t.Fatalf("under reloads: %d of %d events acknowledged, %d retries (%v): a request was refused", lr.EventsAcked, events, lr.Retries, lr.Statuses)
	}
	// Traffic after the reloads.
	rep2, err := loadgen.Run(context.Background(), loadTo(p, 1_000, 1))
	if err != nil || rep2.EventsAcked != 1_000 || rep2.Retries != 0 {
		t.Fatalf("after the reloads: %v, %+v", err, rep2)
	}

	logs := s.Logs()
	if len(logs) != events+1_000 {
		t.Fatalf("intake holds %d logs, want %d: none lost, none twice", len(logs), events+1_000)
	}
	seen := map[string]bool{}
	var old, cur int
	for _, l := range logs {
		id, _ := l.Attrs["id"].(string)
		if seen[id] {
			t.Fatalf("log %s delivered twice", id)
		}
		seen[id] = true
		hasOld, hasNew := slices.Contains(l.Tags, "reload:old"), slices.Contains(l.Tags, "reload:new")
		if hasOld == hasNew || slices.Contains(l.Tags, "reload:bad") || hasNew != slices.Contains(l.Tags, "team:payments") {
			t.Fatalf("log %s has not one set of static tags: %v", id, l.Tags)
		}
		if hasNew {
			cur++
		} else {
			old++
		}
	}
	if cur < 1_000 {
		t.Errorf("only %d logs have the new tags; every log sent after the reload must", cur)
	}
	t.Logf("%d logs with the old tags, %d with the new", old, cur)

	st := p.status()
	counters, _ := st["counters"].(map[string]any)
	if counters["config.reloads.ok"] != 1.0 || counters["config.reloads.rejected"] != 2.0 {
		t.Errorf("reload counters: ok %v, rejected %v; want 1 and 2", counters["config.reloads.ok"], counters["config.reloads.rejected"])
	}
	lastReload, _ := st["last_reload"].(map[string]any)
	if e, _ := lastReload["error"].(string); lastReload["result"] != "rejected" || !strings.Contains(e, "read the configuration") {
		t.Errorf("/status last_reload: %v", lastReload)
	}

	if a := post(p.firehose, "after-hup", 2); a.status != http.StatusOK {
		t.Fatalf("after the reloads a request was answered %d (%s)", a.status, a.message)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
