// Package config loads gwpipe's configuration: built-in defaults, then an
// optional YAML file, then the environment (every key a.b.c as GWPIPE_A_B_C,
// plus DD_API_KEY, DD_SITE and DD_TAGS as Datadog users expect). Validate
// reports every problem at start-up, with the key to fix.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/runtime/claim"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/firehose"
	"github.com/gwpipe/gwpipe/pkg/sources/replay"
	"github.com/gwpipe/gwpipe/pkg/sources/sqssource"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
	"github.com/gwpipe/gwpipe/pkg/tlsreload"
)

// Config is the whole configuration. Each section that configures one
// component is that component's own Config (with its defaults and its
// Validate); the sections here hold what belongs to the process.
type Config struct {
	Log       Log           `yaml:"log"`
	Transport Transport     `yaml:"transport"`
	Pipeline  Pipeline      `yaml:"pipeline"`
	Sources   Sources       `yaml:"sources"`
	Decode    decode.Config `yaml:"decode"`
	Parse     Parse         `yaml:"parse"`
	Enrich    Enrich        `yaml:"enrich"`
	Datadog   Datadog       `yaml:"datadog"`
	Filters   filter.Config `yaml:"filters"`
	Metrics   Metrics       `yaml:"metrics"`
	DLQ       dlq.Config    `yaml:"dlq"`
	Admin     Admin         `yaml:"admin"`
	Replay    Replay        `yaml:"replay"`

	// setBy names the Datadog or Forwarder variable that set a key, or an
	// item of a list (filters.rules[2]), for Validate's messages: the value
	// is to be fixed there, under a name that is not its key's.
	setBy map[string]string
}

type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Transport is the stage transport's configuration, and the dedup window
// deliver-logs keeps on a broker.
type Transport struct {
	stage.TransportConfig `yaml:",inline"`
	// DedupWindow is how many recent CloudWatch event ids deliver-logs
	// remembers to drop redelivered duplicates (0 turns it off).
	DedupWindow int `yaml:"dedup_window"`
	// FleetDedup makes the Firehose request ids and deliver-logs' batches
	// known to every worker, in a JetStream key-value bucket
	// (gwpipe_dedup), with transport.kind nats: a retry a load balancer
	// sends to another worker, and a batch the broker redelivers to
	// another worker, are not delivered twice.
	FleetDedup claim.Config `yaml:"fleet_dedup"`
}

type Pipeline struct {
	// Runtime: max_inflight_batches, max_retries, retry_initial, retry_max.
	Runtime stage.Config `yaml:",inline"`
	// The process's memory budget for event data (see package
	// membudget): max_held_bytes, ingest_high_water_bytes.
	membudget.Config `yaml:",inline"`
	// DrainTimeout bounds the whole shutdown.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	Topics       Topics        `yaml:"topics"`
}

type Topics struct {
	Raw      string `yaml:"raw"`
	Decoded  string `yaml:"decoded"`
	Parsed   string `yaml:"parsed"`
	Enriched string `yaml:"enriched"`
	Metrics  string `yaml:"metrics"`
	DLQ      string `yaml:"dlq"`
}

type Sources struct {
	Firehose firehose.Config  `yaml:"firehose"`
	SQS      sqssource.Config `yaml:"sqs"`
}

// Replay configures `gwpipe replay`: which archive to read again and how
// fast. Every key has a flag of the same name.
type Replay struct {
	Bucket string `yaml:"bucket"`
	Prefix string `yaml:"prefix"`
	// From and To bound event time: RFC 3339 ("2026-01-02T15:04:05Z"), a
	// time relative to now ("-2h", "-90m", "-3d") or "now". To defaults to
	// now; From is required when replaying a bucket.
	From string `yaml:"from"`
	To   string `yaml:"to"`
	// SelectBy chooses the objects worth opening: "key" (the Firehose
	// YYYY/MM/DD/HH layout), "modified" (an object cannot hold events later
	// than its last modification), "auto" (the key when it has the layout,
	// else the modification time) or "none" (open everything; events are
	// still filtered by time).
	SelectBy string `yaml:"select_by"`
	// KeySlack widens the key-time window on both sides: Firehose names an
	// object after its delivery hour, and events arrive late or early.
	KeySlack    time.Duration `yaml:"key_slack"`
	Concurrency int           `yaml:"concurrency"` // objects read at once
	Rate        int           `yaml:"rate"`        // events per second; 0 = unlimited
	// MaxInFlightEvents bounds the events sent and not yet acknowledged,
	// which bounds the replay's memory.
	MaxInFlightEvents int `yaml:"max_inflight_events"`
	// Checkpoint is a file recording what was delivered, so that an
	// interrupted replay resumes without sending anything twice.
	Checkpoint string `yaml:"checkpoint"`
	// OldLogs is what happens to events older than MaxAge, which Datadog
	// would drop: "skip" (counted in the summary) or "retimestamp" (sent
	// with the replay time as their timestamp).
	OldLogs string        `yaml:"old_logs"`
	MaxAge  time.Duration `yaml:"max_age"`
	// DLQ replays gwpipe's dead-letter archive instead of a bucket: a
	// directory, or an s3://bucket/prefix URL.
	DLQ            string `yaml:"dlq"`
	Region         string `yaml:"region"`
	EventsPerBatch int    `yaml:"events_per_batch"`
	// Lease guards a checkpoint in S3 (and the ledger of an archive in
	// S3): a second replay of the same one is refused while the first
	// runs, and takes over once the first's lease expires.
	Lease lease.Config `yaml:"lease"`
}

// TimeRange resolves From and To against now. An empty From is the zero
// time (no lower bound); an empty To is now.
func (r Replay) TimeRange(now time.Time) (from, to time.Time, err error) {
	if r.From != "" {
		if from, err = ParseTime(r.From, now); err != nil {
			return from, to, fmt.Errorf("replay.from: %w", err)
		}
	}
	to = now
	if r.To != "" {
		if to, err = ParseTime(r.To, now); err != nil {
			return from, to, fmt.Errorf("replay.to: %w", err)
		}
	}
	if !from.IsZero() && !from.Before(to) {
		return from, to, fmt.Errorf("replay.from (%s) must be before replay.to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, nil
}

// ParseTime reads an RFC 3339 time, "now", or a time relative to now: a Go
// duration with an optional sign ("-2h", "-1h30m", "+10m") or a number of
// days ("-3d").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	if strings.EqualFold(s, "now") {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err == nil && n == n && n > -1e5 && n < 1e5 {
			return now.Add(time.Duration(n * float64(24*time.Hour))), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-01-02T15:04:05Z), a date, \"now\" nor relative (-2h, -3d)", s)
	}
	return now.Add(d), nil
}

// Parse is the parser's configuration and the correlation of execution
// logs into request summaries.
type Parse struct {
	apigw.Config `yaml:",inline"`
	Correlation  Correlation `yaml:"correlation"`
}

// Correlation folds execution-log lines into request summaries.
type Correlation struct {
	apigw.CorrelatorConfig `yaml:",inline"`
	// DeliverSummaries also sends each summary to Datadog as a log.
	DeliverSummaries bool `yaml:"deliver_summaries"`
}

// Enrich is the stage tags' configuration (awstags), whether they are read
// from AWS, and the static tags of every log.
type Enrich struct {
	// Tags are added to every log; DD_TAGS adds to them.
	Tags []string `yaml:"tags"`
	// AWSTags reads each stage's tags from AWS (apigateway:GET and
	// tag:GetResources only).
	AWSTags        bool `yaml:"aws_tags"`
	awstags.Config `yaml:",inline"`
}

type Datadog struct {
	APIKey  string `yaml:"api_key"`
	Site    string `yaml:"site"`
	LogsURL string `yaml:"logs_url"`
	APIURL  string `yaml:"api_url"`
	Service string `yaml:"service"`
	// Logs is deliver-logs' client: its keys, defaults and checks are
	// ddlogs'; LogsClient adds what comes from the rest of the section.
	Logs ddlogs.Config `yaml:"logs"`
}

type Admin struct {
	// Listen serves health, /status (and /debug/pprof when Pprof): keep it
	// on loopback; what it shows is for the operator of the host.
	Listen string `yaml:"listen"`
	// HealthListen serves /healthz, /readyz and /metrics alone, for probes,
	// load balancers and Prometheus, which must reach the process from the
	// network.
	HealthListen string `yaml:"health_listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on Listen.
	Pprof          bool          `yaml:"pprof"`
	ReportInterval time.Duration `yaml:"report_interval"` // 0: no periodic console report
	// TLS serves both admin listeners over HTTPS with this certificate,
	// read again when its files change.
	TLS tlsreload.Config `yaml:"tls"`
}

// SoftMemoryLimit is the Go runtime's soft memory limit for `gwpipe run`
// (unless GOMEMLIMIT sets one): twice the memory budget. The budget bounds
// what is live; without a limit the collector would let the heap grow to
// twice the live heap and more between collections, so the process's
// resident memory would be about three times the budget.
func (p Pipeline) SoftMemoryLimit() int64 { return 2 * p.MaxHeldBytes }

// DefaultConfig returns the built-in defaults: everything in one process,
// the Firehose endpoint on :8088, delivery to Datadog US1.
func DefaultConfig() Config {
	rd := replay.DefaultConfig()
	return Config{
		Log:       Log{Level: "info", Format: "text"},
		Transport: Transport{TransportConfig: stage.DefaultTransportConfig(), DedupWindow: 1_000_000, FleetDedup: claim.DefaultConfig()},
		Pipeline: Pipeline{
			Runtime: stage.DefaultConfig(), Config: membudget.DefaultConfig(), DrainTimeout: 60 * time.Second,
			Topics: Topics{Raw: "raw", Decoded: "decoded", Parsed: "parsed", Enriched: "enriched", Metrics: "metrics", DLQ: "dlq"},
		},
		Sources: Sources{Firehose: firehose.DefaultConfig(), SQS: sqssource.DefaultConfig()},
		Decode:  decode.DefaultConfig(),
		Parse:   Parse{Config: apigw.DefaultConfig(), Correlation: Correlation{CorrelatorConfig: apigw.DefaultCorrelatorConfig()}},
		Enrich:  Enrich{AWSTags: true, Config: awstags.DefaultConfig()},
		Datadog: Datadog{Site: ddhttp.DefaultSite, Service: "apigateway", Logs: ddlogs.DefaultConfig()},
		Filters: filter.DefaultConfig(),
		Metrics: defaultMetrics(),
		DLQ:     dlq.DefaultConfig(),
		Admin:   Admin{Listen: "127.0.0.1:8089"},
		Replay: Replay{
			SelectBy: rd.SelectBy, KeySlack: rd.KeySlack, Concurrency: rd.Concurrency, OldLogs: rd.OldLogs,
			MaxAge: rd.MaxAge, EventsPerBatch: rd.Object.EventsPerBatch, MaxInFlightEvents: rd.MaxInFlightEvents,
			Lease: lease.DefaultConfig(),
		},
	}
}

// LogsURL is the logs intake URL: datadog.logs_url, or the site's default.
func (c Config) LogsURL() string {
	if c.Datadog.LogsURL != "" {
		return c.Datadog.LogsURL
	}
	return ddlogs.LogsURL(c.Datadog.Site)
}

// APIURL is the metrics API base URL: datadog.api_url, or the site's default.
func (c Config) APIURL() string {
	if c.Datadog.APIURL != "" {
		return c.Datadog.APIURL
	}
	return ddmetrics.APIURL(c.Datadog.Site)
}
