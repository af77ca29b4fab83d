package parse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
)

// marker parses a record by marking it; every execution line named
// "done-<id>" completes request <id>.
type marker struct{}

func (marker) Parse(_ *record.Batch, rec *record.Record) { rec.Service = "parsed" }

type fakeCorrelator struct {
	mu      sync.Mutex
	open    map[string]bool
	expired []record.Record
}

func (c *fakeCorrelator) Observe(rec *record.Record) (record.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = map[string]bool{}
	}
	id := string(rec.Message)
	if c.open[id] {
		delete(c.open, id)
		return record.Record{Kind: record.KindSummary, EventID: "sum-" + id}, true
	}
	c.open[id] = true
	return record.Record{}, false
}

func (c *fakeCorrelator) Expire(int64) []record.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.expired
	c.expired = nil
	return out
}

func (c *fakeCorrelator) Flush() []record.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []record.Record
	for id := range c.open {
		out = append(out, record.Record{Kind: record.KindSummary, EventID: "open-" + id})
	}
	c.open = nil
	return out
}

func exec(id string) record.Record {
	return record.Record{Kind: record.KindExecution, Message: []byte(id)}
}

// TestHandleParsesEveryRecordAndAppendsSummaries: every record is parsed
// in place, none is dropped, and a request completed by the batch rides
// along as a summary.
func TestHandleParsesEveryRecordAndAppendsSummaries(t *testing.T) {
	s := New(marker{}, &fakeCorrelator{})
	out := &stagetest.Output{}
	in := &record.Batch{ID: "b", Records: []record.Record{exec("r1"), {Kind: record.KindAccess}, exec("r1"), exec("r2")}}
	if err := s.Handle(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	got := out.Emitted()
	if len(got) != 1 || got[0] != in {
		t.Fatalf("emitted %v, want the input batch once", got)
	}
	if n := len(in.Records); n != 5 {
		t.Fatalf("%d records, want the 4 lines and 1 summary", n)
	}
	for i, r := range in.Records[:4] {
		if r.Service != "parsed" {
			t.Errorf("record %d not parsed", i)
		}
	}
	if sum := in.Records[4]; sum.Kind != record.KindSummary || sum.EventID != "sum-r1" {
		t.Errorf("summary %+v, want r1's", sum)
	}
}

// TestFlushReportsWhatItCouldNotEmit: the summaries still open at shutdown
// are emitted; when that fails, Flush says how many were lost.
func TestFlushReportsWhatItCouldNotEmit(t *testing.T) {
	c := &fakeCorrelator{}
	s := New(marker{}, c)
	in := &record.Batch{Records: []record.Record{exec("a"), exec("b")}}
	if err := s.Handle(context.Background(), in, &stagetest.Output{}); err != nil {
		t.Fatal(err)
	}
	lost, err := s.Flush(context.Background(), &stagetest.Output{Err: errors.New("broker gone")})
	if err == nil || lost != 2 {
		t.Fatalf("Flush = %d, %v; want 2 lost and the error", lost, err)
	}

	in = &record.Batch{Records: []record.Record{exec("c")}}
	if err := s.Handle(context.Background(), in, &stagetest.Output{}); err != nil {
		t.Fatal(err)
	}
	out := &stagetest.Output{}
	if lost, err := s.Flush(context.Background(), out); err != nil || lost != 0 {
		t.Fatalf("Flush = %d, %v", lost, err)
	}
	if got := out.Emitted(); len(got) != 1 || got[0].Len() != 1 || got[0].Ack != nil {
		t.Errorf("flushed %v, want one batch of 1 summary without an acknowledgement", got)
	}
	if lost, err := New(marker{}, nil).Flush(context.Background(), out); err != nil || lost != 0 {
		t.Errorf("without a correlator Flush = %d, %v", lost, err)
	}
}

// TestRunExpiryEmitsTimedOutRequestsUntilCancelled.
func TestRunExpiryEmitsTimedOutRequestsUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeCorrelator{expired: []record.Record{{Kind: record.KindSummary, EventID: "late"}}}
		s := New(marker{}, c)
		out := &stagetest.Output{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.RunExpiry(ctx, out, ExpiryInterval(time.Second), slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
		time.Sleep(ExpiryInterval(time.Second))
		synctest.Wait()
		if got := out.Emitted(); len(got) != 1 || got[0].Records[0].EventID != "late" {
			t.Fatalf("after one interval emitted %v, want the expired summary", got)
		}
		cancel()
		<-done
	})
	if got := ExpiryInterval(time.Second); got != 250*time.Millisecond {
		t.Errorf("ExpiryInterval(1s) = %s", got)
	}
	if got := ExpiryInterval(time.Millisecond); got != 100*time.Millisecond {
		t.Errorf("ExpiryInterval(1ms) = %s, want the 100ms floor", got)
	}
}
