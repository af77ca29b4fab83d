package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/replay"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
)

// SourceReplay is the stats name of a replay's output.
const SourceReplay = "replay"

// ReplayOptions are the parts of a replay that are not configuration.
type ReplayOptions struct {
	DryRun   bool
	Progress io.Writer // the progress bar; nil shows none
	// Now is the clock relative times ("-2h") and the age limit use.
	Now func() time.Time
	// S3 replaces the S3 client built from the AWS configuration (tests,
	// S3-compatible stores with their own client).
	S3 replay.S3API

	// out is the directory, inside a dead-letter archive being replayed,
	// where the letters that fail again are written (Replay sets it);
	// outURL is its s3:// URL for an archive in S3.
	out, outURL string
}

// ReplayConfig translates the replay section of the configuration into
// the engine's, resolving relative times against now.
func ReplayConfig(cfg config.Config, opts ReplayOptions) (replay.Config, error) {
	r := cfg.Replay
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	rc := replay.Config{
		Bucket: r.Bucket, Prefix: r.Prefix, SelectBy: r.SelectBy, KeySlack: r.KeySlack,
		Concurrency: r.Concurrency, Rate: float64(r.Rate), MaxInFlightEvents: r.MaxInFlightEvents,
		DryRun: opts.DryRun, Checkpoint: r.Checkpoint,
		OldLogs: r.OldLogs, MaxAge: r.MaxAge, Region: r.Region, Progress: opts.Progress, Now: now,
		// Interrupted, the replay waits for what it sent within the
		// shutdown's time, less the shares kept for the pipeline's
		// shutdown and for saving the checkpoint after it (replayShares).
		Drain: replayShares(cfg.Pipeline.DrainTimeout).drain,
	}
	// The replay's own reader (a dry run has no pipeline): its figures are
	// in the replay's summary.
	streams, err := metricStreams(cfg, nil)
	if err != nil {
		return rc, err
	}
	rc.Object = objectConfig(cfg, r.EventsPerBatch, streams)
	switch {
	case r.DLQ != "" && strings.HasPrefix(r.DLQ, "s3://"):
		b, p, err := dlq.ParseS3URL(r.DLQ)
		if err != nil {
			return rc, fmt.Errorf("replay.dlq: %w", err)
		}
		if r.Checkpoint != "" {
			return rc, errors.New("replay.checkpoint (--checkpoint): a dead-letter archive keeps its own ledger beside its objects (<key>.replayed); run the same command again instead")
		}
		// The archive's objects only: not the ledger's markers, nor the
		// replay's lease, beside them.
		rc.Bucket, rc.Prefix, rc.Layout, rc.SelectBy, rc.KeyPattern = b, p, s3obj.LayoutDLQ, replay.SelectNone, "dlq-*.jsonl*"
		if opts.outURL != "" {
			rc.Exclude = []string{strings.TrimPrefix(opts.outURL, "s3://"+b+"/")}
		}
	case r.DLQ != "":
		// The archive's ledger records what was settled; running the same
		// replay again sends only what is left.
		if r.Checkpoint != "" {
			return rc, errors.New("replay.checkpoint (--checkpoint): a dead-letter archive keeps its own ledger beside its files (<file>.replayed); run the same command again instead")
		}
		rc.Dir, rc.Layout, rc.SelectBy = r.DLQ, s3obj.LayoutDLQ, replay.SelectNone
		rc.Ledger = replay.DirLedger(r.DLQ)
		if opts.out != "" {
			rel, err := filepath.Rel(r.DLQ, opts.out)
			if err != nil {
				return rc, fmt.Errorf("replay.dlq: %w", err)
			}
			rc.Exclude = []string{filepath.ToSlash(rel)}
		}
	case r.Bucket == "":
		return rc, errors.New("replay.bucket (--bucket) or replay.dlq (--dlq-dir) is required")
	case r.From == "":
		return rc, errors.New("replay.from (--from) is required to replay a bucket: name the start of the time range (RFC 3339, or relative such as -2h)")
	}
	t := now()
	if r.From != "" {
		if rc.From, err = config.ParseTime(r.From, t); err != nil {
			return rc, fmt.Errorf("replay.from: %w", err)
		}
	}
	switch {
	case r.To != "":
		if rc.To, err = config.ParseTime(r.To, t); err != nil {
			return rc, fmt.Errorf("replay.to: %w", err)
		}
	case r.DLQ == "":
		// A bucket's range ends when the replay starts, so that it does
		// not chase what arrives meanwhile (delivered live already), and
		// the checkpoint keeps the same end for a resumed run. Dead
		// letters are replayed whatever their time.
		rc.To = t
	}
	if !rc.From.IsZero() && !rc.To.IsZero() && !rc.From.Before(rc.To) {
		return rc, fmt.Errorf("replay.from (%s) must be before replay.to (%s)", rc.From.Format(time.RFC3339), rc.To.Format(time.RFC3339))
	}
	return rc, nil
}

// replayBudget splits an interrupted replay's shutdown time
// (pipeline.drain_timeout): the replay waits for what it sent (drain),
// then the pipeline shuts down, delivering or handing back what is left,
// until shutdown; the checkpoint is saved, with what that delivered, in
// the last share.
type replayBudget struct{ drain, shutdown time.Duration }

func replayShares(d time.Duration) replayBudget {
	share := teardownShare(d)
	return replayBudget{drain: d - 2*share, shutdown: d - share}
}

// replayStores gives a replay what it keeps in S3, once it has a client:
// the ledger and the lease of a dead-letter archive in S3, and a
// checkpoint in S3 with its lease (both <key>.lease beside what they
// guard), so that two replays of one archive or one checkpoint do not
// both run.
func replayStores(cfg config.Config, client replay.S3API, rc *replay.Config) error {
	r := cfg.Replay
	holder := lease.Holder()
	if strings.HasPrefix(r.DLQ, "s3://") {
		s3c, ok := client.(cas.S3API)
		if !ok {
			return errors.New("replay.dlq: the S3 client cannot write (the archive's ledger)")
		}
		store := cas.NewS3(s3c, rc.Bucket, "")
		rc.Ledger = replay.StoreLedger(store)
		rc.Lease = lease.New(store, rc.Prefix+"replay.lease", holder, r.Lease)
	}
	if strings.HasPrefix(r.Checkpoint, "s3://") {
		b, key, err := dlq.ParseS3URL(r.Checkpoint)
		if err != nil {
			return fmt.Errorf("replay.checkpoint: %w", err)
		}
		key = strings.TrimSuffix(key, "/")
		s3c, ok := client.(cas.S3API)
		if !ok {
			return errors.New("replay.checkpoint: the S3 client cannot write")
		}
		store := cas.NewS3(s3c, b, "")
		rc.Checkpoint, rc.CheckpointStore = "", replay.StoreCheckpoint(store, key)
		rc.Lease = lease.New(store, key+".lease", holder, r.Lease)
	}
	return nil
}

// ReplaySource runs a replay as one of a pipeline's sources: it publishes
// to the decoded topic and completes when every object it read is
// acknowledged.
type ReplaySource struct {
	p    *Pipeline
	rc   replay.Config
	opts ReplayOptions
	log  *slog.Logger
	done chan struct{}

	mu      sync.Mutex
	cancel  context.CancelFunc
	eng     *replay.Engine
	started time.Time
	sum     replay.Summary
	err     error
}

// NewReplaySource prepares the replay the pipeline's configuration
// describes (its replay section). Add it with AddSource before Start,
// which reaches its bucket.
func NewReplaySource(p *Pipeline, opts ReplayOptions) (*ReplaySource, error) {
	rc, err := ReplayConfig(p.Config(), opts)
	if err != nil {
		return nil, err
	}
	return &ReplaySource{p: p, rc: rc, opts: opts, log: p.Logger().With("source", "replay"), done: make(chan struct{})}, nil
}

// Name implements Source.
func (r *ReplaySource) Name() string { return SourceReplay }

// Start runs the replay in the background; ctx ending interrupts it.
func (r *ReplaySource) Start(ctx context.Context) error {
	client, err := replayS3(ctx, r.p.Config(), r.opts, &r.rc)
	if err != nil {
		return err
	}
	if err := replayStores(r.p.Config(), client, &r.rc); err != nil {
		return err
	}
	// Replay calls Settle after the pipeline's shutdown.
	r.rc.Settle = true
	eng, err := replay.New(r.rc, client, r.p.entryOutput(SourceReplay), r.log)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.cancel, r.eng, r.started = cancel, eng, time.Now()
	r.mu.Unlock()
	go func() {
		defer close(r.done)
		sum, err := eng.Run(runCtx)
		r.mu.Lock()
		r.sum, r.err = sum, err
		r.mu.Unlock()
	}()
	return nil
}

// Stop interrupts the replay (if it still runs) and waits, within ctx,
// until it sends nothing more. It does not wait for the replay's own wait
// for what it sent, nor for its checkpoint write: the pipeline's drain
// delivers what is in flight meanwhile (a checkpoint write that hung held
// the whole drain back, and had it hand back everything in flight), and
// Settle saves the checkpoint after it.
func (r *ReplaySource) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, eng := r.cancel, r.eng
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-r.done:
		return nil
	case <-eng.Stopped():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("replay did not stop: %w", ctx.Err())
	}
}

// Done is closed when the replay has finished (or stopped).
func (r *ReplaySource) Done() <-chan struct{} { return r.done }

// Drained is closed when the replay is done waiting for what it sent: it
// writes its checkpoint next, which the pipeline's shutdown need not wait
// for (Settle writes it again after).
func (r *ReplaySource) Drained() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.eng == nil {
		return r.done
	}
	return r.eng.Drained()
}

// Settle saves the replay's checkpoint (or ledger) once more, within ctx:
// called after the pipeline's shutdown, it records what the shutdown's
// drain delivered after the replay stopped waiting for it.
func (r *ReplaySource) Settle(ctx context.Context) error {
	r.mu.Lock()
	eng := r.eng
	r.mu.Unlock()
	if eng == nil {
		return nil
	}
	return eng.Settle(ctx)
}

// Result is the replay's summary and error. Its figures are those of the
// moment it is called: after the pipeline's shutdown, they count the
// objects whose batches it handed back. Called before Done is closed (the
// replay did not stop by the shutdown's deadline), it is what the replay
// did so far, interrupted, with that error.
func (r *ReplaySource) Result() (replay.Summary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.eng == nil {
		return r.sum, r.err
	}
	select {
	case <-r.done:
		r.sum = r.eng.Recount(r.sum)
		return r.sum, r.err
	default:
	}
	sum := replay.Summary{Source: r.eng.Source(), Interrupted: true, Ledger: r.rc.Ledger != nil, Duration: time.Since(r.started)}
	if r.rc.CheckpointStore != nil {
		sum.Checkpoint = r.rc.CheckpointStore.Name()
	} else {
		sum.Checkpoint = r.rc.Checkpoint
	}
	return r.eng.Recount(sum), errors.New("the replay did not stop by the shutdown deadline")
}

// ReplayResult is what `gwpipe replay` reports.
type ReplayResult struct {
	replay.Summary
	// Delivered is the number of logs the intake accepted; DeadLettered
	// counts the records the pipeline's stages dead-lettered, in
	// DeadLetterDir: the replay's own unreadable parts, which the same
	// archive holds, are Summary.DeadLetters and not counted again here.
	Delivered     int64
	DeadLettered  int64
	DeadLetterDir string
	// FailedAgainIn is set for a replay of a dead-letter directory: the
	// new archive, inside it, that holds the letters that failed again
	// (empty when none did).
	FailedAgainIn string
}

// DidSomething reports whether the replay got as far as choosing objects:
// a replay that failed before (no such bucket, a bad checkpoint) has only
// zeros to report.
func (r ReplayResult) DidSomething() bool {
	return r.Objects+r.ObjectsFailed+r.ObjectsSkipped+r.ObjectsAlreadyDone+r.Events > 0 ||
		r.Interrupted || r.AlreadyComplete || r.Delivered+r.DeadLettered > 0
}

// Write prints the result for a person. Where it names an archive in S3,
// the URL's credentials are masked.
func (r ReplayResult) Write(w io.Writer) {
	r.DeadLetterDir, r.FailedAgainIn = redact.URL(r.DeadLetterDir), redact.URL(r.FailedAgainIn)
	r.Summary.Write(w)
	if r.DryRun {
		return
	}
	fmt.Fprintf(w, "  logs delivered   %d (accepted by the intake)\n", r.Delivered)
	// Each line counts its own letters: the summary's "dead-lettered" the
	// reader's, these the pipeline stages', in the same archive.
	switch {
	case !r.Ledger:
		fmt.Fprintf(w, "  pipeline dead    %d (dead-lettered by the pipeline's stages, e.g. refused by the intake; not counted in dead-lettered above)\n", r.DeadLettered)
		if r.DeadLettered+r.DeadLetters > 0 {
			flag := "--dlq-dir"
			if strings.HasPrefix(r.DeadLetterDir, "s3://") {
				flag = "--dlq"
			}
			fmt.Fprintf(w, "  dead letters in  %s (both lines above: %d; replay them with %s)\n", r.DeadLetterDir, r.DeadLettered+r.DeadLetters, flag)
		}
	default:
		fmt.Fprintf(w, "  failed again     %d (dead-lettered again by the pipeline's stages, e.g. refused by the intake; not counted in dead-lettered above)\n", r.DeadLettered)
		if r.FailedAgainIn != "" {
			fmt.Fprintf(w, "  now in           %s (both lines above: %d; inside the archive: the same command retries them)\n", r.FailedAgainIn, r.DeadLettered+r.DeadLetters)
		}
	}
}

// replayOutDir names the archive, inside the dead-letter archive dir, that
// a replay of dir writes the letters that fail again to: a directory no
// run wrote before (time, host, process), never one the replay reads.
func replayOutDir(dir string, now time.Time) string {
	return filepath.Join(dir, replayOutName(now))
}

func replayOutName(now time.Time) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("replay-%s-%s-%d", now.UTC().Format("20060102T150405.000Z"), host, os.Getpid())
}

// Replay runs `gwpipe replay`: a pipeline whose every stage runs in this
// process, fed only by the replay (the Firehose endpoint, the SQS source
// and the admin endpoint are off), until every object is acknowledged or
// ctx ends; then it drains and stops. A dry run builds no pipeline: it
// reads and counts.
func Replay(ctx context.Context, cfg config.Config, opts ReplayOptions, log *slog.Logger) (ReplayResult, error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.DryRun {
		return dryRun(ctx, cfg, opts, log)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if d := cfg.Replay.DLQ; strings.HasPrefix(d, "s3://") {
		// The same for an archive in S3: a new archive under its prefix.
		b, prefix, err := dlq.ParseS3URL(d)
		if err != nil {
			return ReplayResult{}, fmt.Errorf("replay.dlq: %w", err)
		}
		opts.outURL = "s3://" + b + "/" + prefix + replayOutName(now()) + "/"
		cfg.DLQ.URL = opts.outURL
	} else if d != "" {
		// A replay never writes into the archive it reads: letters that
		// fail again go to a new archive inside it, where the same
		// command, run again, finds them; the ledger marks them settled
		// in the files they came from.
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return ReplayResult{}, fmt.Errorf("replay.dlq (--dlq-dir) %s is not a dead-letter archive directory: %v", d, err)
		}
		removeAbandonedOutDirs(d, log)
		opts.out = replayOutDir(d, now())
		cfg.DLQ.Dir, cfg.DLQ.URL = opts.out, ""
	}
	cfg.Sources.Firehose.Enabled = false
	cfg.Sources.SQS.QueueURLs = nil
	cfg.Admin.Listen, cfg.Admin.HealthListen, cfg.Admin.Pprof = "", "", false
	cfg.Admin.ReportInterval = 0
	p, err := New(cfg, nil, log)
	if err != nil {
		removeIfEmpty(opts.out)
		return ReplayResult{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	src, err := NewReplaySource(p, opts)
	if err != nil {
		removeIfEmpty(opts.out)
		return ReplayResult{}, err
	}
	if opts.out != "" || opts.outURL != "" {
		log.Info("letters that fail again go to a new archive inside the one replayed", "archive", cfg.DLQ.Location())
	}
	p.AddSource(src)
	if err := p.Start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Pipeline.DrainTimeout)
		defer cancel()
		err = errors.Join(err, p.Shutdown(sctx))
		// The replay may have started (and taken its lease) before another
		// part failed: it leaves its lease to Settle.
		_ = src.Settle(sctx)
		removeIfEmpty(opts.out)
		return ReplayResult{}, err
	}
	// An interruption starts the shutdown's time: the replay's own wait
	// for what it sent, the pipeline's shutdown and the last save of the
	// checkpoint share it (replayShares).
	shares := replayShares(cfg.Pipeline.DrainTimeout)
	start := time.Time{}
	select {
	case <-src.Done():
	case err := <-p.Err():
		log.Error("pipeline failed during the replay", "error", err)
	case <-ctx.Done():
		start = time.Now()
		t := time.NewTimer(shares.shutdown)
		select {
		case <-src.Done():
		case <-src.Drained(): // a checkpoint write that hangs does not hold the shutdown back
		case <-t.C:
		}
		t.Stop()
	}
	// The replay saw its events acknowledged (or was interrupted and
	// waited for them): what remains in flight is at most what it gave up
	// on. Drain within the configured time.
	if start.IsZero() {
		start = time.Now()
	}
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(shares.shutdown))
	defer cancel()
	serr := p.Shutdown(sctx)
	// What the shutdown delivered is in the checkpoint only now.
	fctx, fcancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(cfg.Pipeline.DrainTimeout))
	defer fcancel()
	cerr := src.Settle(fctx)
	sum, rerr := src.Result()
	if rerr == nil && cerr != nil {
		rerr = cerr
	}
	res := ReplayResult{Summary: sum, DeadLetterDir: cfg.DLQ.Location()}
	st := p.Metrics().Snapshot()
	res.Delivered = st.Value("deliver_logs.logs_accepted")
	// The reader's dead letters go through the same dlq stage: they are
	// the summary's own line, not the pipeline's.
	res.DeadLettered = st.Sum("stage.dead_lettered") - st.ByLabel("stage.dead_lettered")[s3obj.DeadStage]
	if opts.out != "" && !removeIfEmpty(opts.out) {
		res.FailedAgainIn = opts.out
	}
	if opts.outURL != "" && p.metrics.Value("dlq.s3.objects") > 0 {
		res.FailedAgainIn = opts.outURL
	}
	return res, errors.Join(rerr, serr)
}

// removeAbandonedOutDirs removes the empty new archives (replay-…) that
// replays killed before their end left in the archive dir: a replay
// removes its own, when empty, only as it ends. One named after a process
// of this host that still runs is that replay's, and is left alone.
func removeAbandonedOutDirs(dir string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	host, _ := os.Hostname()
	for _, en := range entries {
		if !en.IsDir() || !strings.HasPrefix(en.Name(), "replay-") {
			continue
		}
		if h, pid, ok := outDirOwner(en.Name()); ok && h == host && running(pid) {
			continue
		}
		if os.Remove(filepath.Join(dir, en.Name())) == nil { // only when empty
			log.Info("removed the empty archive an interrupted replay left", "dir", filepath.Join(dir, en.Name()))
		}
	}
}

// outDirOwner reads the host and process of a replayOutName.
func outDirOwner(name string) (host string, pid int, ok bool) {
	_, rest, ok := strings.Cut(strings.TrimPrefix(name, "replay-"), "-") // the time has no '-'
	i := strings.LastIndexByte(rest, '-')
	if !ok || i < 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(rest[i+1:])
	return rest[:i], pid, err == nil
}

// running reports whether the process pid runs (where signal 0 can tell).
func running(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// removeIfEmpty removes dir if it holds nothing, and reports whether it is
// gone (or never was).
func removeIfEmpty(dir string) bool {
	if dir == "" {
		return true
	}
	err := os.Remove(dir) // fails on a directory that holds letters
	return err == nil || errors.Is(err, os.ErrNotExist)
}

func dryRun(ctx context.Context, cfg config.Config, opts ReplayOptions, log *slog.Logger) (ReplayResult, error) {
	rc, err := ReplayConfig(cfg, opts)
	if err != nil {
		return ReplayResult{}, err
	}
	client, err := replayS3(ctx, cfg, opts, &rc)
	if err != nil {
		return ReplayResult{}, err
	}
	if err := replayStores(cfg, client, &rc); err != nil {
		return ReplayResult{}, err
	}
	eng, err := replay.New(rc, client, nil, log.With("source", "replay"))
	if err != nil {
		return ReplayResult{}, err
	}
	sum, err := eng.Run(ctx)
	return ReplayResult{Summary: sum, DeadLetterDir: cfg.DLQ.Location()}, err
}

// replayS3 returns the S3 client a replay of a bucket reads with, and
// fills the region of the records' origin.
func replayS3(ctx context.Context, cfg config.Config, opts ReplayOptions, rc *replay.Config) (replay.S3API, error) {
	if rc.Bucket == "" && !strings.HasPrefix(cfg.Replay.Checkpoint, "s3://") {
		return nil, nil
	}
	if opts.S3 != nil {
		return opts.S3, nil
	}
	awsCfg, err := loadAWS(ctx, cfg.Replay.Region)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if rc.Region == "" {
		rc.Region = awsCfg.Region
	}
	return awsconf.S3(awsCfg), nil
}
