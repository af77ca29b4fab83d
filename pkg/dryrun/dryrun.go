// Package dryrun runs a configuration over given input in one process,
// without AWS or Datadog, and returns what gwpipe would deliver: the
// Datadog logs exactly as the logs intake would receive them, and the dead
// letters with their reasons. `gwpipe parse` and `gwpipe test` are built on
// it.
//
// It runs the real pipeline (package pipeline: decode, parse, static
// enrichment, every filter the configuration has, the deliver-logs client
// and its renderer), not a copy of it, with what reaches outside the process
// replaced: the sources are off, enrich.aws_tags is off (a stage's tags come
// only from what the records and the configuration say), derived metrics
// are off, the logs intake is a recorder on a loopback port of this process,
// and dead letters go to a temporary directory. Inputs are run one at a
// time, so that each one's output is known.
package dryrun

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/pipeline"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/ack"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
)

// DefaultStream is the delivery stream lines without a log group are read
// from: an amazon-apigateway-* stream, as API Gateway's direct access-log
// delivery to Firehose names it, so that they are read as access logs.
const DefaultStream = "amazon-apigateway-gwpipe"

// Input is one unit of input: a log line, or CloudWatch Logs subscription
// data (one or more envelopes, gzipped or not), as one Firehose record.
type Input struct {
	Data []byte
	// LogGroup is where a line comes from (it chooses the parser, the
	// format and the log's hostname); empty: a line delivered directly to
	// the DefaultStream delivery stream. Envelopes name their own.
	LogGroup string
	// Account and Region fill the origin (the offline enrichment's
	// aws_account and region tags); envelopes name their owner.
	Account, Region string
}

// Result is what one input became.
type Result struct {
	// Logs are the Datadog logs delivered, each one JSON object exactly as
	// the intake received it, in the order sent.
	Logs []json.RawMessage
	// Dead are the dead letters written.
	Dead []dlq.Entry
	// Dropped and SampledOut are the logs the filters dropped and the
	// sample rules left out (filters.dropped, filters.sampled_out).
	Dropped, SampledOut int64
}

// Add adds what another input became to r.
func (r *Result) Add(o Result) {
	r.Logs = append(r.Logs, o.Logs...)
	r.Dead = append(r.Dead, o.Dead...)
	r.Dropped += o.Dropped
	r.SampledOut += o.SampledOut
}

// Runner runs inputs through a pipeline built from one configuration.
type Runner struct {
	p      *pipeline.Pipeline
	out    stage.Output
	intake *recorder
	srv    *http.Server
	dir    string // dead-letter archive
	read   map[string]int64
	seq    int
	// filtered are the filters' counters at the last collect.
	dropped, sampledOut int64
}

// Offline returns c with every part that reaches outside the process
// turned off or pointed at the runner (see the package comment); the
// rest, parse, enrich and filters included, is c's.
func Offline(c config.Config, intakeURL, dlqDir string) config.Config {
	c.Transport.Kind = "memory"
	c.Sources.Firehose.Enabled = false
	c.Sources.SQS.QueueURLs = nil
	c.Enrich.AWSTags = false
	c.Metrics.Enabled = false
	c.Metrics.Telemetry.Enabled = false
	c.Metrics.Streams.Enabled = false
	c.Admin.Listen, c.Admin.HealthListen, c.Admin.ReportInterval, c.Admin.Pprof = "", "", 0, false
	c.DLQ.Dir = dlqDir
	c.Datadog.LogsURL = intakeURL + "/api/v2/logs"
	c.Datadog.APIURL = intakeURL
	if c.Datadog.APIKey == "" {
		c.Datadog.APIKey = "dry-run" // never sent beyond this process
	}
	// A line from any time shows its log: the live pipeline dead-letters
	// one older than the intake's 18 hours.
	c.Datadog.Logs.KeepOldLogs = true
	// How logs are packed into requests changes nothing in a log.
	c.Datadog.Logs.Linger = 0
	c.Datadog.Logs.Compression = "none"
	c.Datadog.Logs.Backoff.InitialInterval, c.Datadog.Logs.Backoff.MaxInterval = time.Millisecond, 10*time.Millisecond
	return c
}

// New builds and starts a runner; Close it. log receives the pipeline's
// messages (nil: discarded).
func New(ctx context.Context, c config.Config, log *slog.Logger) (*Runner, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "gwpipe-dryrun-")
	if err != nil {
		return nil, err
	}
	r := &Runner{intake: &recorder{}, dir: dir, read: map[string]int64{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("dry run: listen for the recording intake: %w", err)
	}
	r.srv = &http.Server{Handler: r.intake, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	c = Offline(c, "http://"+ln.Addr().String(), dir)
	p, err := pipeline.New(c, nil, log)
	if err != nil {
		r.closeIntake()
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Shutdown(context.Background())
		r.closeIntake()
		return nil, err
	}
	r.p = p
	r.out = p.Ingest()
	return r, nil
}

// Run sends one input through the pipeline and returns what it became once
// every part of it was delivered or dead-lettered.
func (r *Runner) Run(ctx context.Context, in Input) (Result, error) {
	r.seq++
	o := &record.Origin{Source: "firehose", RequestID: "dry-run-" + strconv.Itoa(r.seq), Account: in.Account, Region: in.Region, LogGroup: in.LogGroup}
	if in.LogGroup == "" {
		o.Stream = DefaultStream
	}
	tr := ack.New()
	b := &record.Batch{ID: o.RequestID, Origin: o, Ack: tr, Unit: new(record.Unit), Records: []record.Record{{
		Origin: o, Timestamp: time.Now().UnixMilli(), Kind: record.KindRaw,
		Message: []byte(base64.StdEncoding.EncodeToString(in.Data)),
	}}}
	if err := r.out.Emit(ctx, b); err != nil {
		tr.Fail(err)
		return Result{}, fmt.Errorf("dry run: %w", err)
	}
	tr.Done()
	if err := tr.Wait(ctx); err != nil {
		return Result{}, fmt.Errorf("dry run: %w", err)
	}
	return r.collect()
}

// collect takes what the intake and the archive received since the last
// call.
func (r *Runner) collect() (Result, error) {
	res := Result{Logs: r.intake.take()}
	dropped, sampledOut := r.filtered()
	res.Dropped, res.SampledOut = dropped-r.dropped, sampledOut-r.sampledOut
	r.dropped, r.sampledOut = dropped, sampledOut
	files, err := dlq.Files(r.dir)
	if err != nil {
		return res, err
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return res, err
		}
		_, err = f.Seek(r.read[name], io.SeekStart)
		var n int64
		if err == nil {
			cr := &countingReader{r: f}
			_, err = dlq.Read(cr, func(e dlq.Entry) error { res.Dead = append(res.Dead, e); return nil })
			n = cr.n
		}
		_ = f.Close()
		if err != nil {
			return res, err
		}
		r.read[name] += n
	}
	return res, nil
}

// filtered sums the filters' dropped and sampled_out counters over their
// rules.
func (r *Runner) filtered() (dropped, sampledOut int64) {
	for _, f := range r.p.Metrics().Snapshot().Families {
		for _, se := range f.Series {
			switch f.Name {
			case "filters.dropped":
				dropped += se.Value
			case "filters.sampled_out":
				sampledOut += se.Value
			}
		}
	}
	return dropped, sampledOut
}

// Close stops the pipeline and returns what it delivered while stopping
// (request summaries still open, with parse.correlation.deliver_summaries).
func (r *Runner) Close(ctx context.Context) (Result, error) {
	err := r.p.Shutdown(ctx)
	res, cerr := r.collect()
	r.closeIntake()
	return res, errors.Join(err, cerr)
}

func (r *Runner) closeIntake() {
	_ = r.srv.Close()
	_ = os.RemoveAll(r.dir)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// recorder is the logs intake of a dry run: it keeps every log it is sent
// and accepts every request (202), as the intake does a valid one.
type recorder struct {
	mu   sync.Mutex
	logs []json.RawMessage
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/api/v2/logs" {
		w.WriteHeader(http.StatusAccepted) // metrics and the like: not recorded
		_, _ = io.WriteString(w, "{}")
		return
	}
	body, err := decodeBody(req)
	var logs []json.RawMessage
	if err == nil {
		err = json.Unmarshal(body, &logs)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.logs = append(rc.logs, logs...)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "{}")
}

func (rc *recorder) take() []json.RawMessage {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l := rc.logs
	rc.logs = nil
	return l
}

// decodeBody reads a request body; Offline sets compression none.
func decodeBody(req *http.Request) ([]byte, error) {
	if enc := req.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil, fmt.Errorf("unexpected Content-Encoding %q", enc)
	}
	return io.ReadAll(req.Body)
}
