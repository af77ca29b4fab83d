package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
	"github.com/gwpipe/gwpipe/pkg/testkit/syncbuf"
)

// The fleet tests run real gwpipe processes, one per stage worker, joined
// by a real NATS JetStream server, so that a worker can be killed with
// SIGKILL in the middle of the stream.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func gwpipeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gwpipe-fleet")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gwpipe")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/gwpipe/gwpipe/services/gwpipe").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, MaxPayload: 1 << 20})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

type worker struct {
	stage string
	cmd   *exec.Cmd
	admin string
	done  chan struct{}

	stderr syncbuf.Buffer // what it logged (at warn), to say why it did not come up
}

// lastLines is the end of what the worker logged.
func (w *worker) lastLines() string {
	lines := strings.Split(strings.TrimRight(w.stderr.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

type fleet struct {
	t       *testing.T
	env     []string
	intake  *fakeintake.Server
	ingest  string // Firehose endpoint URL
	mu      sync.Mutex
	workers []*worker
}

// broker is the transport a fleet test runs on: the environment every
// worker gets.
type broker struct {
	name string
	env  func(t *testing.T) []string
}

var brokers = []broker{
	{"nats", func(t *testing.T) []string {
		return []string{"GWPIPE_TRANSPORT_KIND=nats", "GWPIPE_TRANSPORT_NATS_URL=" + startNATS(t), "GWPIPE_TRANSPORT_NATS_ACK_WAIT=3s"}
	}},
	{"sqs", func(t *testing.T) []string {
		moto.Start(t) // sets AWS_ENDPOINT_URL and credentials for the workers too
		return []string{"GWPIPE_TRANSPORT_KIND=sqs", "GWPIPE_TRANSPORT_SQS_VISIBILITY_TIMEOUT=5s"}
	}},
}

// eachBroker runs test on a fleet over every broker; not with -short.
func eachBroker(t *testing.T, test func(t *testing.T, env []string)) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) { test(t, b.env(t)) })
	}
}

func newFleet(t *testing.T, brokerEnv []string) *fleet {
	intake, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}, Keep: 1_000_000})
	f := &fleet{t: t, intake: intake, env: append(append(os.Environ(), brokerEnv...),
		"DD_API_KEY="+intakeKey,
		"GWPIPE_DATADOG_LOGS_URL="+base+"/api/v2/logs",
		"GWPIPE_DATADOG_API_URL="+base,
		"GWPIPE_DATADOG_LOGS_RETRY_INITIAL=20ms",
		"GWPIPE_DATADOG_LOGS_RETRY_MAX=200ms",
		"GWPIPE_DATADOG_LOGS_LINGER=10ms",
		"GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="+firehoseKey,
		"GWPIPE_METRICS_ENABLED=false",
		"GWPIPE_ENRICH_AWS_TAGS=false",
		"GWPIPE_DLQ_DIR="+t.TempDir(),
		"GWPIPE_LOG_LEVEL=warn",
	)}
	t.Cleanup(f.stopAll)
	return f
}

func (f *fleet) start(stage string) *worker {
	f.t.Helper()
	var extra []string
	if stage == StageIngest {
		addr := freeAddr(f.t)
		extra = append(extra, "GWPIPE_SOURCES_FIREHOSE_LISTEN="+addr)
		f.ingest = "http://" + addr + "/"
	}
	return f.startWith(stage, extra...)
}

// startWith starts a worker of stage (or stages) with extra environment.
func (f *fleet) startWith(stage string, extra ...string) *worker {
	f.t.Helper()
	w := &worker{stage: stage, admin: freeAddr(f.t), done: make(chan struct{})}
	env := append(append(append([]string(nil), f.env...), "GWPIPE_ADMIN_LISTEN="+w.admin), extra...)
	w.cmd = exec.Command(gwpipeBinary(f.t), "run", "--stages", stage)
	w.cmd.Env = env
	stderr, err := w.cmd.StderrPipe()
	require.NoError(f.t, err)
	require.NoError(f.t, w.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(&w.stderr, sc.Text())
			if testing.Verbose() {
				f.t.Logf("[%s %d] %s", stage, w.cmd.Process.Pid, sc.Text())
			}
		}
		_ = w.cmd.Wait()
		close(w.done)
	}()
	f.mu.Lock()
	f.workers = append(f.workers, w)
	f.mu.Unlock()
	// A worker on SQS creates its queues in moto first, which a loaded
	// machine (make test runs packages side by side) can make slow.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exited := false
	err = waitFor(ctx, func() bool {
		select {
		case <-w.done:
			exited = true
			return true
		default:
		}
		return w.status() != nil
	})
	if err != nil || exited {
		f.t.Fatalf("worker %s did not come up (exited: %v, %v); its last log lines:\n%s", stage, exited, err, w.lastLines())
	}
	return w
}

func (w *worker) status() map[string]any {
	resp, err := http.Get("http://" + w.admin + "/status")
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

// stageBatches is how many batches a worker's stage handled.
func (w *worker) stageBatches() float64 {
	st := w.status()
	if st == nil {
		return 0
	}
	stages, _ := st["stages"].([]any)
	for _, s := range stages {
		m, _ := s.(map[string]any)
		if m["name"] == w.stage {
			v, _ := m["batches"].(float64)
			return v
		}
	}
	return 0
}

func (w *worker) counter(name string) float64 {
	st := w.status()
	if st == nil {
		return 0
	}
	c, _ := st["counters"].(map[string]any)
	v, _ := c[name].(float64)
	return v
}

func (w *worker) rssMiB() float64 {
	u, err := procstat.Of(w.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return float64(u.RSS) / (1 << 20)
}

// stop asks the worker to drain and waits until it has.
func (w *worker) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
}

func (w *worker) kill9() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

func (f *fleet) stopAll() {
	f.mu.Lock()
	ws := f.workers
	f.mu.Unlock()
	for _, w := range ws {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			_ = w.cmd.Process.Kill()
		}
	}
}

// waitDelivered waits until every sent id reached the intake and returns
// how many logs arrived more than once.
func (f *fleet) waitDelivered(t *testing.T, sent map[string]bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var missing []string
	err := waitFor(ctx, func() bool {
		if f.intake.Stats().LogsAccepted < int64(len(sent)) {
			return false
		}
		seen := map[string]bool{}
		for _, l := range f.intake.Logs() {
			seen[logID(l)] = true
		}
		missing = missing[:0]
		for id := range sent {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	require.NoError(t, err, "%d events never delivered (e.g. %v)", len(missing), missing[:min(3, len(missing))])
	return int(f.intake.Stats().LogsAccepted) - len(sent)
}

func runLoad(t *testing.T, url string, events int64, seed int64, rate float64) (map[string]bool, <-chan error) {
	return runLoadMix(t, url, events, seed, rate, loadgen.Mix{JSON: 6, CLF: 2, Exec: 2})
}

func runLoadMix(t *testing.T, url string, events int64, seed int64, rate float64, mix loadgen.Mix) (map[string]bool, <-chan error) {
	var mu sync.Mutex
	sent := map[string]bool{}
	done := make(chan error, 1)
	cfg := loadgen.Config{URL: url, AccessKey: firehoseKey, Events: events, Concurrency: 4, Seed: seed, Rate: rate,
		RecordsPerRequest: 10, EventsPerRecord: 50, Mix: mix,
		InitialBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, RetryDuration: 2 * time.Minute, RequestTimeout: 30 * time.Second}
	go func() {
		rep, err := loadgen.Run(context.Background(), cfg, loadgen.WithEventCallback(func(e *loadgen.Event) {
			mu.Lock()
			sent[e.ID] = true
			mu.Unlock()
		}))
		if err == nil && rep.EventsAcked != events {
			err = fmt.Errorf("only %d of %d events acknowledged: %+v", rep.EventsAcked, events, rep)
		}
		done <- err
	}()
	return sent, done
}

var fleetStages = []string{StageDecode, StageParse, StageEnrich, StageDeliverLogs}

func TestFleetKillNineLosesNothing(t *testing.T) {
	eachBroker(t, testKillNine)
}

func testKillNine(t *testing.T, brokerEnv []string) {
	f := newFleet(t, brokerEnv)
	byStage := map[string][]*worker{}
	for _, s := range fleetStages {
		for i := 0; i < 3; i++ {
			byStage[s] = append(byStage[s], f.start(s))
		}
	}
	f.start(StageIngest)

	const events = 30_000
	sent, done := runLoad(t, f.ingest, events, 11, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.intake.WaitLogs(ctx, events/5), "the fleet delivers")
	// Mid-stream, kill -9 one worker of the two stages that hold the most.
	byStage[StageDecode][0].kill9()
	byStage[StageDeliverLogs][1].kill9()
	require.NoError(t, <-done)

	dupes := f.waitDelivered(t, sent)
	var dropped, fleetDropped float64
	for i, w := range byStage[StageDeliverLogs] {
		if i != 1 { // the one killed
			dropped += w.counter("deliver_logs.duplicates_dropped")
			fleetDropped += w.counter("deliver_logs.fleet.duplicates_dropped")
		}
	}
	// Redelivery after a crash is at-least-once: duplicates are expected,
	// bounded by what the dead workers held, and reported.
	t.Logf("kill -9 mid-stream: %d events, 0 lost, %d duplicates at the intake, %.0f duplicates dropped by surviving workers (%.0f as batches another worker delivered)",
		events, dupes, dropped+fleetDropped, fleetDropped)
	assert.Less(t, dupes, events/2, "duplicates are bounded by the work in flight")
}

func TestFleetIntakeOutageLosesNothingMemoryFlat(t *testing.T) {
	eachBroker(t, testIntakeOutage)
}

func testIntakeOutage(t *testing.T, brokerEnv []string) {
	f := newFleet(t, brokerEnv)
	var delivers []*worker
	for _, s := range fleetStages {
		for i := 0; i < 3; i++ {
			w := f.start(s)
			if s == StageDeliverLogs {
				delivers = append(delivers, w)
			}
		}
	}
	f.start(StageIngest)
	require.NoError(t, f.intake.SetFailure(fakeintake.Failure{Status: 503}))

	const events = 20_000
	sent, done := runLoad(t, f.ingest, events, 12, 0)
	// While the intake is down, the backlog waits on the broker, not in the
	// workers' memory.
	require.NoError(t, <-done, "ingest acknowledges once the broker holds the records")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.FailuresInjected >= 30 }))
	for _, w := range delivers {
		assert.Less(t, w.rssMiB(), 200.0, "deliver worker memory stays bounded during the outage")
	}
	assert.Zero(t, f.intake.Stats().LogsAccepted)

	f.intake.ClearFailure()
	dupes := f.waitDelivered(t, sent)
	t.Logf("intake outage: %d events, 0 lost, %d duplicates", events, dupes)
}

func TestFleetScalesOutWithoutCoordination(t *testing.T) {
	eachBroker(t, testScaleOut)
}

func testScaleOut(t *testing.T, brokerEnv []string) {
	f := newFleet(t, brokerEnv)
	first := f.start(StageDecode)
	for _, s := range fleetStages[1:] {
		f.start(s)
	}
	f.start(StageIngest)
	// A steady stream, so that there is work left when workers join.
	const events = 30_000
	sent, done := runLoad(t, f.ingest, events, 13, 2000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.intake.WaitLogs(ctx, 2000))
	require.Positive(t, first.stageBatches())
	// Two more decode workers join the consumer group mid-stream. The first
	// one is paused meanwhile, so that work waits on the broker whatever
	// the machine's load: on a busy machine the first worker could
	// otherwise drain each message as it arrives, and whether a joiner got
	// any would be a race rather than what is tested.
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGSTOP))
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			require.NoError(t, first.cmd.Process.Signal(syscall.SIGCONT))
		}
	}
	defer resume()
	added := []*worker{f.start(StageDecode), f.start(StageDecode)}
	for _, w := range added {
		require.NoError(t, waitFor(ctx, func() bool { return w.stageBatches() > 0 }),
			"a worker that joined takes a share of the work")
	}
	resume()
	require.NoError(t, <-done)
	f.waitDelivered(t, sent)
}

// A worker that runs several consecutive stages hands batches from one to
// the next in memory and publishes only at the end of its run of stages;
// nothing is lost and every stage still counts its work.
func TestFleetFusedStages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	f := newFleet(t, brokers[0].env(t))
	fused := []*worker{f.start("decode,parse,enrich"), f.start("decode,parse,enrich")}
	f.start(StageDeliverLogs)
	f.start(StageIngest)
	const events = 10_000
	sent, done := runLoad(t, f.ingest, events, 14, 0)
	require.NoError(t, <-done)
	assert.Zero(t, f.waitDelivered(t, sent), "no redelivery: no duplicates")
	assert.Positive(t, batchesOf(fused, StageParse), "the parse stage ran inside the fused workers")
}

// batchesOf is how many batches one stage handled across workers that run
// several stages.
func batchesOf(workers []*worker, stage string) float64 {
	var n float64
	for _, w := range workers {
		w.stage = stage
		n += w.stageBatches()
	}
	return n
}

// A worker that runs some of a topic's consumers (derive, after enrich)
// hands batches to them in memory and publishes only for the consumers
// that run elsewhere (deliver-logs), addressed to that group alone: every
// log is delivered once, and the request count derived in the fused
// workers is exact.
func TestFleetPartlyFusedTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	env := brokers[0].env(t)
	f := newFleet(t, env)
	f.env = append(f.env, "GWPIPE_METRICS_ENABLED=true") // the last value of a variable wins
	fused := []*worker{f.start("decode,parse,enrich,derive"), f.start("decode,parse,enrich,derive")}
	logs := f.start(StageDeliverLogs)
	f.start(StageDeliverMetrics)
	f.start(StageIngest)
	const events = 6_000
	sent, done := runLoadMix(t, f.ingest, events, 21, 0, loadgen.Mix{JSON: 1})
	require.NoError(t, <-done)
	assert.Zero(t, f.waitDelivered(t, sent), "no duplicates")

	assert.Positive(t, batchesOf(fused, StageDerive), "derive ran inside the fused workers")
	assert.Positive(t, batchesOf([]*worker{logs}, StageDeliverLogs), "deliver-logs got the enriched batches through the broker")
	js := fleetJetStream(t, env)
	delivered := func(group string) uint64 {
		c, err := js.Consumer(context.Background(), "enriched", stage.ConsumerName(group, "enriched"))
		require.NoError(t, err)
		info, err := c.Info(context.Background())
		require.NoError(t, err)
		return info.Delivered.Consumer
	}
	assert.Zero(t, delivered(StageDerive), "derive read nothing from the broker: it ran in memory after enrich")
	assert.Positive(t, delivered(StageDeliverLogs))

	// Stopping the fused workers flushes their open metric windows, which
	// deliver-metrics (still running) delivers.
	for _, w := range fused {
		w.stop()
	}
	count := func() float64 {
		var n float64
		for _, p := range f.intake.Series() {
			if p.Metric == derive.DefaultNamespace+derive.NameCount {
				n += p.Value
			}
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = waitFor(ctx, func() bool { return count() >= events })
	assert.Equal(t, float64(events), count(), "every access log counted once")
}

// The two-tier layouts: the front workers share the Firehose port
// (sources.firehose.reuse_port) and run ingest (and, with the hop before
// delivery, the stages up to enrich); the back workers run the rest. kill
// -9 of one worker of each tier mid-stream loses nothing: the Firehose
// sender's retries reach the surviving front worker, and the broker
// redelivers what the dead ones held.
func TestFleetTwoTiersKillNineLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	for _, layout := range []struct{ name, front, back, frontStage string }{
		{"hop before delivery", "ingest,decode,parse,enrich", StageDeliverLogs, StageDecode},
		{"hop after ingest", StageIngest, "decode,parse,enrich,deliver-logs", StageIngest},
	} {
		t.Run(layout.name, func(t *testing.T) {
			f := newFleet(t, brokers[0].env(t))
			addr := freeAddr(t)
			shared := []string{"GWPIPE_SOURCES_FIREHOSE_LISTEN=" + addr, "GWPIPE_SOURCES_FIREHOSE_REUSE_PORT=true"}
			front := []*worker{f.startWith(layout.front, shared...), f.startWith(layout.front, shared...)}
			back := []*worker{f.start(layout.back), f.start(layout.back)}
			f.ingest = "http://" + addr + "/"

			const events = 30_000
			sent, done := runLoad(t, f.ingest, events, 17, 10_000) // ~3 s of traffic, to kill in the middle of
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, f.intake.WaitLogs(ctx, events/5), "the fleet delivers")
			// Kill the busier front worker (the kernel may have given one
			// worker all of the sender's connections); the sender's retries
			// then reach the other.
			if batchesOf(front[1:], layout.frontStage) > batchesOf(front[:1], layout.frontStage) {
				front[0], front[1] = front[1], front[0]
			}
			before := batchesOf(front[1:], layout.frontStage)
			front[0].kill9()
			back[1].kill9()
			require.NoError(t, <-done, "every request is eventually acknowledged by the surviving worker")

			dupes := f.waitDelivered(t, sent)
			t.Logf("two tiers (%s), kill -9 mid-stream: %d events, 0 lost, %d duplicates at the intake, %.0f dropped by the surviving deliver-logs",
				layout.name, events, dupes, back[0].counter("deliver_logs.duplicates_dropped"))
			assert.Less(t, dupes, events/2, "duplicates are bounded by the work in flight")
			assert.Greater(t, batchesOf(front[1:], layout.frontStage), before, "the surviving worker took the work")
		})
	}
}

// fleetJetStream connects, for the test's life, to the nats-server a fleet
// started with env uses.
func fleetJetStream(t *testing.T, env []string) jetstream.JetStream {
	t.Helper()
	var natsURL string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GWPIPE_TRANSPORT_NATS_URL="); ok {
			natsURL = v
		}
	}
	nc, err := nats.Connect(natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}
