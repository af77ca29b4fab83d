package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// S3Suffix ends the name of an S3 archive's objects.
const S3Suffix = ".jsonl.gz"

// maxNameAttempts bounds the names tried for one object: each taken name
// means another writer of the same host, pid and millisecond.
const maxNameAttempts = 100

// flushTimeout bounds the writing of one object, the SDK's retries
// included.
const flushTimeout = 2 * time.Minute

// S3Archive keeps dead letters in S3, where they outlive the worker that
// wrote them: gzip-compressed JSON-lines objects in the format of the
// local archive (Entry), named
//
//	<prefix>dlq-<UTC time, ms>-<host>-<pid>-<6-digit seq>.jsonl.gz
//
// so that names sort in writing order and workers never collide — and if
// two ever chose the same name (a restarted container: same host name,
// same pid), the write is conditional (If-None-Match: *) and the second
// takes the next number instead of overwriting.
//
// Letters are gathered: a write joins the object being filled, which is
// written when it holds MaxObjectBytes of letters or Linger after its
// first, and Write returns only once that object is in S3 — with the same
// guarantee as the local archive: when S3 cannot be reached, Write fails,
// the batch is not acknowledged, and its source sends it again. An object
// is written whole or not at all, so a failure leaves nothing partial.
type S3Archive struct {
	store  cas.Store
	url    string
	cfg    Config
	host   string
	pid    int
	now    func() time.Time
	counts s3Counts

	mu      sync.Mutex
	cur     *object
	seq     int
	closed  bool
	writing sync.WaitGroup // objects being written
}

type s3Counts struct {
	objects, bytes, letters, failures atomic.Int64
}

// object is the S3 object being filled, and then written.
type object struct {
	started time.Time
	raw     int64 // letters' bytes, uncompressed
	letters int64
	buf     bytes.Buffer
	zw      *gzip.Writer
	timer   *time.Timer
	sealed  bool          // no more letters join it
	done    chan struct{} // closed once written, or failed
	err     error
}

// S3Option configures an S3Archive.
type S3Option func(*S3Archive)

// WithS3Clock replaces time.Now (tests).
func WithS3Clock(now func() time.Time) S3Option { return func(a *S3Archive) { a.now = now } }

// WithS3Host replaces the host name in object names (tests that play two
// workers on one host).
func WithS3Host(host string, pid int) S3Option {
	return func(a *S3Archive) { a.host, a.pid = host, pid }
}

// NewS3 returns the archive writing to store (cas.NewS3 of the archive's
// bucket and prefix); url names it in messages. RegisterMetrics shows its
// counters.
func NewS3(store cas.Store, url string, cfg Config, opts ...S3Option) *S3Archive {
	host, _ := os.Hostname()
	a := &S3Archive{store: store, url: url, cfg: cfg, host: host, pid: os.Getpid(), now: time.Now}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Location is the archive's s3:// URL.
func (a *S3Archive) Location() string { return a.url }

// Handle implements stage.Handler: the dlq stage.
func (a *S3Archive) Handle(ctx context.Context, in *record.Batch, _ stage.Output) error {
	return a.Write(ctx, in)
}

// errClosed is a write after Close.
var errClosed = errors.New("dead-letter archive closed")

// Write adds b's letters to the object being filled and returns once that
// object is written. On error nothing of b counts as archived: the caller
// must not acknowledge it. ctx only bounds the wait for a place in an
// object: once the letters joined one, Write waits for its outcome, so
// that a letter is never reported lost while it may be stored.
func (a *S3Archive) Write(ctx context.Context, b *record.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := a.now().UTC()
	var letters bytes.Buffer
	if err := encode(&letters, b, now); err != nil {
		return stage.Permanent(err)
	}
	if letters.Len() == 0 {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errClosed
	}
	o := a.cur
	if o == nil {
		o = a.startLocked(now)
	}
	if _, err := o.zw.Write(letters.Bytes()); err != nil { // into memory: cannot fail
		a.mu.Unlock()
		return err
	}
	o.raw += int64(letters.Len())
	o.letters += int64(b.Len())
	full := o.raw >= a.cfg.MaxObjectBytes
	if full {
		a.sealLocked(o)
	}
	a.mu.Unlock()
	if full {
		a.write(o)
	}
	<-o.done
	return o.err
}

func (a *S3Archive) startLocked(now time.Time) *object {
	o := &object{started: now, done: make(chan struct{})}
	o.zw, _ = gzip.NewWriterLevel(&o.buf, gzip.DefaultCompression)
	a.cur = o
	a.writing.Add(1)
	o.timer = time.AfterFunc(a.cfg.Linger, func() {
		a.mu.Lock()
		if o.sealed {
			a.mu.Unlock()
			return
		}
		a.sealLocked(o)
		a.mu.Unlock()
		a.write(o)
	})
	return o
}

// sealLocked closes o to new letters; its writer then writes it.
func (a *S3Archive) sealLocked(o *object) {
	o.sealed = true
	o.timer.Stop()
	if a.cur == o {
		a.cur = nil
	}
}

// write puts the sealed object o under a name no object has, and tells
// its writers the outcome.
func (a *S3Archive) write(o *object) {
	defer a.writing.Done()
	defer close(o.done)
	if err := o.zw.Close(); err != nil {
		o.err = fmt.Errorf("compress dead letters: %w", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		if attempt == maxNameAttempts {
			a.counts.failures.Add(1)
			o.err = fmt.Errorf("write dead letters to %s: %d names in a row were taken", a.url, attempt)
			return
		}
		a.mu.Lock()
		a.seq++
		name := fmt.Sprintf("dlq-%s-%s-%d-%06d%s", o.started.Format("20060102T150405.000Z"), a.host, a.pid, a.seq, S3Suffix)
		a.mu.Unlock()
		_, err := a.store.Create(ctx, name, o.buf.Bytes())
		if errors.Is(err, cas.ErrConflict) {
			continue // taken (a restarted worker of the same name): the next number
		}
		if err != nil {
			a.counts.failures.Add(1)
			o.err = fmt.Errorf("write dead letters to %s%s: %w", a.url, name, err)
			return
		}
		a.counts.objects.Add(1)
		a.counts.bytes.Add(int64(o.buf.Len()))
		a.counts.letters.Add(o.letters)
		return
	}
}

// Close writes the object being filled and waits for every object being
// written; later writes fail.
func (a *S3Archive) Close() error {
	a.mu.Lock()
	a.closed = true
	o := a.cur
	if o != nil {
		a.sealLocked(o)
	}
	a.mu.Unlock()
	if o != nil {
		a.write(o)
	}
	a.writing.Wait()
	if o != nil && o.err != nil {
		return o.err
	}
	return nil
}
