package replay

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar is the replay's progress bar: bytes read against the bytes of the
// objects listed so far (the total grows while the listing runs), with
// objects and events in its description and an ETA. A nil writer makes
// every method a no-op.
type bar struct {
	pb      *progressbar.ProgressBar
	w       io.Writer
	verb    string
	objects atomic.Int64 // listed
	total   atomic.Int64
	last    atomic.Int64 // unix nanos of the last description update
}

func newBar(w io.Writer, dryRun bool) *bar {
	if w == nil {
		return nil
	}
	b := &bar{verb: "sent"}
	if dryRun {
		b.verb = "counted"
	}
	b.pb = progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("replay: listing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
	b.w = w
	return b
}

func (b *bar) addObject(size int64) {
	if b == nil {
		return
	}
	b.objects.Add(1)
	b.pb.ChangeMax64(b.total.Add(size))
}

func (b *bar) addBytes(n int64) {
	if b == nil || n <= 0 {
		return
	}
	_ = b.pb.Add64(n)
}

func (b *bar) objectDone(e *Engine) { b.describe(e, true) }

func (b *bar) update(e *Engine) { b.describe(e, false) }

// describe refreshes the description at most every 200ms (unless forced):
// it is called for every batch.
func (b *bar) describe(e *Engine, force bool) {
	if b == nil {
		return
	}
	now := time.Now().UnixNano()
	last := b.last.Load()
	if !force && now-last < int64(200*time.Millisecond) {
		return
	}
	if !b.last.CompareAndSwap(last, now) {
		return
	}
	b.pb.Describe(fmt.Sprintf("objects %d/%d · events %d %s · %d too old", e.objects.Load(), b.objects.Load(), e.sent.Load(), b.verb, e.tooOld.Load()+e.retimestamped.Load()))
}

func (b *bar) finish() {
	if b == nil {
		return
	}
	if b.total.Load() == 0 {
		b.pb.ChangeMax64(1)
		_ = b.pb.Add64(1)
	}
	_ = b.pb.Finish()
	fmt.Fprintln(b.w) // end the bar's line before the summary
}
