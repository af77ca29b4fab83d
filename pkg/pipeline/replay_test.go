package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sources/replay"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj/s3objtest"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// replayEnv is an intake and a configuration for `gwpipe replay`.
type replayEnv struct {
	intake *fakeintake.Server
	cfg    config.Config
	log    *slog.Logger
}

func newReplayEnv(tb testing.TB, keep int) *replayEnv {
	intake, base := fakeintake.NewTestServer(tb, fakeintake.Config{APIKeys: []string{intakeKey}, Keep: keep})
	cfg := intakeConfig(base)
	cfg.DLQ.Dir = tb.TempDir()
	log := testLogger()
	return &replayEnv{intake: intake, cfg: cfg, log: log}
}

// nullIntake sends logs and metrics to an intake that only reads the
// request body and accepts it: the CPU and memory of Datadog's side, which
// the strict fake intake spends decompressing and parsing every log and
// metric point, are not gwpipe's.
func (e *replayEnv) nullIntake(tb testing.TB) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		switch {
		case strings.HasSuffix(r.URL.Path, "/series"):
			_, _ = io.WriteString(w, `{"errors":[]}`)
		case strings.HasSuffix(r.URL.Path, "/distribution_points"):
			_, _ = io.WriteString(w, `{"status":"ok"}`)
		default:
			_, _ = io.WriteString(w, "{}")
		}
	}))
	tb.Cleanup(srv.Close)
	e.cfg.Datadog.LogsURL = srv.URL + "/api/v2/logs"
	e.cfg.Datadog.APIURL = srv.URL
}

func (e *replayEnv) run(tb testing.TB, ctx context.Context, mutate func(*config.Replay), opts ReplayOptions) (ReplayResult, error) {
	tb.Helper()
	cfg := e.cfg
	mutate(&cfg.Replay)
	return Replay(ctx, cfg, opts, e.log)
}

// TestReplayArchiveByTimeRange replays, by time range, the archive the real
// chain left in S3 (CloudWatch Logs → subscription → Firehose → S3): every
// event of the range exactly once, tagged replay:true, nothing else. A dry
// run first counts the same events and sends nothing.
func TestReplayArchiveByTimeRange(t *testing.T) {
	a := startAWS(t)
	group, stream := "API-Gateway-Access_a1b2c3d4e5/prod", "access"
	a.cloudWatchChain(t, "gw-archive", group, stream)
	now := time.Now()
	// 30,000 events over the last three hours.
	sent := a.putEvents(t, group, stream, 30_000, 5_000, now.Add(-3*time.Hour), 360*time.Millisecond)
	from, to := now.Add(-2*time.Hour).Truncate(time.Second), now.Add(-time.Hour).Truncate(time.Second)
	want := map[string]int64{}
	for msg, ts := range sent {
		if ts >= from.UnixMilli() && ts < to.UnixMilli() {
			want[msg] = ts
		}
	}
	require.NotEmpty(t, want)

	e := newReplayEnv(t, 100_000)
	rng := func(r *config.Replay) {
		r.Bucket, r.Prefix = "gw-archive", "firehose/"
		r.From, r.To = from.Format(time.RFC3339), to.Format(time.RFC3339)
	}
	ctx := context.Background()
	var bar bytes.Buffer
	dry, err := e.run(t, ctx, rng, ReplayOptions{DryRun: true, Progress: &bar})
	require.NoError(t, err)
	assert.EqualValues(t, len(want), dry.Sent, "the dry run counts what would be sent")
	assert.EqualValues(t, len(sent), dry.Events)
	assert.Zero(t, e.intake.Stats().LogsAccepted, "a dry run sends nothing")
	assert.Contains(t, bar.String(), "objects 6/6")

	res, err := e.run(t, ctx, rng, ReplayOptions{})
	require.NoError(t, err)
	assert.EqualValues(t, len(want), res.Sent)
	assert.EqualValues(t, len(want), res.Delivered)
	assert.EqualValues(t, len(sent)-len(want), res.OutOfRange)
	assert.EqualValues(t, 6, res.Objects)
	logs := e.intake.Logs()
	checkExactlyOnce(t, logs, want)
	for _, l := range logs {
		require.Contains(t, l.Tags, "replay:true")
		require.Equal(t, group, l.Hostname)
		require.Equal(t, want[l.Message], l.Timestamp.UnixMilli())
	}
	var out bytes.Buffer
	res.Write(&out)
	assert.Contains(t, out.String(), fmt.Sprintf("events sent      %d", len(want)))
}

// TestReplayInterruptedThenResumed interrupts a replay half-way (as Ctrl-C
// does) and runs it again with the same checkpoint: every event is
// delivered exactly once over the two runs.
func TestReplayInterruptedThenResumed(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "gw-archive")
	at := time.Now().Add(-30 * time.Minute)
	arch, err := s3objtest.FirehoseArchive(11, 40_000, 5_000, at)
	require.NoError(t, err)
	hour := at.UTC().Truncate(time.Hour)
	for i, obj := range arch.Objects {
		key := fmt.Sprintf("firehose/%s/gw-logs-1-%s-%04d", hour.Format("2006/01/02/15"), hour.Format("2006-01-02-15-04-05"), i)
		_, err := a.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("gw-archive"), Key: aws.String(key), Body: bytes.NewReader(obj)})
		require.NoError(t, err)
	}
	sent := map[string]int64{}
	for _, ev := range arch.Events {
		sent[ev.Message] = ev.Timestamp
	}

	e := newReplayEnv(t, 100_000)
	ckpt := filepath.Join(t.TempDir(), "replay.ckpt")
	cfg := func(r *config.Replay) {
		r.Bucket, r.Prefix, r.From, r.Checkpoint = "gw-archive", "firehose/", "-2h", ckpt
		r.EventsPerBatch = 500
	}
	slow := func(r *config.Replay) {
		cfg(r)
		r.Rate = 10_000 // four seconds for the archive: the interruption comes first
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		if e.intake.WaitLogs(wctx, 5_000) == nil {
			cancel() // interrupt once an eighth was delivered
		}
	}()
	first, err := e.run(t, ctx, slow, ReplayOptions{})
	cancel()
	require.ErrorIs(t, err, context.Canceled, "the interrupted replay says so")
	assert.True(t, first.Interrupted)
	n1 := len(e.intake.Logs())
	require.Less(t, n1, len(sent), "interrupted before the end")
	assert.EqualValues(t, n1, first.Sent, "what was sent was awaited before stopping")

	second, err := e.run(t, context.Background(), cfg, ReplayOptions{})
	require.NoError(t, err)
	assert.True(t, second.Resumed)
	assert.EqualValues(t, len(sent)-n1, second.Sent)
	checkExactlyOnce(t, e.intake.Logs(), sent)

	again, err := e.run(t, context.Background(), cfg, ReplayOptions{})
	require.NoError(t, err)
	assert.Zero(t, again.Sent, "the checkpoint says the replay is complete")
}

// putArchive writes a Firehose archive of events events, perObject to an object,
// half an hour old, under prefix in bucket; it returns how many objects
// and events it wrote.
func putArchive(t *testing.T, a *awsEnv, bucket, prefix string, seed int64, events, perObject int) (int, int) {
	t.Helper()
	at := time.Now().Add(-30 * time.Minute)
	arch, err := s3objtest.FirehoseArchive(seed, events, perObject, at)
	require.NoError(t, err)
	hour := at.UTC().Truncate(time.Hour)
	for i, obj := range arch.Objects {
		key := fmt.Sprintf("%s%s/gw-logs-1-%s-%04d", prefix, hour.Format("2006/01/02/15"), hour.Format("2006-01-02-15-04-05"), i)
		_, err := a.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(obj)})
		require.NoError(t, err)
	}
	return len(arch.Objects), len(arch.Events)
}

// TestReplayInterruptedReportCountsWhatWasHandedBack: a replay interrupted
// while the intake refuses the API key (nothing is acknowledged) gives up
// waiting for what it sent; the pipeline's shutdown then hands its
// batches back. The report is printed once they are counted, and counts
// every object: each was interrupted (none failed: the next run finishes
// them).
func TestReplayInterruptedReportCountsWhatWasHandedBack(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "arch")
	objects, _ := putArchive(t, a, "arch", "fh/", 5, 400, 200)
	e := newReplayEnv(t, 10_000)
	require.NoError(t, e.intake.SetFailure(fakeintake.Failure{Status: http.StatusForbidden}))
	e.cfg.Pipeline.DrainTimeout = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once the intake refused something, as SIGTERM does.
		_ = e.intake.Wait(context.Background(), func(st fakeintake.Stats) bool { return st.FailuresInjected > 0 })
		cancel()
	}()
	res, err := e.run(t, ctx, func(r *config.Replay) { r.Bucket, r.Prefix, r.From = "arch", "fh/", "-2h" }, ReplayOptions{S3: a.s3})
	require.Error(t, err)
	require.True(t, res.Interrupted)
	assert.Zero(t, res.Objects+res.ObjectsFailed, "nothing was acknowledged, nothing failed: %+v", res.Summary)
	assert.EqualValues(t, objects, res.ObjectsInterrupted, "every object is counted: %+v", res.Summary)
	var out bytes.Buffer
	res.Write(&out)
	assert.Contains(t, out.String(), fmt.Sprintf("0 read, 0 skipped (time range or no logs), 0 already done, 0 failed, %d interrupted", objects))
}

// TestReplayReportCountsEachDeadLetterOnce: the replay's reader
// dead-letters what it cannot read (half a gzip member, a binary object);
// the report's "dead-lettered" line counts them, "pipeline dead" counts
// only what the pipeline's stages dead-lettered, and together they are
// what the archive holds.
func TestReplayReportCountsEachDeadLetterOnce(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "arch")
	hour := time.Now().Add(-time.Hour).UTC()
	key := func(n int) string {
		return fmt.Sprintf("fh/%s/s-1-%s-%d", hour.Format("2006/01/02/15"), hour.Format("2006-01-02-15-04-05"), n)
	}
	cut := gz(envelope("c1", "c2"))
	binary := bytes.Repeat([]byte{0x00, 0xff, 0x13, 0x88}, 5_000)
	for k, body := range map[string][]byte{
		key(0): append(gz(envelope("a1", "a2")), cut[:len(cut)/2]...),
		key(1): gz(envelope("b1")),
		key(2): binary,
	} {
		_, err := a.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("arch"), Key: aws.String(k), Body: bytes.NewReader(body)})
		require.NoError(t, err)
	}
	e := newReplayEnv(t, 1_000)
	res, err := e.run(t, context.Background(), func(r *config.Replay) { r.Bucket, r.Prefix, r.From = "arch", "fh/", "-3h" }, ReplayOptions{S3: a.s3})
	require.NoError(t, err)
	letters := readDLQ(t, e.cfg.DLQ.Dir)
	require.Len(t, letters, 2, "the cut member and the binary object")
	assert.EqualValues(t, 2, res.DeadLetters, "the reader's")
	assert.Zero(t, res.DeadLettered, "the pipeline's stages dead-lettered nothing")
	assert.EqualValues(t, 3, res.Delivered)
	var out bytes.Buffer
	res.Write(&out)
	assert.Contains(t, out.String(), "dead-lettered    2 (unreadable parts of objects, by the replay's reader)")
	assert.Contains(t, out.String(), "pipeline dead    0 (dead-lettered by the pipeline's stages")
	assert.Contains(t, out.String(), "dead letters in  "+e.cfg.DLQ.Dir+" (both lines above: 2; replay them with --dlq-dir)")
}

// TestReplayResumedReportCountsWhatWasDone: a replay with its checkpoint
// in S3, interrupted after some objects, is resumed: the report's
// "already done" counts the objects the first run finished (the listing
// of the second starts after them), and the runs' figures add up to the
// archive.
func TestReplayResumedReportCountsWhatWasDone(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "arch")
	a.bucket(t, "state")
	objects, _ := putArchive(t, a, "arch", "fh/", 7, 40_000, 5_000)
	e := newReplayEnv(t, 100_000)
	cfg := func(r *config.Replay) {
		r.Bucket, r.Prefix, r.From, r.Checkpoint = "arch", "fh/", "-2h", "s3://state/ck/r.json"
		r.Concurrency, r.EventsPerBatch = 1, 250
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once more than two objects were delivered.
		if e.intake.WaitLogs(ctx, 12_000) == nil {
			cancel()
		}
	}()
	first, err := e.run(t, ctx, func(r *config.Replay) { cfg(r); r.Rate = 10_000 }, ReplayOptions{S3: a.s3})
	cancel()
	require.ErrorIs(t, err, context.Canceled)
	// The intake has two objects' logs when the run is cancelled; the
	// second may still be waiting for its acknowledgement, and is then
	// interrupted: at least the first is done.
	require.GreaterOrEqual(t, first.Objects, int64(1))
	require.Less(t, first.Objects, int64(objects))

	second, err := e.run(t, context.Background(), cfg, ReplayOptions{S3: a.s3})
	require.NoError(t, err)
	assert.Equal(t, first.Objects, second.ObjectsAlreadyDone, "done by the first run")
	assert.EqualValues(t, objects, second.ObjectsAlreadyDone+second.Objects)
	var out bytes.Buffer
	second.Write(&out)
	assert.Contains(t, out.String(), fmt.Sprintf("%d already done", first.Objects))

	third, err := e.run(t, context.Background(), cfg, ReplayOptions{S3: a.s3})
	require.NoError(t, err)
	assert.True(t, third.AlreadyComplete)
	assert.EqualValues(t, objects, third.ObjectsAlreadyDone)
}

// TestReplayDeadLetterArchive is "fix and replay": logs the intake refused
// are dead-lettered; once the intake accepts them again, one replay of the
// archive (a directory, or its copy in S3) delivers them with their origin.
func TestReplayDeadLetterArchive(t *testing.T) {
	h := start(t)
	require.NoError(t, h.intake.SetFailure(fakeintake.Failure{Status: 400}))
	ids := []string{"d1", "d2", "d3", "d4", "d5"}
	status, resp := firehoseRequest(t, h.url, "refused", recordsBody("refused", gz(envelope(ids...))), nil)
	require.Equal(t, 200, status, "dead-lettered counts as handled: %v", resp)
	entries := readDLQ(t, h.dlqDir)
	require.Len(t, entries, len(ids))
	assert.Equal(t, "deliver-logs", entries[0].Stage)
	h.intake.ClearFailure()
	require.Zero(t, h.intake.Stats().LogsAccepted)

	a := startAWS(t)
	a.bucket(t, "gw-dlq")
	files, err := filepath.Glob(filepath.Join(h.dlqDir, "dlq-*.jsonl"))
	require.NoError(t, err)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = a.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("gw-dlq"), Key: aws.String("archive/" + filepath.Base(f)), Body: bytes.NewReader(data)})
		require.NoError(t, err)
	}

	for i, c := range []struct{ name, src string }{{"directory", h.dlqDir}, {"s3 URL", "s3://gw-dlq/archive/"}} {
		src := c.src
		t.Run(c.name, func(t *testing.T) {
			e := &replayEnv{intake: h.intake, cfg: h.p.Config(), log: h.p.Logger()}
			e.cfg.DLQ.Dir = t.TempDir()
			res, err := e.run(t, context.Background(), func(r *config.Replay) { r.DLQ = src }, ReplayOptions{})
			require.NoError(t, err)
			assert.EqualValues(t, len(ids), res.Sent)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, h.intake.WaitLogs(ctx, (i+1)*len(ids)))
			logs := h.intake.Logs()
			require.Len(t, logs, (i+1)*len(ids))
			for _, l := range logs[i*len(ids):] {
				assert.Contains(t, l.Tags, "replay:true")
				assert.Contains(t, l.Tags, "aws_account:123456789012", "the origin of the dead letter")
				assert.Equal(t, "/aws/api-gateway/a1b2c3d4e5/prod", l.Hostname)
				assert.Contains(t, l.Message, `"requestId":"d`)
			}
		})
	}
}

func TestReplayConfigErrors(t *testing.T) {
	base := config.DefaultConfig()
	cases := []struct {
		name   string
		mutate func(*config.Replay)
		want   string
	}{
		{"nothing to replay", func(r *config.Replay) {}, "replay.bucket (--bucket) or replay.dlq"},
		{"no start", func(r *config.Replay) { r.Bucket = "b" }, "replay.from (--from) is required"},
		{"bad time", func(r *config.Replay) { r.Bucket, r.From = "b", "yesterday" }, "replay.from"},
		{"reversed", func(r *config.Replay) { r.Bucket, r.From, r.To = "b", "-1h", "-2h" }, "must be before"},
		{"bad dlq url", func(r *config.Replay) { r.DLQ = "s3://" }, "replay.dlq"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			c.mutate(&cfg.Replay)
			_, err := ReplayConfig(cfg, ReplayOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	cfg := base
	cfg.Replay.DLQ = "s3://bucket/some/prefix"
	rc, err := ReplayConfig(cfg, ReplayOptions{})
	require.NoError(t, err)
	assert.Equal(t, "bucket", rc.Bucket)
	assert.Equal(t, "some/prefix/", rc.Prefix, "an archive's prefix is a folder")
	assert.Equal(t, replay.SelectNone, rc.SelectBy)
	assert.Equal(t, "dlq-*.jsonl*", rc.KeyPattern, "the archive's objects, not the markers and the lease beside them")
	cfg.Replay.Checkpoint = "r.ckpt"
	_, err = ReplayConfig(cfg, ReplayOptions{})
	assert.ErrorContains(t, err, "keeps its own ledger beside its objects")
}

// TestReplayToDefaultsToTheStart: a bucket's range without --to ends when
// the replay starts (so the checkpoint records a real end, and the replay
// does not chase what arrives meanwhile); dead letters have no range.
func TestReplayToDefaultsToTheStart(t *testing.T) {
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	opts := ReplayOptions{Now: func() time.Time { return now }}
	cfg := config.DefaultConfig()
	cfg.Replay.Bucket, cfg.Replay.From = "b", "-2h"
	rc, err := ReplayConfig(cfg, opts)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-2*time.Hour), rc.From)
	assert.Equal(t, now, rc.To)

	cfg.Replay.To = "-1h"
	rc, err = ReplayConfig(cfg, opts)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-time.Hour), rc.To, "a given end is kept")

	for _, dlq := range []string{"data/dlq", "s3://bucket/dlq/"} {
		cfg := config.DefaultConfig()
		cfg.Replay.DLQ = dlq
		rc, err := ReplayConfig(cfg, opts)
		require.NoError(t, err)
		assert.True(t, rc.From.IsZero() && rc.To.IsZero(), "dead letters are replayed whatever their time")
	}
}

// TestReplayResultOnlyReportsWhatRan: a replay that failed before choosing
// any object has nothing to report; one that ran, even interrupted or
// with nothing to do, does.
func TestReplayResultOnlyReportsWhatRan(t *testing.T) {
	assert.False(t, ReplayResult{}.DidSomething())
	for _, r := range []ReplayResult{
		{Summary: replay.Summary{ObjectsSkipped: 1}},
		{Summary: replay.Summary{Interrupted: true}},
		{Summary: replay.Summary{AlreadyComplete: true}},
		{Summary: replay.Summary{Events: 3}},
	} {
		assert.True(t, r.DidSomething(), "%+v", r.Summary)
	}
}

// memBucket is an in-memory S3 for the benchmarks: moto would measure
// itself, not the replay.
type memBucket struct {
	mu      sync.Mutex
	objects map[string][]byte
	gen     map[string]func() io.Reader // generated on every GET
	sizes   map[string]int64
}

func (m *memBucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.sizes {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) && k > aws.ToString(in.StartAfter) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if in.MaxKeys != nil && len(keys) > int(*in.MaxKeys) {
		keys = keys[:*in.MaxKeys]
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range keys {
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), Size: aws.Int64(m.sizes[k]), LastModified: aws.Time(time.Now())})
	}
	return out, nil
}

func (m *memBucket) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := aws.ToString(in.Key)
	var body io.Reader
	if g, ok := m.gen[k]; ok {
		body = g()
	} else if data, ok := m.objects[k]; ok {
		body = bytes.NewReader(data)
	} else {
		return nil, errors.New("NoSuchKey")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(body), ContentLength: aws.Int64(m.sizes[k]), LastModified: aws.Time(time.Now())}, nil
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// benchBatch applies GWPIPE_BENCH_BATCH (events per batch), to compare
// batch sizes; the default is the configuration's.
func benchBatch(r *config.Replay) {
	if n, err := strconv.Atoi(os.Getenv("GWPIPE_BENCH_BATCH")); err == nil {
		r.EventsPerBatch = n
	}
}

// BenchmarkReplayGzipArchive replays a Firehose archive of realistic API
// Gateway traffic (gzip members of CloudWatch envelopes) through the whole
// pipeline (read, parse, enrich, deliver) to an in-process fake intake.
// events/cpu-s divides the events delivered by the CPU time of the whole
// process, the fake intake's decompression and JSON parsing included.
func BenchmarkReplayGzipArchive(b *testing.B) {
	at := time.Now().Add(-30 * time.Minute)
	arch, err := s3objtest.FirehoseArchive(5, 200_000, 20_000, at)
	if err != nil {
		b.Fatal(err)
	}
	total := int64(len(arch.Events))
	arch.Events = nil // the ground truth is not needed: let the heap be the replay's
	m := &memBucket{objects: map[string][]byte{}, sizes: map[string]int64{}}
	hour := at.UTC().Truncate(time.Hour).Format("2006/01/02/15")
	for i, obj := range arch.Objects {
		k := fmt.Sprintf("firehose/%s/gw-logs-1-x-%04d", hour, i)
		m.objects[k], m.sizes[k] = obj, int64(len(obj))
	}
	for _, intake := range []string{"fakeintake", "null-intake"} {
		b.Run(intake, func(b *testing.B) {
			e := newReplayEnv(b, 1)
			if intake == "null-intake" {
				e.nullIntake(b)
			}
			var events int64
			cpu0 := procstat.CPU()
			for b.Loop() {
				res, err := e.run(b, context.Background(), func(r *config.Replay) {
					r.Bucket, r.Prefix, r.From = "bench", "firehose/", "-2h"
					benchBatch(r)
				}, ReplayOptions{S3: m})
				if err != nil {
					b.Fatal(err)
				}
				if res.Sent != total {
					b.Fatalf("sent %d of %d", res.Sent, total)
				}
				events += res.Sent
			}
			cpu := procstat.CPU() - cpu0
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
		})
	}
}

// BenchmarkReplayLargeObjectRSS replays one generated object of
// GWPIPE_BENCH_OBJECT_BYTES (default 2 GiB, streamed, never stored) through
// the whole pipeline and reports the process's resident memory while the
// object is read: its peak, and at each quarter of the object.
func BenchmarkReplayLargeObjectRSS(b *testing.B) {
	size := s3objtest.LargeObjectSize(b)
	// Events a millisecond apart: 2 GiB holds about two hours of them.
	at := time.Now().Add(-3 * time.Hour)
	key := "firehose/" + at.UTC().Format("2006/01/02/15") + "/gw-logs-1-big"
	var (
		obj  *s3objtest.LargeObject
		read atomic.Int64 // bytes of the object read so far
	)
	m := &memBucket{sizes: map[string]int64{key: size}, gen: map[string]func() io.Reader{key: func() io.Reader {
		obj = s3objtest.NewLargeObject(size, at)
		read.Store(0)
		return &countReader{r: obj, n: &read}
	}}}
	e := newReplayEnv(b, 1)
	e.nullIntake(b) // the process's memory is gwpipe's alone
	for b.Loop() {
		var peak, quarters [5]int64
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				// While the object is read: the drain and shutdown that
				// follow (metric windows flushed) are not the reader's.
				n := read.Load()
				if n >= size {
					continue
				}
				rss := procstat.RSS()
				peak[0] = max(peak[0], rss)
				quarters[4] = rss // the last sample before the end
				if q := int(4 * n / size); q >= 1 && q <= 3 && quarters[q] == 0 {
					quarters[q] = rss
				}
			}
		}()
		res, err := e.run(b, context.Background(), func(r *config.Replay) {
			r.Bucket, r.Prefix, r.From = "bench", "firehose/", "-4h"
			benchBatch(r)
		}, ReplayOptions{S3: m})
		close(done)
		<-sampled
		if err != nil {
			b.Fatal(err)
		}
		if res.Sent != obj.Events {
			b.Fatalf("sent %d of %d events", res.Sent, obj.Events)
		}
		b.SetBytes(size)
		b.ReportMetric(float64(peak[0])/(1<<20), "peak-RSS-MiB")
		for q := 1; q <= 4; q++ {
			if quarters[q] > 0 {
				name := fmt.Sprintf("RSS-MiB-at-%d%%", 25*q)
				if q == 4 {
					name = "RSS-MiB-at-end"
				}
				b.ReportMetric(float64(quarters[q])/(1<<20), name)
			}
		}
		b.ReportMetric(float64(res.Sent), "events")
		b.ReportMetric(float64(res.Sent)/res.Duration.Seconds(), "events/s")
	}
}
