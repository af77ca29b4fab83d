// Package lease gives one worker of a fleet the right to do a piece of
// work — poll an account, run a replay, handle a Firehose request — and
// hands it to another when the holder dies, through any compare-and-swap
// store (package cas: S3 conditional writes, NATS key-value).
//
// A lease is one small document, written only with conditional writes:
//
//	{"holder":"host/pid/nonce","state":"held","renewed":"…","ttl_ms":30000}
//
// The holder rewrites it every TTL/3. Whoever else looks at it takes it
// over only when the document has not changed for a whole TTL by its own
// monotonic clock (or was released, or says it expired more than a TTL
// ago by the wall clock, which tolerates clocks up to a TTL apart), and
// then only with a conditional write on the version it watched: of two
// workers taking over at once, one wins.
//
// The holder counts its hold from the moment it sent its last successful
// write, less a margin (TTL/5): another worker starts counting only once it
// sees that write, after it landed, so the holder's hold always ends
// before anyone else's can begin, whatever the network delays (clock
// rates are assumed to agree within the margin). Work done under a lease
// runs under the context Held returns, which ends with the hold.
//
// A lease is never deleted: a holder that stops releases it (state
// "released", taken at once by the next), and a finished piece of work
// can be marked done (state "done", never taken again), which is how a
// Firehose request id is remembered fleet-wide once delivered.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
)

// Config is a lease's settings.
type Config struct {
	// TTL is how long a lease outlives its holder's last renewal: another
	// worker takes it over within about TTL·1.5 of the holder's death.
	TTL time.Duration `yaml:"ttl"`
}

// DefaultConfig is TTL 30s: a dead holder's work resumes elsewhere within
// 45 s, for two small writes a minute per lease while held.
func DefaultConfig() Config { return Config{TTL: 30 * time.Second} }

// Validate reports a TTL out of range.
func (c Config) Validate() error {
	if c.TTL < time.Second || c.TTL > time.Hour {
		return fmt.Errorf("ttl: must be 1s to 1h, got %s", c.TTL)
	}
	return nil
}

// Record states.
const (
	StateHeld     = "held"
	StateReleased = "released"
	StateDone     = "done"
)

// Record is a lease's document.
type Record struct {
	Holder  string    `json:"holder"`
	State   string    `json:"state"`
	Renewed time.Time `json:"renewed"` // the writer's wall clock
	TTLMs   int64     `json:"ttl_ms"`
}

func (r Record) ttl() time.Duration { return time.Duration(r.TTLMs) * time.Millisecond }

// HeldError is Acquire's answer when another live worker holds the lease.
type HeldError struct {
	Key     string // the lease's key, with its store
	Holder  string
	Renewed time.Time
	TTL     time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s, which renewed it at %s (every %s): another worker is running this; if it is dead, its lease expires within %s",
		e.Key, e.Holder, e.Renewed.UTC().Format(time.RFC3339), (e.TTL / 3).Round(time.Millisecond), e.TTL)
}

var (
	// ErrDone is Try's answer for a lease marked done.
	ErrDone = errors.New("lease: the work was done")
	// ErrLost ends a hold's context: renewing found another holder, or
	// the hold ran out before a renewal got through.
	ErrLost = errors.New("lease lost")
	// ErrReleased ends a hold's context on Release and Finish.
	ErrReleased = errors.New("lease released")
)

// Holder names this process: host, pid and a nonce, so that a restarted
// process (containers reuse host names and pid 1) is someone else.
func Holder() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Option configures a Lease.
type Option func(*Lease)

// WithClock replaces time.Now (tests; its readings must carry a monotonic
// clock for the lease to ignore wall-clock steps).
func WithClock(now func() time.Time) Option { return func(l *Lease) { l.now = now } }

// Lease is one lease, as one worker sees it. Its methods are safe for
// concurrent use.
type Lease struct {
	store  cas.Store
	key    string
	holder string
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	version string // our record's, while held
	held    bool
	until   time.Time // the hold's end (local clock)
	hold    context.Context
	end     context.CancelCauseFunc
	timer   *time.Timer
	// What was last seen of another's record, and since when unchanged.
	seenVersion string
	seenAt      time.Time
	seen        Record
}

// New returns the lease at key in store, as holder sees it.
func New(store cas.Store, key, holder string, cfg Config, opts ...Option) *Lease {
	if cfg.TTL <= 0 {
		cfg = DefaultConfig()
	}
	l := &Lease{store: store, key: key, holder: holder, ttl: cfg.TTL, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Key is the lease's key with its store, for messages.
func (l *Lease) Key() string { return l.store.Name() + l.key }

// margin is how much sooner than the others would the holder stop.
func (l *Lease) margin() time.Duration { return l.ttl / 5 }

// Held returns the current hold's context, which ends (cause ErrLost or
// ErrReleased) when the hold does, and whether the lease is held.
func (l *Lease) Held() (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return nil, false
	}
	return l.hold, true
}

// Remaining is how long the hold lasts without another renewal; 0 when
// not held.
func (l *Lease) Remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.held {
		return 0
	}
	return max(l.until.Sub(l.now()), 0)
}

// Try makes one attempt: it renews the lease when held, and otherwise
// takes it if it is free, released, or stale. It reports whether the
// lease is held after the attempt; ErrDone when the lease is marked done.
// A store that cannot be reached is an error; a hold survives it until
// its time runs out.
func (l *Lease) Try(ctx context.Context) (bool, error) {
	l.mu.Lock()
	held, version := l.held, l.version
	l.mu.Unlock()
	if held {
		return l.write(ctx, StateHeld, version)
	}
	var (
		data []byte
		err  error
	)
	if l.seenVersion == "" {
		// Most leases asked for are free (a new request id): create first.
		if ok, err := l.write(ctx, StateHeld, ""); err == nil || !errors.Is(err, cas.ErrConflict) {
			return ok, err
		}
	}
	data, version, err = l.store.Get(ctx, l.key)
	if errors.Is(err, cas.ErrNotFound) {
		return l.write(ctx, StateHeld, "")
	}
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", l.Key(), err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		// Not a lease of ours: written over only once it has stayed so
		// for a TTL, as any stale lease.
		rec = Record{State: StateHeld, TTLMs: l.ttl.Milliseconds()}
	}
	now := l.now()
	l.mu.Lock()
	if version != l.seenVersion {
		l.seenVersion, l.seenAt, l.seen = version, now, rec
	}
	seenAt := l.seenAt
	l.mu.Unlock()
	switch {
	case rec.State == StateDone:
		return false, ErrDone
	case rec.State == StateReleased, rec.Holder == l.holder:
	case now.Sub(seenAt) >= max(rec.ttl(), l.ttl):
		// Unchanged for a whole TTL by our own clock: its holder is gone.
	case !rec.Renewed.IsZero() && now.Sub(rec.Renewed) > 2*max(rec.ttl(), l.ttl):
		// Expired long ago by the wall clock (clocks within a TTL).
	default:
		return false, nil
	}
	return l.write(ctx, StateHeld, version)
}

// write puts our record in state, conditionally on version ("" creates),
// and updates the hold: taken or extended when it went through, lost when
// another write came first.
func (l *Lease) write(ctx context.Context, state, version string) (bool, error) {
	sent := l.now()
	data, _ := json.Marshal(Record{Holder: l.holder, State: state, Renewed: sent.Round(0).UTC(), TTLMs: l.ttl.Milliseconds()})
	var err error
	matched := version
	if version == "" {
		version, err = l.store.Create(ctx, l.key, data)
	} else {
		version, err = l.store.Update(ctx, l.key, data, version)
	}
	if matched != "" && errors.Is(err, cas.ErrConflict) {
		// An earlier write of ours may have landed with its answer lost (its
		// context ended in flight: a holder stopping while it renewed, a
		// timeout): the record is then still ours, at a version never
		// learnt, and nobody took it over. Without this, a release would
		// leave it held for a TTL, and a renewal would give up a live hold.
		// (A create that conflicts is Try's common case, which reads the
		// record next anyway.)
		if v, ok := l.ours(ctx); ok && v != matched {
			sent = l.now()
			data, _ = json.Marshal(Record{Holder: l.holder, State: state, Renewed: sent.Round(0).UTC(), TTLMs: l.ttl.Milliseconds()})
			version, err = l.store.Update(ctx, l.key, data, v)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, cas.ErrConflict):
		l.loseLocked(ErrLost)
		l.seenVersion = "" // look again
		return false, err
	case err != nil:
		return l.held, fmt.Errorf("lease %s: %w", l.Key(), err)
	case state != StateHeld:
		l.version = version
		l.loseLocked(ErrReleased)
		return false, nil
	}
	l.version, l.until = version, sent.Add(l.ttl-l.margin())
	if !l.held {
		l.held = true
		l.hold, l.end = context.WithCancelCause(context.Background())
		end := l.end
		l.timer = time.AfterFunc(l.ttl-l.margin(), func() { l.expire(end) })
	} else {
		l.timer.Reset(max(l.until.Sub(l.now()), 0))
	}
	return true, nil
}

// ours returns the stored record's version when it is ours and held.
func (l *Lease) ours(ctx context.Context) (string, bool) {
	data, version, err := l.store.Get(ctx, l.key)
	if err != nil {
		return "", false
	}
	var rec Record
	if json.Unmarshal(data, &rec) != nil || rec.Holder != l.holder || rec.State != StateHeld {
		return "", false
	}
	return version, true
}

// expire ends a hold whose time ran out without a renewal.
func (l *Lease) expire(end context.CancelCauseFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held && l.now().Before(l.until) {
		return // renewed meanwhile; the timer was reset
	}
	l.loseLocked(ErrLost)
	end(ErrLost)
}

func (l *Lease) loseLocked(cause error) {
	if !l.held {
		return
	}
	l.held = false
	l.timer.Stop()
	l.end(cause)
}

// Acquire takes the lease, or returns a *HeldError once its holder shows
// it is alive (it renewed the lease while Acquire watched). A lease whose
// holder died is taken once it has stayed unchanged for a TTL: Acquire
// returns within about TTL·1.25. A store that cannot be reached is
// retried until ctx ends.
func (l *Lease) Acquire(ctx context.Context) error { return l.AcquireWaiting(ctx, nil) }

// AcquireWaiting is Acquire, calling waiting (when set) once it finds the
// lease held by another and starts waiting, with the record it saw and
// the longest it waits for it: a wait of up to a TTL is otherwise silent.
func (l *Lease) AcquireWaiting(ctx context.Context, waiting func(held Record, upTo time.Duration)) error {
	first := ""
	for {
		held, err := l.Try(ctx)
		switch {
		case held:
			return nil
		case errors.Is(err, ErrDone):
			return err
		case err != nil && ctx.Err() != nil:
			return err
		}
		l.mu.Lock()
		seen, version := l.seen, l.seenVersion
		l.mu.Unlock()
		switch {
		case err != nil || version == "":
		case first == "":
			first = version
			if waiting != nil && seen.State == StateHeld {
				waiting(seen, max(seen.ttl(), l.ttl))
			}
		case version != first && seen.State == StateHeld:
			return &HeldError{Key: l.Key(), Holder: seen.Holder, Renewed: seen.Renewed, TTL: seen.ttl()}
		}
		if err := backoff.Sleep(ctx, l.ttl/4); err != nil {
			return err
		}
	}
}

// Keep holds on to the lease until ctx ends: it renews it every TTL/3
// while held, and tries to take it every TTL/4 while not (a standby), then
// releases it. changed, when set, is called as the lease is taken or lost.
func (l *Lease) Keep(ctx context.Context, changed func(held bool)) {
	wasHeld := false
	for {
		held, _ := l.Try(ctx)
		if held != wasHeld && changed != nil {
			changed(held)
		}
		wasHeld = held
		every := l.ttl / 4
		if held {
			every = l.ttl / 3
		}
		if backoff.Sleep(ctx, every) != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/3)
			_ = l.Release(rctx)
			cancel()
			if wasHeld && changed != nil {
				changed(false)
			}
			return
		}
	}
}

// Release gives the lease up, so that the next worker takes it at once.
func (l *Lease) Release(ctx context.Context) error { return l.settle(ctx, StateReleased) }

// Finish marks the work done: the lease is never taken again (a Firehose
// request id delivered), and the hold ends.
func (l *Lease) Finish(ctx context.Context) error { return l.settle(ctx, StateDone) }

func (l *Lease) settle(ctx context.Context, state string) error {
	l.mu.Lock()
	held, version := l.held, l.version
	if held {
		// The hold ends now, whatever the write's fate: nothing more may
		// be done under it.
		l.loseLocked(ErrReleased)
	}
	l.mu.Unlock()
	if !held {
		return nil
	}
	_, err := l.write(ctx, state, version)
	if errors.Is(err, cas.ErrConflict) {
		return nil // someone else holds it already
	}
	return err
}
