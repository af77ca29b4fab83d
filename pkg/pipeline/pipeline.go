// Package pipeline assembles gwpipe from its configuration: the stage
// runtime and transport, the sources, every stage, the dead-letter archive,
// and the admin endpoints; and it shuts them down in the order that loses
// nothing.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/apigw"
	"github.com/gwpipe/gwpipe/pkg/awstags"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/decode"
	"github.com/gwpipe/gwpipe/pkg/dedup"
	"github.com/gwpipe/gwpipe/pkg/derive"
	"github.com/gwpipe/gwpipe/pkg/dlq"
	"github.com/gwpipe/gwpipe/pkg/firehose"
	"github.com/gwpipe/gwpipe/pkg/metricstream"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Stage names, as `gwpipe run --stages` takes them.
const (
	StageIngest         = "ingest"
	StageDecode         = "decode"
	StageParse          = "parse"
	StageEnrich         = "enrich"
	StageDerive         = "derive"
	StageDeliverLogs    = "deliver-logs"
	StageDeliverMetrics = "deliver-metrics"
	StageDLQ            = "dlq"
)

// AllStages lists every stage in pipeline order.
var AllStages = []string{StageIngest, StageDecode, StageParse, StageEnrich, StageDerive, StageDeliverLogs, StageDeliverMetrics}

// implemented are the stages this build runs.
var implemented = []string{StageIngest, StageDecode, StageParse, StageEnrich, StageDerive, StageDeliverLogs, StageDeliverMetrics}

// ParseStages checks a --stages value.
func ParseStages(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" || s == "all" {
		return AllStages, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(AllStages, name) {
			return nil, fmt.Errorf("unknown stage %q (stages: %s)", name, strings.Join(AllStages, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Source is an ingest source other than the Firehose endpoint (SQS, S3
// replay): the pipeline starts it after the stages and stops it first.
type Source interface {
	Name() string
	Start(ctx context.Context) error
	// Stop stops taking work and waits, within ctx, until everything it
	// admitted was acknowledged or given back to its sender.
	Stop(ctx context.Context) error
}

// SourceFactory builds a source from the pipeline's configuration; it
// returns nil when the configuration does not ask for that source.
type SourceFactory func(p *Pipeline) (Source, error)

// archiveOptions configure the dead-letter archive; tests make its disk fail.
var archiveOptions []dlq.Option

// sourceFactories are registered by the files that implement sources.
var sourceFactories []SourceFactory

// Pipeline is a running gwpipe process.
type Pipeline struct {
	cfg     config.Config
	log     *slog.Logger
	metrics *telemetry.Registry
	stages  []string

	rt       *stage.Runtime
	logs     *ddlogs.Client
	archive  *dlq.Archive
	parser   *apigw.Parser
	corr     *apigw.Correlator
	tagger   *awstags.Tagger
	deriver  *derive.Deriver
	metricsC *ddmetrics.Client
	selfTel  *ddmetrics.SelfTelemetry
	firehose *firehose.Source
	sources  []Source

	fhLn     net.Listener
	fhSrv    *http.Server
	admin    []*adminServer // admin.listen, admin.health_listen
	serveErr chan error

	loops     sync.WaitGroup // background loops: summary expiry, window ticks, telemetry
	stopLoops context.CancelFunc

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds the pipeline; nothing runs until Start.
func New(cfg config.Config, stages []string, log *slog.Logger) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	// Whatever a stage logs (an error quoting the intake's URL, …) is
	// written without the secrets URLs may carry.
	log = slog.New(redact.Handler(log.Handler()))
	if stages == nil {
		stages = AllStages
	}
	if cfg.Transport.Kind == "memory" {
		for _, s := range implemented {
			if !slices.Contains(stages, s) {
				return nil, fmt.Errorf("--stages: the memory transport runs every stage in one process, and %q is missing; split stages across processes with transport.kind sqs or nats", s)
			}
		}
	}
	p := &Pipeline{cfg: cfg, log: log, metrics: telemetry.NewRegistry(), stages: stages, serveErr: make(chan error, 3)}
	tr, err := newTransport(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("transport.kind %s: %w", cfg.Transport.Kind, err)
	}
	topics := cfg.Pipeline.Topics
	p.rt, err = stage.New(stage.Config{
		DLQTopic: topics.DLQ, MaxInFlight: cfg.Pipeline.MaxInFlightBatches, MaxRetries: cfg.Pipeline.MaxRetries,
		InitialInterval: cfg.Pipeline.RetryInitial, MaxInterval: cfg.Pipeline.RetryMax,
		Topology: Topology(cfg),
	}, tr, log, p.metrics)
	if err != nil {
		return nil, err
	}

	if p.archive, err = dlq.Open(cfg.DLQ.Dir, archiveOptions...); err != nil {
		return nil, err
	}
	if err := p.rt.Add(stage.Stage{Name: StageDLQ, Input: topics.DLQ, Handler: p.archive}); err != nil {
		return nil, err
	}
	if p.runs(StageDecode) {
		d := decode.New(decode.Config{
			MaxRecordBytes: cfg.Decode.MaxRecordBytes, MaxDecompressedBytes: cfg.Decode.MaxDecompressedBytes,
			MaxEventsPerBatch: cfg.Decode.MaxEventsPerBatch,
		}, p.metrics)
		if ms := cfg.Metrics.Streams; cfg.Metrics.Enabled && ms.Enabled {
			dec, err := metricstream.NewDecoder(metricstream.Config{Namespace: ms.Namespace, PassOther: ms.PassOther,
				DropNamespaces: ms.DropNamespaces, Percentiles: ms.Percentiles})
			if err != nil {
				return nil, fmt.Errorf("metrics.streams: %w", err)
			}
			d.WithMetricStreams(decode.MetricStreams(dec))
		}
		if err := p.rt.Add(stage.Stage{Name: StageDecode, Input: topics.Raw, Output: topics.Decoded, Handler: d}); err != nil {
			return nil, err
		}
	}
	if p.runs(StageParse) {
		ac := apigw.Config{OtherSource: cfg.Parse.OtherSource, AccessLogGroupPrefixes: cfg.Parse.AccessLogGroupPrefixes}
		for _, f := range cfg.Parse.Formats {
			ac.Formats = append(ac.Formats, apigw.FormatRule{LogGroup: f.LogGroup, Format: f.Format})
		}
		if p.parser, err = apigw.New(ac); err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
		cc := cfg.Parse.Correlation
		p.corr = apigw.NewCorrelator(apigw.CorrelatorConfig{MaxOpen: cc.MaxOpen, MaxAge: cc.MaxAge})
		if err := p.rt.Add(stage.Stage{Name: StageParse, Input: topics.Decoded, Output: topics.Parsed, Handler: parseStage{p.parser, p.corr}}); err != nil {
			return nil, err
		}
	}
	if p.runs(StageEnrich) {
		h, err := p.enricher()
		if err != nil {
			return nil, fmt.Errorf("enrich: %w", err)
		}
		h = metricTags{next: h, t: p.tagger}
		if err := p.rt.Add(stage.Stage{Name: StageEnrich, Input: topics.Parsed, Output: topics.Enriched, Handler: h}); err != nil {
			return nil, err
		}
	}
	if p.runs(StageDeliverLogs) {
		l := cfg.Datadog.Logs
		deliveries := p.metrics.Histogram("deliver-logs.request_latency")
		p.logs, err = ddlogs.New(ddlogs.Config{
			URL: cfg.LogsURL(), APIKey: cfg.Datadog.APIKey,
			MaxBatchLogs: l.MaxBatchLogs, MaxBatchBytes: l.MaxBatchBytes, MaxLogBytes: l.MaxLogBytes,
			Linger: l.Linger, Compression: l.Compression, CompressionLevel: l.CompressionLevel,
			Concurrency: l.Concurrency, RequestTimeout: l.RequestTimeout,
			Backoff:  ddlogs.Backoff{InitialInterval: l.RetryInitial, MaxInterval: l.RetryMax},
			Defaults: ddlogs.Defaults{Source: "apigateway", Service: cfg.Datadog.Service, Tags: ddlogs.JoinTags(cfg.Enrich.Tags...)},
			Logger:   log.With("stage", StageDeliverLogs),
			OnResult: func(r ddlogs.Result) { deliveries.Observe(r.Latency) },
		})
		if err != nil {
			return nil, fmt.Errorf("deliver-logs: %w", err)
		}
		// Requests wait in the client until their payload is accepted; allow
		// enough of them to fill every payload the client keeps in flight.
		dupes := p.metrics.Counter("deliver-logs.duplicates_dropped")
		// Redeliveries after a crash come from a broker. In one process a
		// Firehose retry is recognised by its request id instead, so the
		// window would only cost CPU.
		var seen *dedup.Window
		if cfg.Transport.Kind != "memory" {
			seen = dedup.New(cfg.Transport.DedupWindow)
		}
		if err := p.rt.Add(stage.Stage{Name: StageDeliverLogs, Input: topics.Enriched, Handler: &deliverStage{d: p.logs, summaries: cfg.Parse.Correlation.DeliverSummaries,
			seen: seen, dupes: dupes},
			MaxInFlight: max(64, cfg.Pipeline.MaxInFlightBatches)}); err != nil {
			return nil, err
		}
	}
	if err := p.addMetricStages(); err != nil {
		return nil, err
	}
	if p.runs(StageIngest) && cfg.Sources.Firehose.Enabled {
		f := cfg.Sources.Firehose
		p.firehose = firehose.New(firehose.Config{
			AccessKeys: f.AccessKeys, AllowUnauthenticated: f.AllowUnauthenticated,
			MaxBodyBytes: f.MaxBodyBytes, MaxDecompressedBytes: f.MaxDecompressedBytes, MaxInFlightBytes: f.MaxInFlightBytes,
			AckTimeout: f.AckTimeout, RecordsPerBatch: f.RecordsPerBatch, DedupTTL: f.DedupTTL, DefaultRegion: f.DefaultRegion,
		}, p.rt.Source(StageIngest, topics.Raw), p.Ready, log.With("source", "firehose"), p.metrics)
	}
	if p.runs(StageIngest) {
		for _, mk := range sourceFactories {
			src, err := mk(p)
			if err != nil {
				return nil, err
			}
			if src != nil {
				p.sources = append(p.sources, src)
			}
		}
	}
	return p, nil
}

func (p *Pipeline) runs(s string) bool { return slices.Contains(p.stages, s) }

// Config is the configuration the pipeline runs with.
func (p *Pipeline) Config() config.Config { return p.cfg }

// Logger is the pipeline's logger.
func (p *Pipeline) Logger() *slog.Logger { return p.log }

// Output is where a source publishes to a topic; its counters are kept
// under the given stage name.
func (p *Pipeline) Output(name, topic string) stage.Output { return p.rt.Source(name, topic) }

// AddSource adds a source before Start (replay builds its pipeline so).
func (p *Pipeline) AddSource(s Source) { p.sources = append(p.sources, s) }

// Metrics is the process's telemetry.
func (p *Pipeline) Metrics() *telemetry.Registry { return p.metrics }

// Ready is nil when the pipeline can deliver.
func (p *Pipeline) Ready() error {
	if p.logs != nil {
		if err := p.logs.Healthy(); err != nil {
			return err
		}
	}
	if p.metricsC != nil {
		if err := p.metricsC.Healthy(); err != nil {
			return err
		}
	}
	return nil
}

// Start opens the listeners and starts every stage.
func (p *Pipeline) Start(ctx context.Context) error {
	if err := p.rt.Start(ctx); err != nil {
		return fmt.Errorf("start stages: %w", err)
	}
	if p.firehose != nil {
		ln, err := listen(ctx, p.cfg.Sources.Firehose.Listen, p.cfg.Sources.Firehose.ReusePort)
		if err != nil {
			return fmt.Errorf("sources.firehose.listen: %w", err)
		}
		p.fhLn = ln
		p.fhSrv = &http.Server{Handler: p.firehose, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
		go p.serve(p.fhSrv, ln, "firehose")
		p.log.Info("firehose endpoint listening", "addr", ln.Addr().String())
	}
	p.startLoops()
	for _, src := range p.sources {
		if err := src.Start(ctx); err != nil {
			return fmt.Errorf("start source %s: %w", src.Name(), err)
		}
	}
	return p.startAdmin()
}

func (p *Pipeline) serve(srv *http.Server, ln net.Listener, name string) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		p.serveErr <- fmt.Errorf("%s server: %w", name, err)
	}
}

// Err reports a listener that failed while running.
func (p *Pipeline) Err() <-chan error { return p.serveErr }

// FirehoseAddr is the address the Firehose endpoint listens on.
func (p *Pipeline) FirehoseAddr() string {
	if p.fhLn == nil {
		return ""
	}
	return p.fhLn.Addr().String()
}

// Shutdown (safe to call more than once) stops taking work, finishes what
// is in flight, and stops: the sources refuse new requests (503, so Firehose
// retries elsewhere or later), requests already admitted wait for their
// acknowledgement, every stage drains and the delivery clients flush.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() { p.shutdownErr = p.shutdown(ctx) })
	return p.shutdownErr
}

func (p *Pipeline) shutdown(ctx context.Context) error {
	var errs []error
	if p.firehose != nil {
		p.firehose.Shutdown()
	}
	if p.fhSrv != nil {
		// Waits for admitted requests, which wait for their records.
		if err := p.fhSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("firehose server: %w", err))
		}
	}
	for _, src := range p.sources {
		if err := src.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", src.Name(), err))
		}
	}
	if err := p.rt.Drain(ctx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, p.flushOpenWork(ctx)...)
	if p.logs != nil {
		if err := p.logs.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("deliver-logs: %w", err))
		}
	}
	if p.metricsC != nil {
		if err := p.metricsC.Close(); err != nil {
			errs = append(errs, fmt.Errorf("deliver-metrics: %w", err))
		}
	}
	if p.tagger != nil {
		if err := p.tagger.Close(); err != nil {
			errs = append(errs, fmt.Errorf("enrich: %w", err))
		}
	}
	if p.selfTel != nil {
		if err := p.selfTel.Close(); err != nil {
			errs = append(errs, fmt.Errorf("telemetry: %w", err))
		}
	}
	if err := p.rt.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := p.archive.Close(); err != nil {
		errs = append(errs, fmt.Errorf("dead-letter archive: %w", err))
	}
	errs = append(errs, p.stopAdmin(ctx)...)
	return errors.Join(errs...)
}
