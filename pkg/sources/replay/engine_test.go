package replay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// memS3 is an in-memory bucket: the listing semantics of S3 (key order,
// prefix, StartAfter) without an emulator.
type memS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	lists   []string // StartAfter of each listing
	gets    int
	puts    int
	etags   map[string]string // of objects written by PutObject
}

func (m *memS3) etag(key string) string {
	if e, ok := m.etags[key]; ok {
		return e
	}
	return `"` + key + `"`
}

// PutObject keeps S3's conditional writes: If-None-Match: * and If-Match.
func (m *memS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := aws.ToString(in.Key)
	_, exists := m.objects[key]
	switch {
	case aws.ToString(in.IfNoneMatch) == "*" && exists:
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed"}
	case in.IfMatch != nil && (!exists || m.etag(key) != aws.ToString(in.IfMatch)):
		return nil, &smithy.GenericAPIError{Code: "PreconditionFailed"}
	}
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	m.puts++
	if m.etags == nil {
		m.etags = map[string]string{}
	}
	m.objects[key] = data
	m.etags[key] = fmt.Sprintf(`"v%d"`, m.puts)
	return &s3.PutObjectOutput{ETag: aws.String(m.etags[key])}, nil
}

func (m *memS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lists = append(m.lists, aws.ToString(in.StartAfter))
	var keys []string
	for k := range m.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) && k > aws.ToString(in.StartAfter) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if in.MaxKeys != nil && int(*in.MaxKeys) < len(keys) {
		keys = keys[:*in.MaxKeys]
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range keys {
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(m.objects[k]))), ETag: aws.String(m.etag(k)), LastModified: aws.Time(time.Now())})
	}
	return out, nil
}

func (m *memS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	data, ok := m.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &s3types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(data)), ContentLength: aws.Int64(int64(len(data))), ETag: aws.String(m.etag(aws.ToString(in.Key)))}, nil
}

// out stands in for the pipeline: it records what it is sent and settles
// each batch's acknowledgement, or fails it.
type out struct {
	mu      sync.Mutex
	events  []record.Record
	points  []record.Metric
	dead    []record.Record
	batches int
	// after is called after each batch is accepted (with the batch count).
	after func(n int)
	// failIf fails the delivery of a batch.
	failIf func(b *record.Batch) bool
}

func (o *out) Emit(ctx context.Context, b *record.Batch) error { return o.take(ctx, b, false) }
func (o *out) DeadLetter(ctx context.Context, b *record.Batch) error {
	return o.take(ctx, b, true)
}

func (o *out) take(ctx context.Context, b *record.Batch, dead bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.Ack.Add(1)
	o.mu.Lock()
	fail := o.failIf != nil && o.failIf(b)
	if !fail {
		o.points = append(o.points, b.Metrics...)
		for _, r := range b.Records {
			r.Message = bytes.Clone(r.Message)
			if dead {
				o.dead = append(o.dead, r)
			} else {
				o.events = append(o.events, r)
			}
		}
	}
	o.batches++
	n := o.batches
	o.mu.Unlock()
	if fail {
		b.Ack.Fail(errors.New("intake refused"))
	} else {
		b.Ack.Done()
	}
	if o.after != nil {
		o.after(n)
	}
	return nil
}

func (o *out) ids() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for _, e := range o.events {
		ids = append(ids, e.EventID)
	}
	return ids
}

// runReplay builds an engine and runs it once.
// written is the summary as Write prints it.
func written(s Summary) string {
	var b strings.Builder
	s.Write(&b)
	return b.String()
}

func runReplay(t *testing.T, cfg Config, client S3API, o Emitter) (Summary, error) {
	t.Helper()
	e, err := New(cfg, client, o, quiet())
	require.NoError(t, err)
	return e.Run(context.Background())
}

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// hourObject is a Firehose object of the given hour: events spaced by a
// minute from the hour's start, ids "<hour>-<n>".
func hourObject(hour time.Time, n int) []byte {
	var buf bytes.Buffer
	for i := 0; i < n; i += 100 {
		var doc bytes.Buffer
		doc.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
		for j := i; j < min(i+100, n); j++ {
			if j > i {
				doc.WriteByte(',')
			}
			fmt.Fprintf(&doc, `{"id":"%s-%d","timestamp":%d,"message":"{\"requestId\":\"r%d\",\"status\":200}"}`, hour.Format("15"), j, hour.Add(time.Duration(j)*time.Minute*60/time.Duration(n)).UnixMilli(), j)
		}
		doc.WriteString("]}")
		buf.Write(corpus.Gzip(doc.Bytes())) // one gzip member per envelope, as Firehose writes
	}
	return buf.Bytes()
}

func hourKey(prefix string, hour time.Time) string {
	return prefix + hour.Format("2006/01/02/15") + "/stream-1-" + hour.Format("2006-01-02-15-04-05") + "-0a1b2c3d"
}

// archive is 6 hourly objects ending an hour before now, 600 events each.
func archive() *memS3 {
	m := &memS3{objects: map[string][]byte{}}
	for h := 6; h >= 1; h-- {
		hour := now.Add(-time.Duration(h) * time.Hour)
		m.objects[hourKey("logs/", hour)] = hourObject(hour, 600)
	}
	m.objects["other/2026/11/29/10/x"] = hourObject(now.Add(-2*time.Hour), 10)
	return m
}

func TestReplayTimeRange(t *testing.T) {
	m := archive()
	o := &out{}
	from, to := now.Add(-4*time.Hour), now.Add(-2*time.Hour)
	sum, err := runReplay(t, Config{Bucket: "b", Prefix: "logs/", From: from, To: to, Now: func() time.Time { return now }, KeySlack: 30 * time.Minute, Concurrency: 3}, m, o)
	require.NoError(t, err)
	// Hours -4 and -3 hold the range; with the slack -5 and -2 are read too
	// (their events are filtered out); -6 and -1 are never listed or skipped.
	assert.EqualValues(t, 1200, sum.Sent)
	assert.EqualValues(t, 4, sum.Objects)
	assert.EqualValues(t, 1200, sum.OutOfRange)
	assert.Len(t, o.events, 1200)
	for _, ev := range o.events {
		assert.True(t, ev.Timestamp >= from.UnixMilli() && ev.Timestamp < to.UnixMilli(), "event %s at %d", ev.EventID, ev.Timestamp)
		assert.True(t, ev.Origin.Replay, "tagged replay")
		assert.Equal(t, "replay", ev.Origin.Source)
	}
	assert.Contains(t, m.lists, "logs/"+now.Add(-6*time.Hour).Format("2006/01/02/15"), "the listing starts at the first hour that can hold the range")
	assert.Equal(t, 4, m.gets, "objects outside the range are never read")
}

func TestReplayOldLogs(t *testing.T) {
	m := &memS3{objects: map[string][]byte{}}
	old := now.Add(-20 * time.Hour)
	m.objects[hourKey("", old)] = hourObject(old, 100)
	recent := now.Add(-2 * time.Hour)
	m.objects[hourKey("", recent)] = hourObject(recent, 100)
	cases := []struct {
		policy        string
		sent, tooOld  int64
		retimestamped int64
	}{
		{OldLogsSkip, 100, 100, 0},
		{OldLogsRetimestamp, 200, 0, 100},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			o := &out{}
			sum, err := runReplay(t, Config{Bucket: "b", From: now.Add(-24 * time.Hour), OldLogs: c.policy, Now: func() time.Time { return now }}, m, o)
			require.NoError(t, err)
			assert.Equal(t, c.sent, sum.Sent)
			assert.Equal(t, c.tooOld, sum.TooOld)
			assert.Equal(t, c.retimestamped, sum.Retimestamped)
			cutoff := now.Add(-18 * time.Hour).UnixMilli()
			re := 0
			for _, ev := range o.events {
				assert.GreaterOrEqual(t, ev.Timestamp, cutoff, "nothing older than 18h is sent")
				if slices.Contains(ev.Tags, RetimestampedTag) {
					re++
					assert.Equal(t, now.UnixMilli(), ev.Timestamp)
				}
			}
			assert.EqualValues(t, c.retimestamped, re)
		})
	}
}

func TestReplayInterruptedAndResumed(t *testing.T) {
	m := archive()
	ckpt := filepath.Join(t.TempDir(), "replay.ckpt")
	cfg := Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Checkpoint: ckpt, Now: func() time.Time { return now },
		Concurrency: 2, Object: s3obj.Config{EventsPerBatch: 50}}

	ctx, cancel := context.WithCancel(context.Background())
	first := &out{after: func(n int) {
		if n == 17 {
			cancel() // the operator presses Ctrl-C half-way
		}
	}}
	e, err := New(cfg, m, first, quiet())
	require.NoError(t, err)
	sum1, err := e.Run(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, sum1.Interrupted)
	assert.Less(t, len(first.events), 3600, "interrupted before the end")
	assert.NotEmpty(t, first.events)
	saved, err := LoadCheckpoint(ckpt)
	require.NoError(t, err)
	assert.False(t, saved.Complete)

	second := &out{}
	sum2, err := runReplay(t, cfg, m, second)
	require.NoError(t, err)
	assert.True(t, sum2.Resumed)
	assert.Len(t, second.events, 3600-len(first.events), "what was delivered is not sent again")
	assert.True(t, sum2.Resumed, "the checkpoint was used")

	all := append(first.ids(), second.ids()...)
	seen := map[string]int{}
	for _, id := range all {
		seen[id]++
	}
	assert.Len(t, seen, 3600, "every event delivered")
	for id, n := range seen {
		require.Equal(t, 1, n, "event %s delivered %d times", id, n)
	}
	saved, err = LoadCheckpoint(ckpt)
	require.NoError(t, err)
	assert.True(t, saved.Complete)
	assert.Empty(t, saved.Partial)

	third := &out{}
	_, err = runReplay(t, cfg, m, third)
	require.NoError(t, err)
	assert.Empty(t, third.events, "a complete replay does nothing")

	_, err = runReplay(t, Config{Bucket: "b", Prefix: "other/", Checkpoint: ckpt}, m, &out{})
	assert.ErrorIs(t, err, ErrCheckpointMismatch)
}

func TestReplayFailedDeliveryIsRetriedOnTheNextRun(t *testing.T) {
	m := archive()
	ckpt := filepath.Join(t.TempDir(), "replay.ckpt")
	cfg := Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Checkpoint: ckpt, Now: func() time.Time { return now }, Object: s3obj.Config{EventsPerBatch: 100}}
	bad := hourKey("logs/", now.Add(-3*time.Hour))
	o := &out{failIf: func(b *record.Batch) bool { return strings.Contains(b.ID, bad) && strings.HasSuffix(b.ID, "#300") }}
	sum, err := runReplay(t, cfg, m, o)
	require.Error(t, err)
	assert.EqualValues(t, 1, sum.ObjectsFailed)
	assert.EqualValues(t, 5, sum.Objects)
	assert.Len(t, o.events, 3500)

	again := &out{}
	sum, err = runReplay(t, cfg, m, again)
	require.NoError(t, err)
	assert.Len(t, again.events, 100, "only the batch that failed is sent again")
	assert.EqualValues(t, 500, sum.AlreadyDelivered)
}

func TestReplayDryRunOnlyCounts(t *testing.T) {
	m := archive()
	ckpt := filepath.Join(t.TempDir(), "replay.ckpt")
	var bar bytes.Buffer
	sum, err := runReplay(t, Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), DryRun: true, Checkpoint: ckpt, Progress: &bar, Now: func() time.Time { return now }}, m, nil)
	require.NoError(t, err)
	assert.EqualValues(t, 3600, sum.Sent)
	assert.EqualValues(t, 3600, sum.Events)
	assert.EqualValues(t, 6, sum.Objects)
	assert.Positive(t, sum.Bytes)
	assert.NoFileExists(t, ckpt, "a dry run writes no checkpoint")
	assert.Contains(t, bar.String(), "objects 6/6")
	assert.Contains(t, bar.String(), "counted")
	assert.Contains(t, written(sum), "events to send (dry run) 3600")
}

func TestReplayDeadLetterDirectory(t *testing.T) {
	dir := t.TempDir()
	ts := now.Add(-time.Hour).UnixMilli()
	env := `{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"API-Gateway-Execution-Logs_a1/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"e1","timestamp":` + fmt.Sprint(ts) + `,"message":"(r1) Method completed with status: 200"}]}`
	var lines bytes.Buffer
	for _, e := range []dlq.Entry{
		{V: 1, Time: now, Stage: "decode", Reason: "gunzip: truncated", Kind: "raw", Timestamp: ts,
			Origin: dlq.Origin{Source: "firehose", RequestID: "req-1", Region: "eu-west-1"}, Data: []byte(b64(corpus.Gzip([]byte(env))))},
		{V: 1, Time: now, Stage: "deliver-logs", Reason: "rejected", Kind: "access", EventID: "e2", Timestamp: ts,
			Origin: dlq.Origin{Source: "firehose", RequestID: "req-2", Account: "111122223333", LogGroup: "/aws/api-gateway/a1/prod", LogStream: "s2"}, Data: []byte(`{"requestId":"r2"}`)},
	} {
		b, _ := json.Marshal(e)
		lines.Write(append(b, '\n'))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dlq-20261129T110000Z-1-1.jsonl"), lines.Bytes(), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated.txt"), []byte("x"), 0o600))
	o := &out{}
	sum, err := runReplay(t, Config{Dir: dir, Layout: s3obj.LayoutDLQ, Now: func() time.Time { return now }}, nil, o)
	require.NoError(t, err)
	assert.EqualValues(t, 2, sum.Sent)
	require.Len(t, o.events, 2)
	byID := map[string]record.Record{}
	for _, ev := range o.events {
		byID[ev.EventID] = ev
	}
	assert.Equal(t, "API-Gateway-Execution-Logs_a1/prod", byID["e1"].Origin.LogGroup, "the raw record was decoded again")
	assert.Equal(t, "111122223333", byID["e1"].Origin.Account)
	assert.Equal(t, "eu-west-1", byID["e1"].Origin.Region)
	assert.Equal(t, "req-2", byID["e2"].Origin.RequestID)
	assert.Equal(t, "s2", byID["e2"].Origin.LogStream)
	assert.Equal(t, `{"requestId":"r2"}`, string(byID["e2"].Message))
	for _, ev := range o.events {
		assert.True(t, ev.Origin.Replay)
	}
}

func TestSelection(t *testing.T) {
	from, to := now.Add(-4*time.Hour), now.Add(-2*time.Hour)
	inKey, outKey := hourKey("p/", now.Add(-3*time.Hour)), hourKey("p/", now.Add(-8*time.Hour))
	cases := []struct {
		mode     string
		key      string
		modified time.Time
		want     bool
	}{
		{SelectKey, inKey, time.Time{}, true},
		{SelectKey, outKey, time.Time{}, false},
		{SelectKey, "p/no-date", time.Time{}, true},
		{SelectAuto, outKey, now, false},
		{SelectAuto, "p/no-date", now.Add(-10 * time.Hour), false},
		{SelectAuto, "p/no-date", now.Add(-3 * time.Hour), true},
		{SelectModified, outKey, now, true},
		{SelectModified, inKey, now.Add(-10 * time.Hour), false},
		{SelectNone, outKey, now.Add(-10 * time.Hour), true},
	}
	for _, c := range cases {
		e := &Engine{cfg: Config{From: from, To: to, SelectBy: c.mode}}
		assert.Equal(t, c.want, e.selected(entry{Key: c.key, LastModified: c.modified}), "%s %s", c.mode, c.key)
	}
}

func b64(p []byte) string { return base64.StdEncoding.EncodeToString(p) }

// holdOut accepts batches and settles them only when released.
type holdOut struct {
	mu      sync.Mutex
	held    []*record.Batch
	emitted chan struct{}
}

func (h *holdOut) Emit(_ context.Context, b *record.Batch) error {
	b.Ack.Add(1)
	h.mu.Lock()
	h.held = append(h.held, b)
	h.mu.Unlock()
	h.emitted <- struct{}{}
	return nil
}
func (h *holdOut) DeadLetter(ctx context.Context, b *record.Batch) error { return h.Emit(ctx, b) }

func (h *holdOut) releaseAll() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, b := range held {
		b.Ack.Done()
	}
}

func TestReplayBoundsTheEventsInFlight(t *testing.T) {
	m := archive()
	h := &holdOut{emitted: make(chan struct{}, 100)}
	e, err := New(Config{Bucket: "b", Prefix: "logs/", From: now.Add(-7 * time.Hour), Now: func() time.Time { return now },
		MaxInFlightEvents: 100, Object: s3obj.Config{EventsPerBatch: 50}}, m, h, quiet())
	require.NoError(t, err)
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := e.Run(context.Background())
		done <- result{sum, err}
	}()
	for range 2 {
		<-h.emitted
	}
	// Two batches of 50 fill the window: nothing more goes until one is
	// acknowledged.
	assert.False(t, e.window.TryAcquire(1), "the window is full")
	for sent := 2; ; {
		h.releaseAll()
		select {
		case <-h.emitted:
			sent++
			continue
		case r := <-done:
			require.NoError(t, r.err)
			assert.EqualValues(t, 3600, r.sum.Sent)
			assert.Equal(t, 3600/50, sent+len(h.emitted))
			return
		}
	}
}
