package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj/s3objtest"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// The state that must outlive a worker — dead letters, replay
// checkpoints, the CloudWatch poller's periods, the Firehose request ids —
// tested with real gwpipe processes killed with SIGKILL, moto_server's S3
// and a real NATS server.

// s3Letters reads every dead letter of an S3 archive: how many times each
// event id is there.
func s3Letters(t *testing.T, c *s3.Client, bucket, prefix string) map[string]int {
	t.Helper()
	ctx := context.Background()
	got := map[string]int{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, dlq.S3Suffix) {
				continue
			}
			obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			require.NoError(t, err)
			zr, err := gzip.NewReader(obj.Body)
			require.NoError(t, err, key)
			_, err = dlq.Read(zr, func(e dlq.Entry) error { got[e.EventID]++; return nil })
			obj.Body.Close()
			require.NoError(t, err, key)
		}
	}
	return got
}

// postFirehose sends one Firehose request; safe from any goroutine.
func postFirehose(url, reqID string, body []byte) (int, error) {
	req, err := newFirehoseRequest(url, reqID, body)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Dead letters written to S3 (dlq.url) survive kill -9 of the workers that
// wrote them — one killed while dead-lettering, then all. A replay of the
// archive (--dlq s3://…) while the intake still refuses them puts them in
// a new archive under the prefix, never rewriting the objects read; once
// the intake accepts, a replay delivers each exactly once; a further
// replay sends nothing.
func TestFleetDeadLettersInS3SurviveKillNineAndReplayOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	a := startAWS(t)
	a.bucket(t, "letters")
	f := newFleet(t, brokers[0].env(t))
	f.env = append(f.env, "GWPIPE_DLQ_URL=s3://letters/dlq/", "GWPIPE_DLQ_LINGER=50ms")
	front := f.start("decode,parse,enrich")
	delivery := []*worker{f.start(StageDeliverLogs), f.start(StageDeliverLogs)}
	ingest := f.start(StageIngest)
	// The intake refuses every log: deliver-logs isolates each and
	// dead-letters it.
	require.NoError(t, f.intake.SetFailure(fakeintake.Failure{Status: 400, Endpoints: []fakeintake.Endpoint{fakeintake.EndpointLogs}}))

	var ids []string
	for r := range 30 {
		var batch []string
		for i := range 5 {
			batch = append(batch, fmt.Sprintf("letter-%02d-%d", r, i))
		}
		ids = append(ids, batch...)
		reqID := fmt.Sprintf("dl-%d", r)
		status, _ := firehoseRequest(t, f.ingest, reqID, recordsBody(reqID, gz(envelope(batch...))), nil)
		require.Equal(t, http.StatusOK, status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	archived := func() int { return len(s3Letters(t, a.s3, "letters", "dlq/")) }
	require.NoError(t, waitFor(ctx, func() bool { return archived() >= len(ids)/3 }), "dead letters reach S3")
	delivery[0].kill9() // mid-way: the broker redelivers what it held to the other
	require.NoError(t, waitFor(ctx, func() bool { return archived() == len(ids) }), "every letter archived")
	for _, w := range []*worker{front, delivery[1], ingest} {
		w.kill9()
	}
	letters := s3Letters(t, a.s3, "letters", "dlq/")
	for _, id := range ids {
		require.GreaterOrEqual(t, letters[id], 1, "letter %s survived its workers", id)
	}
	copies := 0
	for _, n := range letters {
		copies += n
	}
	t.Logf("%d letters archived in S3 as %d entries (a redelivery after kill -9 may archive one twice)", len(letters), copies)

	e := &replayEnv{intake: f.intake, cfg: config.DefaultConfig(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e.cfg.Datadog.APIKey = intakeKey
	e.cfg.Datadog.LogsURL, e.cfg.Datadog.APIURL = f.intakeBase()+"/api/v2/logs", f.intakeBase()
	e.cfg.Datadog.Logs.Backoff.InitialInterval, e.cfg.Datadog.Logs.Backoff.MaxInterval = 10*time.Millisecond, 50*time.Millisecond
	e.cfg.Metrics.Enabled = false
	e.cfg.Enrich.AWSTags = false
	e.cfg.DLQ.Dir = t.TempDir()

	// Replayed while the intake still refuses them: the letters fail again
	// and go to a new archive under the prefix, never into the objects read.
	before := map[string]string{}
	list := func() []s3types.Object {
		out, err := a.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("letters"), Prefix: aws.String("dlq/")})
		require.NoError(t, err)
		return out.Contents
	}
	for _, o := range list() {
		before[aws.ToString(o.Key)] = aws.ToString(o.ETag)
	}
	failed, err := e.run(t, ctx, func(r *config.Replay) { r.DLQ = "s3://letters/dlq/" }, ReplayOptions{})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(failed.FailedAgainIn, "s3://letters/dlq/replay-"), "failed again in %q", failed.FailedAgainIn)
	assert.EqualValues(t, len(ids), failed.DeadLettered)
	for _, o := range list() {
		if etag, ok := before[aws.ToString(o.Key)]; ok {
			assert.Equal(t, etag, aws.ToString(o.ETag), "%s is never rewritten", aws.ToString(o.Key))
		}
	}
	again := s3Letters(t, a.s3, "letters", strings.TrimPrefix(failed.FailedAgainIn, "s3://letters/"))
	assert.Len(t, again, len(ids), "every letter is in the new archive")
	assert.Zero(t, f.intake.Stats().LogsAccepted)

	f.intake.ClearFailure()
	res, err := e.run(t, ctx, func(r *config.Replay) { r.DLQ = "s3://letters/dlq/" }, ReplayOptions{})
	require.NoError(t, err)
	assert.True(t, res.Ledger)
	assert.Empty(t, res.FailedAgainIn)
	delivered := map[string]int{}
	for _, l := range f.intake.Logs() {
		delivered[logID(l)]++
	}
	for _, id := range ids {
		require.Equal(t, 1, delivered[id], "letter %s delivered exactly once", id)
	}
	assert.Len(t, delivered, len(ids), "nothing else")

	last, err := e.run(t, ctx, func(r *config.Replay) { r.DLQ = "s3://letters/dlq/" }, ReplayOptions{})
	require.NoError(t, err)
	assert.Zero(t, last.Sent, "a further replay sends nothing")
	assert.EqualValues(t, len(ids), f.intake.Stats().LogsAccepted)
	var markers int
	out, err := a.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("letters"), Prefix: aws.String("dlq/")})
	require.NoError(t, err)
	for _, o := range out.Contents {
		if strings.HasSuffix(aws.ToString(o.Key), ".replayed") {
			markers++
		}
	}
	assert.Positive(t, markers, "the ledger is <key>.replayed objects beside the archive's")
}

// intakeBase is the fake intake's base URL, as the workers use it.
func (f *fleet) intakeBase() string {
	for _, kv := range f.env {
		if v, ok := strings.CutPrefix(kv, "GWPIPE_DATADOG_API_URL="); ok {
			return v
		}
	}
	return ""
}

// replayProc is a `gwpipe replay` process.
type replayProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan error
}

func startReplay(t *testing.T, env []string, args ...string) *replayProc {
	t.Helper()
	r := &replayProc{cmd: exec.Command(gwpipeBinary(t), append([]string{"replay"}, args...)...), done: make(chan error, 1)}
	r.cmd.Env = env
	r.cmd.Stdout = &r.stdout
	stderr, err := r.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if testing.Verbose() {
				t.Logf("[replay %d] %s", r.cmd.Process.Pid, sc.Text())
			}
		}
		r.done <- r.cmd.Wait()
	}()
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

// A replay whose checkpoint is in S3 resumes after kill -9 in another
// process (a pod restarted elsewhere): it waits for the dead one's lease
// to expire, then sends only what the checkpoint does not hold — what the
// dead one delivered in its last second before the kill at most. While a
// replay runs, a second one with the same checkpoint is refused.
func TestFleetReplayCheckpointInS3ResumesAfterKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts replay processes")
	}
	a := startAWS(t)
	a.bucket(t, "archive")
	a.bucket(t, "state")
	arch, err := s3objtest.FirehoseArchive(31, 12_000, 2_000, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	events := len(arch.Events)
	ctx := context.Background()
	for i, o := range arch.Objects {
		_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("archive"), Key: aws.String(fmt.Sprintf("fh/obj-%02d", i)), Body: bytes.NewReader(o)})
		require.NoError(t, err)
	}
	intake, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}, Keep: 1_000_000})
	env := append(os.Environ(), "DD_API_KEY="+intakeKey, "GWPIPE_DATADOG_LOGS_URL="+base+"/api/v2/logs", "GWPIPE_DATADOG_API_URL="+base,
		"GWPIPE_DATADOG_LOGS_LINGER=10ms", "GWPIPE_METRICS_ENABLED=false", "GWPIPE_ENRICH_AWS_TAGS=false",
		"GWPIPE_DLQ_DIR="+t.TempDir(), "GWPIPE_LOG_LEVEL=warn", "GWPIPE_REPLAY_LEASE_TTL=2s")
	args := []string{"--bucket", "archive", "--prefix", "fh/", "--from", "-3h", "--select-by", "none", "--rate", "2000", "--concurrency", "2",
		"--checkpoint", "s3://state/replays/r1.json"}

	first := startReplay(t, env, args...)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, intake.WaitLogs(wctx, events/5), "the first replay delivers")
	checkpointed := func() bool {
		_, err := a.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("state"), Key: aws.String("replays/r1.json")})
		return err == nil
	}
	require.NoError(t, waitFor(wctx, checkpointed), "the checkpoint is saved in S3 (every second)")

	second := startReplay(t, env, args...)
	select {
	case err := <-second.done:
		require.Error(t, err, "a second replay of the same checkpoint is refused")
		assert.Equal(t, 1, second.cmd.ProcessState.ExitCode())
	case <-time.After(30 * time.Second):
		t.Fatal("the second replay neither ran nor was refused")
	}
	assert.Zero(t, second.stdout.Len(), "it did nothing to report")

	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.done
	before := intake.Stats().LogsAccepted
	require.Less(t, before, int64(events), "killed before the end")

	killed := time.Now()
	third := startReplay(t, env, args...)
	select {
	case err := <-third.done:
		require.NoError(t, err, "the restarted replay completes: %s", third.stdout.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("the restarted replay did not finish")
	}
	t.Logf("restarted replay finished %s after the kill:\n%s", time.Since(killed).Round(time.Millisecond), third.stdout.String())
	m := regexp.MustCompile(`already sent\s+(\d+)`).FindStringSubmatch(third.stdout.String())
	require.NotNil(t, m)
	already, _ := strconv.Atoi(m[1])
	assert.Positive(t, already, "it resumed from the checkpoint, not from the start")

	seen := map[string]int{}
	for _, l := range intake.Logs() {
		seen[logID(l)]++
	}
	for _, ev := range arch.Events {
		require.GreaterOrEqual(t, seen[ev.ID], 1, "event %s delivered", ev.ID)
	}
	dupes := int(intake.Stats().LogsAccepted) - len(seen)
	t.Logf("kill -9 mid-replay: %d events, %d delivered before the kill, %d sent again (acknowledged after the last checkpoint save)", events, before, dupes)
	// The checkpoint is saved every second: at most what the dead replay
	// delivered in its last second or so (2000 events/s, and its burst) is
	// sent again.
	assert.LessOrEqual(t, dupes, 3*2000)
	assert.LessOrEqual(t, int64(dupes), before-int64(already))
}

// Two workers running the CloudWatch poller with their state in a shared
// store: exactly one polls the account and region (the other stands by);
// kill -9 of that one hands the target to the other within the lease
// time; no period is skipped, and none is delivered twice but the last
// window of the killed worker, when it died after its points were
// delivered and before it recorded them (at least once across a kill -9).
func TestFleetPollerReplicasPollOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	for _, store := range []string{"s3", "nats-kv"} {
		t.Run(store, func(t *testing.T) { testPollerReplicas(t, store) })
	}
}

func testPollerReplicas(t *testing.T, store string) {
	a := startAWS(t)
	ctx := context.Background()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	require.NoError(t, err)
	base := time.Now().Truncate(time.Minute)
	var data []cwtypes.MetricDatum
	for m := 2; m <= 12; m++ {
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String("Count"), Timestamp: aws.Time(base.Add(-time.Duration(m) * time.Minute)), Values: []float64{float64(m)}})
	}
	putPetstore(t, awsCfg, data...)

	env := brokers[0].env(t)
	f := newFleet(t, env)
	stateURL := "nats-kv://gwpipe-cwpoller"
	if store == "s3" {
		a.bucket(t, "state")
		stateURL = "s3://state/cwpoller/"
	}
	const ttl = 2 * time.Second
	f.env = append(f.env, "GWPIPE_METRICS_ENABLED=true", "GWPIPE_METRICS_POLLER_TARGETS=123456789012:us-east-1",
		"GWPIPE_METRICS_POLLER_INTERVAL=1s", "GWPIPE_METRICS_POLLER_LAG=1s", "GWPIPE_METRICS_POLLER_STATE_URL="+stateURL,
		"GWPIPE_METRICS_POLLER_LEASE_TTL="+ttl.String())
	all := strings.Join(StageNames(), ",")
	replicas := []*worker{
		f.startWith(all, "GWPIPE_SOURCES_FIREHOSE_LISTEN="+freeAddr(t)),
		f.startWith(all, "GWPIPE_SOURCES_FIREHOSE_LISTEN="+freeAddr(t)),
	}
	points := func() map[int64]int {
		got := map[int64]int{}
		for _, p := range f.intake.Series() {
			if p.Metric == "aws.apigateway.count" {
				got[p.Timestamp]++
			}
		}
		return got
	}
	recorded := pollerRecorded(t, store, a, env)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, waitFor(wctx, func() bool { return len(points()) >= 10 }), "the polled points arrive: %v", points())
	polls := func(w *worker) float64 { return w.counter("cwpoller.polls") }
	// Which worker polls is known once the other has found the target held
	// by its second poll (its first may come before either took the lease,
	// and a worker's first poll may come before its own lease is taken: both
	// count as standing by): waited for, not read at one moment.
	var holder, standby *worker
	require.NoError(t, waitFor(wctx, func() bool {
		for i, w := range replicas {
			other := replicas[1-i]
			if polls(w) > 0 && polls(other) == 0 && other.counter("cwpoller.standby") >= 2 {
				holder, standby = w, other
				return true
			}
		}
		return false
	}), "one worker polls the target; the other stands by: polls %v and %v, standby %v and %v",
		polls(replicas[0]), polls(replicas[1]), replicas[0].counter("cwpoller.standby"), replicas[1].counter("cwpoller.standby"))

	// Where the holder's state stands as it dies: a period it delivered
	// from there on was not recorded, and the survivor fetches it again.
	before := recorded()
	holder.kill9()
	killed := time.Now()
	require.NoError(t, waitFor(wctx, func() bool { return polls(standby) > 0 }), "the other worker takes the target over")
	took := time.Since(killed)
	t.Logf("%s: the standby polled %s after the holder's kill -9 (lease TTL %s)", store, took.Round(time.Millisecond), ttl)
	// The takeover within TTL·1.5 is held exactly by the lease's and the
	// poller's tests on synctest's clock. Here, real processes on a loaded
	// CI machine stretch it (a poll interval, the processes' pace, the
	// status polling); the bound says the configured TTL was used, well
	// under the default 30 s.
	assert.Less(t, took, 15*time.Second, "taken over within the lease time")
	// A poll emits only once the one before it is over, and a poll is
	// over once the metrics API accepted its points: with the survivor's
	// third poll begun, what its first two fetched — the dead holder's
	// unrecorded window among it — is at the intake.
	require.NoError(t, waitFor(wctx, func() bool { return polls(standby) >= 3 }))
	got := points()
	var stamps []int64
	for ts, n := range got {
		stamps = append(stamps, ts)
		if n > 1 {
			assert.Equal(t, 2, n, "the period at %s delivered %d times", time.Unix(ts, 0).UTC(), n)
			assert.GreaterOrEqual(t, ts, before, "the period at %s delivered twice: only the killed worker's last window, never recorded (its state ended at %s), may be",
				time.Unix(ts, 0).UTC(), time.Unix(before, 0).UTC())
		}
	}
	slices.Sort(stamps)
	for i := 1; i < len(stamps); i++ {
		assert.Equal(t, stamps[i-1]+60, stamps[i], "no period skipped: %v", stamps)
	}
	assert.GreaterOrEqual(t, len(stamps), 10, "every minute with data: %v", stamps)
}

// pollerRecorded returns a reader of where the poller's shared state
// stands for the fleet's target: the end (Unix seconds) of the last period
// recorded, 0 before any.
func pollerRecorded(t *testing.T, store string, a *awsEnv, env []string) func() int64 {
	t.Helper()
	var st cas.Store
	if store == "s3" {
		st = cas.NewS3(a.s3, "state", "cwpoller/")
	} else {
		js := fleetJetStream(t, env)
		// The workers created the bucket as they started: bound to as it
		// is, its configuration left alone.
		kv, err := js.KeyValue(context.Background(), "gwpipe-cwpoller")
		require.NoError(t, err)
		st = cas.NewKV(kv)
	}
	key := cwpoller.StateKey(cwpoller.Target{Account: "123456789012", Region: "us-east-1"})
	return func() int64 {
		t.Helper()
		data, _, err := st.Get(context.Background(), key)
		if errors.Is(err, cas.ErrNotFound) {
			return 0
		}
		require.NoError(t, err)
		var doc struct {
			Periods map[string]int64 `json:"periods"`
		}
		require.NoError(t, json.Unmarshal(data, &doc))
		var end int64
		for _, e := range doc.Periods {
			end = max(end, e)
		}
		return end
	}
}

// Firehose retries that a load balancer sends to the other ingest worker:
// with the fleet's request ids (transport.fleet_dedup) nothing is
// delivered twice; without, the retries' records go through again. The
// duplicate rates of both are reported.
func TestFleetFirehoseRetriesOnAnotherWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet of processes")
	}
	withFleet := retriesAcrossIngestWorkers(t, true)
	without := retriesAcrossIngestWorkers(t, false)
	t.Logf("retries on the other ingest worker: %d duplicates at the intake without fleet-wide request ids (%.1f%%), %d with",
		without.dupes, 100*float64(without.dupes)/float64(without.events), withFleet.dupes)
	assert.Zero(t, withFleet.dupes, "no retry delivered twice")
	assert.Positive(t, withFleet.answered, "retries answered from what the fleet knows")
	assert.Positive(t, without.dupes, "the measure can fail: without, retries are delivered twice")
}

type retryOutcome struct {
	events, dupes int
	answered      float64 // retries answered from the fleet
}

func retriesAcrossIngestWorkers(t *testing.T, fleetDedup bool) retryOutcome {
	f := newFleet(t, brokers[0].env(t))
	f.env = append(f.env, "GWPIPE_TRANSPORT_FLEET_DEDUP_ENABLED="+strconv.FormatBool(fleetDedup))
	f.start("decode,parse,enrich")
	f.start(StageDeliverLogs)
	f.start(StageDeliverLogs)
	addrA, addrB := freeAddr(t), freeAddr(t)
	ingest := []*worker{
		f.startWith(StageIngest, "GWPIPE_SOURCES_FIREHOSE_LISTEN="+addrA),
		f.startWith(StageIngest, "GWPIPE_SOURCES_FIREHOSE_LISTEN="+addrB),
	}
	urls := []string{"http://" + addrA + "/", "http://" + addrB + "/"}
	const requests, perRequest = 60, 10
	sent := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*requests)
	for r := range requests {
		var ids []string
		for i := range perRequest {
			id := fmt.Sprintf("retry-%v-%03d-%d", fleetDedup, r, i)
			ids = append(ids, id)
			sent[id] = true
		}
		reqID := fmt.Sprintf("req-%v-%d", fleetDedup, r)
		body := recordsBody(reqID, gz(envelope(ids...)))
		first, retry := urls[r%2], urls[(r+1)%2]
		send := func(url string) {
			status, err := postFirehose(url, reqID, body)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("request %s to %s: status %d", reqID, url, status)
			}
			errs <- err
		}
		if r%2 == 0 {
			// The retry arrives while the first attempt is still in flight
			// (the load balancer timed out on it).
			wg.Go(func() { send(first) })
			wg.Go(func() { send(retry) })
		} else {
			// The retry arrives after the first attempt was answered (the
			// answer was lost on the way back).
			send(first)
			send(retry)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	dupes := f.waitDelivered(t, sent)
	// Late duplicates would still be on their way: let the fleet drain.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = f.intake.Wait(ctx, func(s fakeintake.Stats) bool { return s.LogsAccepted > int64(len(sent)+dupes) })
	dupes = int(f.intake.Stats().LogsAccepted) - len(sent)
	var answered float64
	for _, w := range ingest {
		answered += w.counter("firehose.fleet.duplicate_requests")
	}
	f.stopAll()
	return retryOutcome{events: len(sent), dupes: dupes, answered: answered}
}

// TestNewReachesNoSharedState: New reaches none of the state a fleet
// shares — the S3 archive, the poller's state and leases in NATS
// key-value, the fleet-wide de-duplication — whose stores are out of
// reach; /status names the archive all the same. Start names what it
// could not reach, and a Shutdown after it is clean.
func TestNewReachesNoSharedState(t *testing.T) {
	cfg := unreachable(t, "http://127.0.0.1:1")
	cfg.Transport.Kind, cfg.Transport.NATS.URL = "nats", "nats://127.0.0.1:1"
	cfg.Transport.FleetDedup.Enabled = true
	cfg.DLQ.URL = "s3://state/dlq/"
	cfg.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
	cfg.Metrics.Poller.StateURL = "nats-kv://gwpipe-cwpoller"
	p, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	assert.Equal(t, "s3://state/dlq/", p.Status().DeadLetterDir, "/status names the archive before Start")
	assert.Nil(t, p.archive, "New opened the archive")
	assert.Nil(t, p.fleet.nc, "New connected to the shared stores")

	err = p.Start(context.Background())
	require.Error(t, err)
	assert.ErrorContains(t, err, "connect the transport (transport.kind nats)")
	assert.NoError(t, p.Shutdown(context.Background()))
}
