// Package replay reads an archive again: the objects of an S3 bucket and
// prefix that hold events of a time range (Firehose CloudWatch objects,
// direct access-log objects, export-task objects, Firehose error backups),
// or gwpipe's own dead-letter archive, and sends their events down the
// pipeline again, tagged replay:true.
//
// A replay streams every object (package s3obj), so an object's size does
// not matter; it reads several objects at once, holds the pace it is given
// in events per second, and records in a checkpoint file what Datadog
// acknowledged, so that an interrupted replay resumes without sending
// anything twice. Datadog drops logs older than 18 hours: such events are
// skipped and counted, or re-timestamped when asked.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
)

// Policies for events older than Config.MaxAge.
const (
	OldLogsSkip        = "skip"
	OldLogsRetimestamp = "retimestamp"
)

// Object selection modes (Config.SelectBy).
const (
	SelectAuto     = "auto"
	SelectKey      = "key"
	SelectModified = "modified"
	SelectNone     = "none"
)

// RetimestampedTag marks an event sent with the replay's time instead of
// its own.
const RetimestampedTag = "retimestamped:true"

// Emitter is where a replay publishes (a stage.Output of the decoded topic).
type Emitter interface {
	Emit(ctx context.Context, b *record.Batch) error
	DeadLetter(ctx context.Context, b *record.Batch) error
}

// Config describes a replay.
type Config struct {
	// Bucket and Prefix name the archive in S3; Dir names a local
	// directory instead (the dead-letter archive). One of them is required.
	Bucket, Prefix string
	Dir            string
	// DirPattern selects the files of Dir (default "dlq-*.jsonl").
	DirPattern string
	// KeyPattern, when set, selects the objects of a bucket by the last
	// part of their key (path.Match): the dead-letter archive's objects,
	// not the leases and markers beside them.
	KeyPattern string
	// Layout forces the objects' layout; LayoutAuto detects it per object.
	Layout s3obj.Layout
	// From and To bound event time ([From, To)); zero is unbounded.
	From, To time.Time
	// SelectBy chooses which objects to open: SelectKey (the Firehose
	// YYYY/MM/DD/HH key), SelectModified (an object holds no event later
	// than its last modification), SelectAuto (the key when it has the
	// layout, else the modification time) or SelectNone.
	SelectBy string
	KeySlack time.Duration // widens the key-time window on both sides
	// Concurrency is the number of objects read at once (default 4).
	Concurrency int
	// Rate limits events per second; 0 is unlimited.
	Rate float64
	// MaxInFlightEvents bounds the events sent and not yet acknowledged
	// (default 10,000): the replay's memory does not depend on how many
	// batches the stages downstream are willing to queue.
	MaxInFlightEvents int
	// DryRun reads and counts without sending anything or writing the
	// checkpoint.
	DryRun bool
	// Checkpoint is the checkpoint file; empty means none.
	Checkpoint string
	// CheckpointStore keeps the checkpoint elsewhere than in a file (an
	// S3 object: StoreCheckpoint); it replaces Checkpoint.
	CheckpointStore CheckpointStore
	// Lease, when set, is held for the whole run: a second replay with
	// the same lease is refused (lease.HeldError) while this one runs,
	// and this one stops, saving nothing more, if it ever loses the lease
	// (another took over after it could not renew for a TTL).
	Lease *lease.Lease
	// Ledger, for gwpipe's dead-letter archive, replaces the checkpoint:
	// it keeps beside the archive, per object, the entries (letters) that
	// were settled — delivered, or dead-lettered into another archive —
	// so that the same replay run again sends only what is left.
	Ledger Ledger
	// Exclude lists directories of Dir (relative, slash-separated), or
	// key prefixes of a bucket, that are not read: where a replay of the
	// archive writes its own dead letters.
	Exclude []string
	// OldLogs is OldLogsSkip or OldLogsRetimestamp, for events older than
	// MaxAge (default 17h50m: Datadog drops logs older than 18 hours).
	OldLogs string
	MaxAge  time.Duration
	// MetricMaxAge is the age beyond which metric points (from archived
	// metric streams, and the dead-letter archive's) are skipped and
	// counted (default 55m: the metrics API drops points more than an hour
	// old). They are never re-timestamped: a point belongs to its period.
	MetricMaxAge time.Duration
	// Region fills the records' origin (the bucket's region).
	Region string
	Object s3obj.Config
	// Progress receives a progress bar; nil shows none.
	Progress io.Writer
	// Drain bounds how long an interrupted replay waits for what it
	// already sent before it saves the checkpoint (default 60s).
	Drain time.Duration
	// CheckpointEvery is how often the checkpoint is saved (default 1s).
	CheckpointEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Settle says the caller calls Engine.Settle once Run returned (a
	// pipeline, after its shutdown): Run then leaves the lease held for
	// Settle's write, and Settle releases it.
	Settle bool
}

// DefaultConfig holds the defaults of a replay (gwpipe replay --help
// shows them): objects chosen by key or time, a 1h key slack, 4 objects at
// once, 10,000 events in flight, 500 events per batch, old logs skipped.
func DefaultConfig() Config {
	return Config{
		DirPattern: "dlq-*.jsonl", SelectBy: SelectAuto, KeySlack: time.Hour, Concurrency: 4,
		MaxInFlightEvents: 10_000, OldLogs: OldLogsSkip,
		// Datadog drops logs older than 18 h; the margin leaves time for an
		// event to travel from the archive to the intake.
		MaxAge:       17*time.Hour + 50*time.Minute,
		MetricMaxAge: 55 * time.Minute,
		Object:       s3obj.Config{EventsPerBatch: 500},
		Drain:        60 * time.Second, CheckpointEvery: time.Second,
	}
}

// setDefaults gives the fields left zero whose zero is no setting
// DefaultConfig's values (KeySlack and Rate 0 mean none), and checks.
func (c *Config) setDefaults() error {
	if (c.Bucket == "") == (c.Dir == "") {
		return errors.New("replay: name either a bucket or a directory")
	}
	d := DefaultConfig()
	if c.DirPattern == "" {
		c.DirPattern = d.DirPattern
	}
	if c.SelectBy == "" {
		c.SelectBy = d.SelectBy
	}
	switch c.SelectBy {
	case SelectAuto, SelectKey, SelectModified, SelectNone:
	default:
		return fmt.Errorf("replay: unknown object selection %q", c.SelectBy)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
	if c.OldLogs == "" {
		c.OldLogs = d.OldLogs
	}
	if c.OldLogs != OldLogsSkip && c.OldLogs != OldLogsRetimestamp {
		return fmt.Errorf("replay: old logs policy must be %s or %s, not %q", OldLogsSkip, OldLogsRetimestamp, c.OldLogs)
	}
	for _, f := range []struct{ v, d *time.Duration }{{&c.MaxAge, &d.MaxAge}, {&c.MetricMaxAge, &d.MetricMaxAge}, {&c.Drain, &d.Drain}, {&c.CheckpointEvery, &d.CheckpointEvery}} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if c.MaxInFlightEvents <= 0 {
		c.MaxInFlightEvents = d.MaxInFlightEvents
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CheckpointStore == nil && c.Checkpoint != "" {
		c.CheckpointStore = FileCheckpoint(c.Checkpoint)
	}
	if c.Ledger != nil && c.CheckpointStore != nil {
		return errors.New("replay: a ledger and a checkpoint both record progress: use one")
	}
	if !c.From.IsZero() && !c.To.IsZero() && !c.From.Before(c.To) {
		return fmt.Errorf("replay: from (%s) must be before to (%s)", c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
	}
	return nil
}

// Summary is what a replay did.
type Summary struct {
	Source      string
	DryRun      bool
	Interrupted bool
	Resumed     bool // a checkpoint had progress from an earlier run
	// AlreadyComplete: the checkpoint says an earlier run finished the
	// replay; nothing was done.
	AlreadyComplete bool

	Objects            int64 // read to the end and acknowledged
	ObjectsFailed      int64 // could not be read, or not delivered
	ObjectsSkipped     int64 // outside the time range, or holding no logs
	ObjectsAlreadyDone int64 // done by an earlier run (checkpoint)
	// ObjectsInterrupted were being read or delivered when the replay was
	// interrupted (their batches handed back by the pipeline's shutdown
	// included): the next run finishes them.
	ObjectsInterrupted int64

	Bytes            int64 // read, as stored
	Events           int64 // read
	Sent             int64 // delivered (or, in a dry run, that would be sent)
	TooOld           int64 // older than the age limit, skipped
	Retimestamped    int64 // older than the age limit, sent with the replay's time
	OutOfRange       int64 // outside [From, To)
	AlreadyDelivered int64 // delivered by an earlier run (checkpoint; with a ledger: letters settled by an earlier run)
	// Ledger: progress is kept in the archive's ledger (dead letters)
	// rather than a checkpoint.
	Ledger bool
	// Checkpoint names where the checkpoint is kept ("" for none).
	Checkpoint string
	// NotSaved, when set, says why the last write of the checkpoint (or
	// of the ledger) at the end failed: a run with it resumes from its
	// last save and sends again what was delivered since.
	NotSaved    string
	DeadLetters int64 // unreadable parts of objects, dead-lettered
	Control     int64 // CONTROL_MESSAGE documents dropped
	// PartialLines are dead-letter entries cut short by a failed write (a
	// full disk, a crash), skipped: their batch was refused and sent again.
	PartialLines int64

	// Metric points read from archived metric streams (and the dead-letter
	// archive), sent (or, in a dry run, that would be sent), older than
	// MetricMaxAge, outside [From, To).
	Points, PointsSent, PointsTooOld, PointsOutOfRange int64

	Duration time.Duration
}

// EventsPerSecond is the rate of events sent.
func (s Summary) EventsPerSecond() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Duration.Seconds()
}

// Write prints the summary for a person.
func (s Summary) Write(w io.Writer) {
	var b strings.Builder
	verb := "sent"
	if s.DryRun {
		verb = "to send (dry run)"
	}
	fmt.Fprintf(&b, "replay of %s", redact.URL(s.Source))
	if s.Interrupted {
		switch {
		case s.DryRun:
			b.WriteString(" (interrupted)")
		case s.NotSaved != "" && s.Ledger:
			b.WriteString(" (interrupted, and its ledger could not be saved: run it again to resume from the ledger's last save, which sends again what was delivered since)")
		case s.NotSaved != "":
			b.WriteString(" (interrupted, and its checkpoint could not be saved: run it again with the same checkpoint to resume from its last save, which sends again what was delivered since)")
		case s.Ledger:
			b.WriteString(" (interrupted: run it again to resume)")
		case s.Checkpoint == "":
			b.WriteString(" (interrupted, with no checkpoint (--checkpoint): run again, it starts from the beginning)")
		default:
			b.WriteString(" (interrupted: run it again with the same checkpoint to resume)")
		}
	}
	if s.AlreadyComplete {
		b.WriteString(" (already complete according to the checkpoint: nothing to do; delete the checkpoint to replay again)")
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "  objects          %d read, %d skipped (time range or no logs), %d already done, %d failed", s.Objects, s.ObjectsSkipped, s.ObjectsAlreadyDone, s.ObjectsFailed)
	if s.ObjectsInterrupted > 0 {
		fmt.Fprintf(&b, ", %d interrupted (the next run finishes them)", s.ObjectsInterrupted)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "  bytes            %d\n", s.Bytes)
	fmt.Fprintf(&b, "  events read      %d\n", s.Events)
	fmt.Fprintf(&b, "  events %-9s %d\n", verb, s.Sent)
	fmt.Fprintf(&b, "  too old (>18h)   %d skipped, %d re-timestamped\n", s.TooOld, s.Retimestamped)
	fmt.Fprintf(&b, "  outside range    %d\n", s.OutOfRange)
	if s.Ledger {
		fmt.Fprintf(&b, "  already settled  %d letters (the archive's ledger: sent or dead-lettered by an earlier run)\n", s.AlreadyDelivered)
	} else {
		fmt.Fprintf(&b, "  already sent     %d (checkpoint)\n", s.AlreadyDelivered)
	}
	if s.Points > 0 {
		fmt.Fprintf(&b, "  metric points    %d read, %d %s, %d too old (>1h), %d outside range\n", s.Points, s.PointsSent, verb, s.PointsTooOld, s.PointsOutOfRange)
	}
	fmt.Fprintf(&b, "  dead-lettered    %d (unreadable parts of objects, by the replay's reader)\n", s.DeadLetters)
	if s.PartialLines > 0 {
		fmt.Fprintf(&b, "  partial lines    %d (dead letters cut short by a failed write; skipped, their batch was sent again)\n", s.PartialLines)
	}
	if s.NotSaved != "" {
		what := "checkpoint"
		if s.Ledger {
			what = "ledger"
		}
		fmt.Fprintf(&b, "  %-16s not saved: %s\n", what, s.NotSaved)
	}
	fmt.Fprintf(&b, "  duration         %s (%.0f events/s)\n", s.Duration.Round(time.Millisecond), s.EventsPerSecond())
	_, _ = io.WriteString(w, b.String())
}

// Engine runs one replay.
type Engine struct {
	cfg     Config
	store   store
	out     Emitter
	log     *slog.Logger
	limiter *rate.Limiter
	window  *semaphore.Weighted // events in flight
	bar     *bar

	prog  *progress       // checkpoint mode
	led   *ledgerProgress // ledger mode
	lease context.Context // the hold of Config.Lease, while it runs
	// countedDone: the checkpoint counts its done keys (ObjectsAlreadyDone
	// starts from it), so the listing does not count them again.
	countedDone bool
	inflight    sync.WaitGroup
	// stopped is closed once the run sends nothing more (its readers
	// ended); what it sent may still be in flight.
	stopped     chan struct{}
	stoppedOnce sync.Once
	// drained is closed once Run is done waiting for what it sent (all
	// acknowledged, or it gave up); it saves the checkpoint then.
	drained     chan struct{}
	drainedOnce sync.Once

	objects, objectsFailed, objectsSkipped, objectsAlreadyDone      atomic.Int64
	objectsInterrupted                                              atomic.Int64
	bytes, events, sent, tooOld, retimestamped, outOfRange, already atomic.Int64
	dead, control, listed, partial                                  atomic.Int64
	points, pointsSent, pointsTooOld, pointsOutOfRange              atomic.Int64

	// The end of the run: whether it was complete, and why the last write
	// of the checkpoint (or ledger) failed, if it did.
	endMu        sync.Mutex
	loaded       bool // the checkpoint was read: there is progress to save
	ran          bool
	settled      bool   // Settle was called
	releaseLease func() // the lease's release, left to Settle (Config.Settle)
	complete     bool
	notSaved     error
}

// New prepares a replay. client may be nil for a directory; out may be nil
// for a dry run.
func New(cfg Config, client S3API, out Emitter, log *slog.Logger) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if out == nil && !cfg.DryRun {
		return nil, errors.New("replay: nowhere to send events")
	}
	e := &Engine{cfg: cfg, out: out, log: log, window: semaphore.NewWeighted(int64(cfg.MaxInFlightEvents)), stopped: make(chan struct{}), drained: make(chan struct{})}
	if cfg.Ledger != nil {
		e.led = newLedgerProgress(cfg.Ledger)
	}
	if cfg.Dir != "" {
		e.store = &dirStore{dir: cfg.Dir, pattern: cfg.DirPattern, exclude: cfg.Exclude}
	} else {
		if client == nil {
			return nil, errors.New("replay: an S3 client is required to read a bucket")
		}
		e.store = &bucketStore{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, region: cfg.Region, pattern: cfg.KeyPattern, exclude: cfg.Exclude}
	}
	if cfg.Rate > 0 {
		burst := max(int(cfg.Rate), cfg.Object.EventsPerBatch, 1000)
		e.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	return e, nil
}

// Run replays until every selected object is read and acknowledged, or ctx
// ends (an interruption: what was sent is awaited for Config.Drain and the
// checkpoint saved). It returns the summary, and an error when the replay
// is incomplete.
func (e *Engine) Run(ctx context.Context) (Summary, error) {
	defer e.stopSending()
	defer e.doneDraining()
	start := e.cfg.Now()
	sum := Summary{Source: e.store.Name(), DryRun: e.cfg.DryRun, Ledger: e.led != nil}
	if e.cfg.CheckpointStore != nil {
		sum.Checkpoint = e.cfg.CheckpointStore.Name()
	}
	if e.cfg.Lease != nil && !e.cfg.DryRun {
		held, release, err := e.hold(ctx)
		if err != nil {
			return sum, err
		}
		defer func() {
			e.endMu.Lock()
			keep := e.cfg.Settle && !e.settled
			if keep {
				e.releaseLease = release // for Settle, whose write needs it
			}
			e.endMu.Unlock()
			if !keep {
				release()
			}
		}()
		ctx = held
	}
	ckpt, err := e.loadCheckpoint(ctx)
	if err != nil {
		return sum, err
	}
	sum.Resumed = ckpt.Watermark != "" || len(ckpt.Done) > 0 || len(ckpt.Partial) > 0
	// The listing starts after the watermark: what is behind it is
	// counted from the checkpoint (older checkpoints have no count: then
	// only the done keys the listing sees are).
	e.countedDone = ckpt.DoneObjects > 0
	e.objectsAlreadyDone.Store(ckpt.DoneObjects)
	if ckpt.Complete {
		e.log.Info("the checkpoint says this replay is complete: nothing to do (delete the checkpoint to replay again)", "checkpoint", e.cfg.CheckpointStore.Name())
		sum.AlreadyComplete = true
		sum.ObjectsAlreadyDone = ckpt.DoneObjects
		sum.Duration = e.cfg.Now().Sub(start)
		return sum, nil
	}
	e.prog = newProgress(ckpt)
	e.endMu.Lock()
	e.loaded = true
	e.endMu.Unlock()
	e.bar = newBar(e.cfg.Progress, e.cfg.DryRun)

	// The drain's time counts from the interruption, not from when the
	// readers stopped: it is a share of a shutdown's.
	var interruptedAt atomic.Int64
	stopWatch := context.AfterFunc(ctx, func() { interruptedAt.Store(time.Now().UnixNano()) })
	defer stopWatch()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	jobs := make(chan entry, e.cfg.Concurrency)
	listErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		listErr <- e.list(readCtx, jobs)
	}()
	var workers sync.WaitGroup
	for range e.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for en := range jobs {
				e.readObject(readCtx, en)
			}
		}()
	}
	saverDone := make(chan struct{})
	stopSaver := make(chan struct{})
	go e.saver(stopSaver, saverDone)

	workers.Wait()
	e.stopSending()
	lerr := <-listErr

	// Wait for what was sent: its acknowledgement is what the checkpoint
	// records. An interrupted replay — before or during this wait (the
	// intake may be down: nothing would ever be acknowledged) — waits a
	// bounded time more.
	drained := e.drain(ctx, &interruptedAt)
	e.doneDraining()
	interrupted := ctx.Err() != nil
	close(stopSaver)
	<-saverDone
	e.bar.finish()

	var errs []error
	if lerr != nil && !interrupted {
		errs = append(errs, lerr)
	}
	if n := e.objectsFailed.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d objects could not be replayed (see the log); run the replay again to retry them", n))
	}
	if drained != nil {
		e.log.Warn("events still unacknowledged at the end of the replay's drain: saving the checkpoint without them (a pipeline's shutdown settles them, and saves it again)", "waited", e.cfg.Drain)
		errs = append(errs, fmt.Errorf("events still unacknowledged after waiting %s; they will be sent again on resume: %w", e.cfg.Drain, drained))
	}
	if interrupted {
		errs = append(errs, fmt.Errorf("replay interrupted: %w", context.Cause(ctx)))
	}
	complete := len(errs) == 0
	e.endMu.Lock()
	e.ran, e.complete = true, complete
	e.endMu.Unlock()
	// The interruption does not cancel the last write: it is what the
	// interrupted run leaves to the next.
	if err := e.saveEnd(context.WithoutCancel(ctx), complete); err != nil {
		errs = append(errs, err)
	}
	if !e.cfg.DryRun && e.led != nil {
		sum.Resumed = e.led.resumed()
	}
	sum.Interrupted = interrupted
	sum = e.Recount(sum)
	sum.Duration = e.cfg.Now().Sub(start)
	return sum, errors.Join(errs...)
}

// Recount returns sum with the figures as they stand now. An interrupted
// replay that gave up waiting for what it sent returns with batches still
// in the pipeline; the pipeline's shutdown hands them back, and only then
// are their objects counted failed. Figures printed after that shutdown
// hold every object.
func (e *Engine) Recount(sum Summary) Summary {
	sum.Objects, sum.ObjectsFailed, sum.ObjectsSkipped, sum.ObjectsAlreadyDone = e.objects.Load(), e.objectsFailed.Load(), e.objectsSkipped.Load(), e.objectsAlreadyDone.Load()
	sum.ObjectsInterrupted = e.objectsInterrupted.Load()
	sum.Bytes, sum.Events, sum.Sent = e.bytes.Load(), e.events.Load(), e.sent.Load()
	sum.TooOld, sum.Retimestamped, sum.OutOfRange, sum.AlreadyDelivered = e.tooOld.Load(), e.retimestamped.Load(), e.outOfRange.Load(), e.already.Load()
	sum.DeadLetters, sum.Control, sum.PartialLines = e.dead.Load(), e.control.Load(), e.partial.Load()
	sum.Points, sum.PointsSent, sum.PointsTooOld, sum.PointsOutOfRange = e.points.Load(), e.pointsSent.Load(), e.pointsTooOld.Load(), e.pointsOutOfRange.Load()
	e.endMu.Lock()
	sum.NotSaved = ""
	if e.notSaved != nil {
		sum.NotSaved = e.notSaved.Error()
	}
	e.endMu.Unlock()
	return sum
}

// Stopped is closed once Run sends nothing more: its readers ended (the
// run was interrupted, or read everything); what it sent may still be in
// flight, and Run waits for it before it returns.
func (e *Engine) Stopped() <-chan struct{} { return e.stopped }

func (e *Engine) stopSending() { e.stoppedOnce.Do(func() { close(e.stopped) }) }

// Drained is closed once Run is done waiting for what it sent (all of it
// acknowledged, or it gave up waiting): it writes the checkpoint next.
func (e *Engine) Drained() <-chan struct{} { return e.drained }

func (e *Engine) doneDraining() { e.drainedOnce.Do(func() { close(e.drained) }) }

// Source names what the replay reads.
func (e *Engine) Source() string { return e.store.Name() }

// saveEnd writes the checkpoint (or the ledger) at the end of a run, and
// keeps the outcome for the summary.
func (e *Engine) saveEnd(ctx context.Context, complete bool) error {
	if e.cfg.DryRun || (e.cfg.CheckpointStore == nil && e.led == nil) {
		return nil
	}
	var err error
	if e.led != nil {
		err = e.saveLedger(ctx)
	} else {
		err = e.saveCheckpoint(ctx, complete)
	}
	e.endMu.Lock()
	e.notSaved = err
	e.endMu.Unlock()
	return err
}

// Settle saves the checkpoint (or the ledger) once more, within ctx, after
// Run returned: an interrupted run that stopped waiting for what it sent
// saved what was acknowledged by then, and the pipeline's shutdown, which
// drains after it, delivers more of it. Without this the checkpoint missed
// what the shutdown delivered, and the next run sent it again. It writes
// nothing when nothing changed since the last write; when the last write
// failed, it tries again. Called before Run returned, it saves the
// progress so far (as not complete).
//
// With Config.Settle, it then releases the lease Run left held (within
// ctx; the release goes on past it), or leaves that to Run when Run has
// not returned yet.
func (e *Engine) Settle(ctx context.Context) error {
	e.endMu.Lock()
	loaded, complete := e.loaded, e.ran && e.complete
	e.endMu.Unlock()
	var err error
	if loaded { // else Run never got as far as reading the checkpoint
		err = e.saveEnd(ctx, complete)
	}
	e.endMu.Lock()
	e.settled = true
	release := e.releaseLease
	e.releaseLease = nil
	e.endMu.Unlock()
	if release != nil {
		released := make(chan struct{})
		go func() {
			defer close(released)
			release()
		}()
		select {
		case <-released:
		case <-ctx.Done():
		}
	}
	return err
}

// hold takes the run's lease and keeps it renewed until release: the
// context returned ends when ctx does, or when the lease is lost.
func (e *Engine) hold(ctx context.Context) (context.Context, func(), error) {
	l := e.cfg.Lease
	waiting := func(held lease.Record, upTo time.Duration) {
		e.log.Warn("waiting for the replay lease: another replay holds it (then this one is refused as soon as it renews it), or held it and was killed (then it is taken once unchanged for its TTL)",
			"lease", l.Key(), "holder", held.Holder, "renewed", held.Renewed, "up_to", upTo)
	}
	if err := l.AcquireWaiting(ctx, waiting); err != nil {
		return nil, nil, fmt.Errorf("replay: %w", err)
	}
	hold, ok := l.Held()
	if !ok {
		return nil, nil, fmt.Errorf("replay: the lease %s was lost at once", l.Key())
	}
	e.log.Info("replay lease taken", "lease", l.Key())
	run, cancel := context.WithCancelCause(ctx)
	stopWatch := context.AfterFunc(hold, func() {
		if errors.Is(context.Cause(hold), lease.ErrLost) {
			cancel(fmt.Errorf("the replay's lease %s was lost (another replay took it over after this one could not renew it)", l.Key()))
		}
	})
	keepCtx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		l.Keep(keepCtx, nil) // renews; releases when stopped
	}()
	e.lease = hold
	return run, func() {
		stopWatch()
		stopKeep()
		<-kept
		cancel(nil)
	}, nil
}

// persistLedger writes the markers whose letters were just settled, before
// the acknowledgement (or read) that settled them returns: a kill -9 then
// re-sends only the letters whose marker write was under way, where a
// save once a second re-sent up to a second of them. A write that fails
// is left to the saver, which retries and logs it.
func (e *Engine) persistLedger() {
	_ = e.saveLedger(context.Background())
}

// leaseLost reports whether the run's lease was lost: nothing more may be
// saved, the replay that took over owns the progress now.
func (e *Engine) leaseLost() error {
	if e.lease != nil && e.lease.Err() != nil {
		return fmt.Errorf("not saved: %w", context.Cause(e.lease))
	}
	return nil
}

func (e *Engine) saveCheckpoint(ctx context.Context, complete bool) error {
	if err := e.leaseLost(); err != nil {
		return fmt.Errorf("checkpoint %s %w", e.cfg.CheckpointStore.Name(), err)
	}
	sctx, cancel := saveContext(ctx)
	defer cancel()
	return e.prog.save(sctx, e.cfg.CheckpointStore, complete)
}

func (e *Engine) saveLedger(ctx context.Context) error {
	if err := e.leaseLost(); err != nil {
		return fmt.Errorf("replay ledger %w", err)
	}
	sctx, cancel := saveContext(ctx)
	defer cancel()
	return e.led.save(sctx)
}

// saveContext bounds a write of the progress: a minute at most, within
// ctx (the end of a run passes one its interruption does not cancel).
func saveContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Minute)
}

func (e *Engine) loadCheckpoint(ctx context.Context) (*Checkpoint, error) {
	c := &Checkpoint{Version: checkpointVersion}
	if e.cfg.CheckpointStore != nil {
		var err error
		if c, err = e.cfg.CheckpointStore.Load(ctx); err != nil {
			return nil, err
		}
	}
	name := e.store.Name()
	switch {
	case c.Source == "":
		c.Source, c.From, c.To = name, e.cfg.From.UTC(), e.cfg.To.UTC()
	case c.Source != name:
		return nil, fmt.Errorf("%w: %s replays %s, not %s; use another checkpoint file or delete it", ErrCheckpointMismatch, e.cfg.CheckpointStore.Name(), c.Source, name)
	case !c.From.Equal(e.cfg.From) || !c.To.Equal(e.cfg.To):
		// A relative range ("-2h") resolves differently on every run:
		// resuming means resuming the range that was started.
		e.log.Warn("resuming the checkpoint's time range, not the one given (delete the checkpoint to replay another range)",
			"checkpoint", e.cfg.CheckpointStore.Name(), "from", c.From, "to", c.To)
		e.cfg.From, e.cfg.To = c.From, c.To
	}
	return c, nil
}

// saver writes the checkpoint every CheckpointEvery until stop closes.
func (e *Engine) saver(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	if e.cfg.DryRun || (e.cfg.CheckpointStore == nil && e.led == nil) {
		<-stop
		return
	}
	t := time.NewTicker(e.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if e.led != nil {
				if err := e.saveLedger(context.Background()); err != nil {
					e.log.Error("could not save the replay ledger", "error", err)
				}
				continue
			}
			if err := e.saveCheckpoint(context.Background(), false); err != nil {
				e.log.Error("could not save the replay checkpoint", "error", err)
			}
		}
	}
}

// list feeds the workers the selected objects, in key order.
func (e *Engine) list(ctx context.Context, jobs chan<- entry) error {
	startAfter := e.prog.watermark()
	var stopAfter time.Time
	if b, ok := e.store.(*bucketStore); ok && !e.cfg.From.IsZero() && (e.cfg.SelectBy == SelectKey || e.cfg.SelectBy == SelectAuto) {
		// Under a Firehose prefix keys sort by hour: start at the first
		// hour that can hold the range, stop after the last.
		first, err := b.firstKey(ctx)
		if err != nil {
			return err
		}
		if dateRightAfter(b.prefix, first) {
			lower := e.cfg.From.Add(-e.cfg.KeySlack).UTC().Truncate(time.Hour).Add(-time.Hour)
			if sa := b.prefix + lower.Format("2006/01/02/15"); sa > startAfter {
				startAfter = sa
			}
			if !e.cfg.To.IsZero() {
				stopAfter = e.cfg.To.Add(e.cfg.KeySlack)
			}
		}
	}
	return e.store.List(ctx, startAfter, func(en entry) (bool, error) {
		if !stopAfter.IsZero() {
			if t, ok := s3obj.KeyTime(en.Key); ok && t.After(stopAfter) {
				return false, nil
			}
		}
		if ledgerMarker(en.Key) {
			return true, nil
		}
		if e.led != nil {
			done, err := e.led.load(ctx, en)
			if err != nil {
				return false, err
			}
			if done {
				e.objectsAlreadyDone.Add(1)
				// Its letters are not read, so not counted as they are for
				// a file partly settled.
				e.already.Add(e.led.settledCount(en.Key))
				return true, nil
			}
		} else if e.prog.isDone(en.Key) {
			if !e.countedDone {
				e.objectsAlreadyDone.Add(1)
			}
			e.prog.register(en.Key, true)
			return true, nil
		}
		if reason, skip := s3obj.Skip(en.Key, en.Size); skip {
			e.log.Debug("object skipped", "key", en.Key, "reason", reason)
			e.objectsSkipped.Add(1)
			e.prog.register(en.Key, true)
			return true, nil
		}
		if !e.selected(en) {
			e.objectsSkipped.Add(1)
			e.prog.register(en.Key, true)
			return true, nil
		}
		e.prog.register(en.Key, false)
		e.listed.Add(1)
		e.bar.addObject(en.Size)
		select {
		case jobs <- en:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	})
}

// selected reports whether an object can hold events of the time range.
func (e *Engine) selected(en entry) bool {
	from, to, slack := e.cfg.From, e.cfg.To, e.cfg.KeySlack
	overlaps := func(t0, t1 time.Time) bool {
		return (from.IsZero() || t1.After(from.Add(-slack))) && (to.IsZero() || t0.Before(to.Add(slack)))
	}
	modified := func() bool {
		// An object cannot hold events written after it was.
		return from.IsZero() || en.LastModified.IsZero() || !en.LastModified.Before(from.Add(-slack))
	}
	switch e.cfg.SelectBy {
	case SelectNone:
		return true
	case SelectModified:
		return modified()
	}
	if t, ok := s3obj.KeyTime(en.Key); ok {
		return overlaps(t, t.Add(time.Hour))
	}
	if e.cfg.SelectBy == SelectKey {
		return true // no time in the key: read it, events are filtered anyway
	}
	return modified()
}

// objectState follows one object's chunks to its acknowledgement.
type objectState struct {
	key, etag string
	size      int64    // as listed
	entries   *entries // ledger mode: the object's letters
	pending   atomic.Int64
	complete  atomic.Bool // read to the end
	mu        sync.Mutex
	err       error
}

func (o *objectState) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
}

func (e *Engine) readObject(ctx context.Context, en entry) {
	o := &objectState{key: en.Key, size: en.Size}
	o.pending.Store(1)
	defer e.release(ctx, o)

	body, obj, err := e.store.Open(ctx, en)
	if err != nil {
		o.fail(err)
		return
	}
	defer body.Close()
	o.etag = obj.ETag
	obj.Source, obj.Replay = "replay", true
	cfg := e.cfg.Object
	cfg.Layout = e.cfg.Layout
	var acked [][2]int64
	if e.led != nil {
		// Letters settled by an earlier run are not even read.
		settled := e.led.settled(en.Key)
		cfg.SkipItem = func(item int64) bool { return covered(settled, item) }
		key, etag := o.key, o.etag
		o.entries = newEntries(func(item int64) { e.led.settle(key, etag, item) })
	} else {
		acked = e.prog.acked(en.Key, obj.ETag)
	}
	r := s3obj.NewReader(body, obj, cfg)
	defer r.Close()
	var lastBytes int64
	for {
		c, err := r.Next()
		st := r.Stats()
		e.bar.addBytes(st.BytesIn - lastBytes)
		e.bytes.Add(st.BytesIn - lastBytes)
		lastBytes = st.BytesIn
		if err == io.EOF {
			e.control.Add(st.Control)
			e.partial.Add(st.Partial)
			e.already.Add(st.Skipped)
			if o.entries != nil {
				o.entries.end()
				e.persistLedger()
			}
			o.complete.Store(true)
			return
		}
		if err != nil {
			o.fail(err)
			return
		}
		if ctx.Err() != nil {
			o.fail(ctx.Err())
			return
		}
		if err := e.send(ctx, o, c, acked); err != nil {
			o.fail(err)
			return
		}
	}
}

// send filters one chunk and publishes what remains, with its own
// acknowledgement, so that the checkpoint can record it once delivered.
func (e *Engine) send(ctx context.Context, o *objectState, c s3obj.Chunk, acked [][2]int64) error {
	n := int64(c.Batch.Len())
	points := len(c.Batch.Metrics) > 0
	sentTo := &e.sent
	switch {
	case c.Dead:
		sentTo = &e.dead
	case points:
		sentTo = &e.pointsSent
		e.points.Add(n)
	default:
		e.events.Add(n)
	}
	items := c.Items
	var dropped []int64
	if points {
		c.Batch.Metrics, items, dropped = e.filterPoints(c.Batch.Metrics, items, c.First, acked)
	} else {
		recs := c.Batch.Records
		if len(acked) > 0 {
			keep := recs[:0]
			for i, r := range recs {
				if covered(acked, c.First+int64(i)) {
					e.already.Add(1)
					continue
				}
				keep = append(keep, r)
			}
			recs = keep
		}
		if !c.Dead {
			recs, items, dropped = e.filter(recs, items)
		}
		c.Batch.Records = recs
	}
	sent := int64(c.Batch.Len())
	if e.cfg.DryRun {
		sentTo.Add(sent)
		e.bar.update(e)
		return nil
	}
	// settle records what became of the chunk's records: the checkpoint
	// numbers events, the ledger letters.
	settle := func(failed bool) {
		switch {
		case o.entries != nil:
			o.entries.done(items, failed)
			e.persistLedger()
		case !failed:
			e.prog.ack(o.key, o.etag, c.First, c.First+n)
		}
	}
	if o.entries != nil {
		o.entries.sent(items, dropped)
		e.persistLedger()
	}
	if sent == 0 {
		settle(false)
		return nil
	}
	if e.limiter != nil && !c.Dead && !points {
		for left := int(sent); left > 0; {
			k := min(left, e.limiter.Burst())
			if err := e.limiter.WaitN(ctx, k); err != nil {
				settle(true)
				return err
			}
			left -= k
		}
	}
	// A batch larger than the window still goes, alone.
	weight := min(sent, int64(e.cfg.MaxInFlightEvents))
	if err := e.window.Acquire(ctx, weight); err != nil {
		settle(true)
		return err
	}
	tr := ack.New()
	c.Batch.Ack = tr
	o.pending.Add(1)
	e.inflight.Add(1)
	first := c.First
	tr.OnComplete(func(err error) {
		defer e.inflight.Done()
		defer e.window.Release(weight)
		if err != nil {
			settle(true)
			o.fail(fmt.Errorf("items %d to %d not delivered: %w", first, first+n, err))
		} else {
			settle(false)
			sentTo.Add(sent)
			e.bar.update(e)
		}
		e.release(ctx, o)
	})
	var err error
	if c.Dead {
		err = e.out.DeadLetter(ctx, c.Batch)
	} else {
		err = e.out.Emit(ctx, c.Batch)
	}
	if err != nil {
		tr.Fail(err)
		return fmt.Errorf("publish: %w", err)
	}
	tr.Done()
	return nil
}

// filterPoints drops the points an earlier run delivered, those outside
// the time range and those older than MetricMaxAge; items and dropped are
// as filter's.
func (e *Engine) filterPoints(ms []record.Metric, items []int64, first int64, acked [][2]int64) (keep []record.Metric, kept, dropped []int64) {
	cutoff := e.cfg.Now().Add(-e.cfg.MetricMaxAge).Unix()
	keep = ms[:0]
	if items != nil {
		kept = items[:0:0]
	}
	for i, m := range ms {
		t := time.Unix(m.Timestamp, 0)
		ok := false
		switch {
		case covered(acked, first+int64(i)):
			e.already.Add(1)
			continue // settled by the earlier run
		case !e.cfg.From.IsZero() && t.Before(e.cfg.From) || !e.cfg.To.IsZero() && !t.Before(e.cfg.To):
			e.pointsOutOfRange.Add(1)
		case m.Timestamp < cutoff:
			e.pointsTooOld.Add(1)
		default:
			ok = true
			keep = append(keep, m)
		}
		if items != nil {
			if ok {
				kept = append(kept, items[i])
			} else {
				dropped = append(dropped, items[i])
			}
		}
	}
	return keep, kept, dropped
}

// filter drops events outside the time range and applies the age policy.
// items, when set, are the records' letters (ledger mode): it returns
// those of the records kept, and those of the records dropped, which are
// not settled.
func (e *Engine) filter(recs []record.Record, items []int64) (keep []record.Record, kept, dropped []int64) {
	now := e.cfg.Now()
	cutoff := now.Add(-e.cfg.MaxAge).UnixMilli()
	fromMs, toMs := int64(-1<<63), int64(1<<63-1)
	if !e.cfg.From.IsZero() {
		fromMs = e.cfg.From.UnixMilli()
	}
	if !e.cfg.To.IsZero() {
		toMs = e.cfg.To.UnixMilli()
	}
	keep = recs[:0]
	if items != nil {
		kept = items[:0:0]
	}
	for i, r := range recs {
		ok := true
		switch {
		case r.Timestamp < fromMs || r.Timestamp >= toMs:
			e.outOfRange.Add(1)
			ok = false
		case r.Timestamp < cutoff && e.cfg.OldLogs == OldLogsSkip:
			e.tooOld.Add(1)
			ok = false
		case r.Timestamp < cutoff:
			r.Timestamp = now.UnixMilli()
			r.TimeFixed = true
			r.Tags = append(r.Tags[:len(r.Tags):len(r.Tags)], RetimestampedTag)
			e.retimestamped.Add(1)
		}
		if items != nil {
			if ok {
				kept = append(kept, items[i])
			} else {
				dropped = append(dropped, items[i])
			}
		}
		if ok {
			keep = append(keep, r)
		}
	}
	return keep, kept, dropped
}

// release returns one of an object's tokens; the last settles the object.
func (e *Engine) release(ctx context.Context, o *objectState) {
	if o.pending.Add(-1) != 0 {
		return
	}
	o.mu.Lock()
	err := o.err
	o.mu.Unlock()
	switch {
	case err == nil && o.complete.Load():
		switch {
		case e.cfg.DryRun:
		case o.entries != nil:
			// Letters held back (filtered out, or failed) leave the
			// object to read again.
			if !o.entries.anyHeld() {
				e.led.complete(o.key, o.etag, o.size)
				e.persistLedger()
			}
		default:
			e.prog.objectDone(o.key)
		}
		e.objects.Add(1)
		e.bar.objectDone(e)
	case ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ack.ErrHandedBack)):
		// Interrupted: the checkpoint keeps what was acknowledged. What the
		// pipeline's shutdown handed back is the same interruption, whether
		// or not its error also says the delivery's context ended.
		e.objectsInterrupted.Add(1)
	default:
		e.objectsFailed.Add(1)
		e.log.Error("object not replayed; run the replay again to retry it", "object", o.key, "error", err)
	}
}

// drain waits for the events in flight; once ctx ends, until Config.Drain
// after it ended (at, in Unix nanoseconds, set as it ends) at most.
func (e *Engine) drain(ctx context.Context, at *atomic.Int64) error {
	done := make(chan struct{})
	go func() { e.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	left := e.cfg.Drain
	if ns := at.Load(); ns != 0 {
		left -= time.Since(time.Unix(0, ns))
	}
	t := time.NewTimer(max(left, 0))
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("interrupted: %w", context.DeadlineExceeded)
	}
}
