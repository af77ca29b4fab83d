package stage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// mutator changes its input in place after it got it, as stages do (they
// own their input): a tap must have copied the batch before.
func mutator(_ context.Context, in *record.Batch, out Output) error {
	for i := range in.Records {
		in.Records[i].Message[0] = 'X'
		in.Records[i].Attrs[0].Str[0] = 'X'
		in.Records[i].Tags[0] = "changed:yes"
	}
	return nil
}

func taggedBatch(i, n int, tr record.Acker) *record.Batch {
	b := &record.Batch{ID: fmt.Sprint("b", i), Origin: &record.Origin{Source: "test"}, Ack: tr}
	for j := range n {
		b.Records = append(b.Records, record.Record{
			Message: fmt.Appendf(nil, "line %d.%d", i, j),
			Attrs:   []record.Attr{record.StringAttr("k", []byte("value"))},
			Tags:    []string{"t:1"},
		})
	}
	return b
}

// TestTapSamplesWhatIsPublishedAsItWas: a tap on a topic gets copies of
// the batches published to it, named by the publisher, unchanged by the
// stage that consumes and alters them; the other topics are not sampled.
func TestTapSamplesWhatIsPublishedAsItWas(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	require.NoError(t, rt.Add(Stage{Name: "split", Input: "raw", Output: "mid", Handler: HandlerFunc(splitter)}))
	require.NoError(t, rt.Add(Stage{Name: "mutate", Input: "mid", Handler: HandlerFunc(mutator)}))
	start(t, rt)
	tap := rt.Tap("mid", 16, 0)
	defer tap.Close()
	src := rt.Source("ingest", "raw")

	tr := ack.New()
	require.NoError(t, src.Emit(context.Background(), taggedBatch(0, 4, tr)))
	tr.Done()
	require.NoError(t, tr.Wait(context.Background()))

	var got []string
	for range 2 {
		s := <-tap.C()
		assert.Equal(t, "mid", s.Topic)
		assert.Equal(t, "split", s.Stage)
		assert.Nil(t, s.Batch.Ack, "a sample holds no acknowledgement")
		for _, r := range s.Batch.Records {
			got = append(got, string(r.Message))
			assert.Equal(t, "value", string(r.Attrs[0].Str))
			assert.Equal(t, []string{"t:1"}, r.Tags)
		}
	}
	assert.Equal(t, []string{"line 0.0", "line 0.1", "line 0.2", "line 0.3"}, got)
	select {
	case s := <-tap.C():
		t.Fatalf("unexpected sample of %s", s.Topic)
	default:
	}
	assert.EqualValues(t, 4, tap.Sampled())
	assert.Zero(t, tap.Dropped())
}

// TestTapNeverBlocksThePipeline: a tap nobody reads fills its buffer; the
// pipeline goes on at once, every batch acknowledged, and the events the
// tap could not take are counted as dropped, on the tap and in telemetry.
func TestTapNeverBlocksThePipeline(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	rt, err := New(Config{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}, NewMemory(nil), nil, reg)
	require.NoError(t, err)
	terminal := &sink{}
	require.NoError(t, rt.Add(Stage{Name: "sink", Input: "raw", Handler: terminal}))
	start(t, rt)
	tap := rt.Tap("raw", 2, 0) // never read
	src := rt.Source("ingest", "raw")

	const batches, size = 200, 5
	tr := ack.New()
	for i := range batches {
		require.NoError(t, src.Emit(context.Background(), taggedBatch(i, size, tr)))
	}
	tr.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tr.Wait(ctx), "the pipeline must not wait for a tap")
	assert.Equal(t, batches*size, terminal.Records())
	assert.EqualValues(t, 2*size, tap.Sampled())
	assert.EqualValues(t, (batches-2)*size, tap.Dropped())
	assert.Equal(t, tap.Dropped(), reg.Value("tap.dropped_events"))
	assert.Equal(t, tap.Sampled(), reg.Value("tap.sampled_events"))

	tap.Close()
	tap.Close()
	require.NoError(t, src.Emit(context.Background(), taggedBatch(0, size, nil)))
	assert.EqualValues(t, (batches-2)*size, tap.Dropped(), "a closed tap takes nothing")
}

// TestTapSeesDeadLettersWithTheirReason: batches a stage gives up after its
// retries reach a tap on the dead-letter topic with the stage and reason,
// and records dead-lettered by a handler with theirs. A limit copies only
// the first records.
func TestTapSeesDeadLettersWithTheirReason(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{MaxRetries: 1})
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	require.NoError(t, rt.Add(Stage{Name: "fail", Input: "raw", Handler: HandlerFunc(func(context.Context, *record.Batch, Output) error {
		return Permanent(fmt.Errorf("cannot"))
	})}))
	require.NoError(t, rt.Add(Stage{Name: "reject", Input: "other", Handler: HandlerFunc(func(ctx context.Context, in *record.Batch, out Output) error {
		d := in.Derive(1)
		r := in.Records[0]
		r.Reason = "refused"
		d.Records = append(d.Records, r)
		return out.DeadLetter(ctx, d)
	})}))
	start(t, rt)
	tap := rt.Tap("dlq", 4, 2)
	defer tap.Close()

	tr := ack.New()
	require.NoError(t, rt.Source("ingest", "raw").Emit(context.Background(), taggedBatch(0, 3, tr)))
	s := <-tap.C()
	assert.Equal(t, "fail", s.Stage)
	assert.Contains(t, s.Batch.Reason, "cannot")
	assert.Len(t, s.Batch.Records, 2, "the tap's limit")

	require.NoError(t, rt.Source("ingest", "other").Emit(context.Background(), taggedBatch(1, 1, tr)))
	s = <-tap.C()
	assert.Equal(t, "reject", s.Stage)
	require.Len(t, s.Batch.Records, 1)
	assert.Equal(t, "refused", s.Batch.Records[0].Reason)
	tr.Done()
	require.NoError(t, tr.Wait(context.Background()))
}

// TestTapEndsWithTheRuntime: shutting the runtime down detaches its taps.
func TestTapEndsWithTheRuntime(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{})
	require.NoError(t, rt.Add(Stage{Name: "sink", Input: "raw", Handler: &sink{}}))
	require.NoError(t, rt.Start(context.Background()))
	tap := rt.Tap("raw", 1, 0)
	require.NoError(t, rt.Close())
	select {
	case <-tap.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the tap outlived the runtime")
	}
}

// BenchmarkTapHook is the cost the hook adds to every publish: with no tap
// attached (one atomic load), with a tap on another topic, and with a tap
// whose reader fell behind (the drop path, no copy).
func BenchmarkTapHook(b *testing.B) {
	rt, err := New(Config{}, NewMemory(nil), nil, telemetry.NewRegistry())
	require.NoError(b, err)
	batch := taggedBatch(0, 100, nil)
	b.Run("detached", func(b *testing.B) {
		for b.Loop() {
			rt.tap("raw", "ingest", batch)
		}
	})
	b.Run("other-topic", func(b *testing.B) {
		tap := rt.Tap("dlq", 1, 0)
		defer tap.Close()
		for b.Loop() {
			rt.tap("raw", "ingest", batch)
		}
	})
	b.Run("reader-behind", func(b *testing.B) {
		tap := rt.Tap("raw", 1, 0)
		defer tap.Close()
		rt.tap("raw", "ingest", batch) // fills the buffer
		for b.Loop() {
			rt.tap("raw", "ingest", batch)
		}
	})
	b.Run("copy-100-records", func(b *testing.B) {
		tap := rt.Tap("raw", 1, 0)
		defer tap.Close()
		for b.Loop() {
			rt.tap("raw", "ingest", batch)
			<-tap.C()
		}
	})
}
