// Package config loads gwpipe's configuration: built-in defaults, then an
// optional YAML file, then the environment (every key a.b.c as GWPIPE_A_B_C,
// plus DD_API_KEY, DD_SITE and DD_TAGS as Datadog users expect). Validate
// reports every problem at start-up, with the key to fix.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/redact"
)

// Config is the whole configuration.
type Config struct {
	Log       Log       `yaml:"log"`
	Transport Transport `yaml:"transport"`
	Pipeline  Pipeline  `yaml:"pipeline"`
	Sources   Sources   `yaml:"sources"`
	Decode    Decode    `yaml:"decode"`
	Parse     Parse     `yaml:"parse"`
	Enrich    Enrich    `yaml:"enrich"`
	Datadog   Datadog   `yaml:"datadog"`
	Metrics   Metrics   `yaml:"metrics"`
	DLQ       DLQ       `yaml:"dlq"`
	Admin     Admin     `yaml:"admin"`
	Replay    Replay    `yaml:"replay"`
}

type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

type Transport struct {
	Kind string        `yaml:"kind"` // memory, nats or sqs
	NATS NATSTransport `yaml:"nats"`
	SQS  SQSTransport  `yaml:"sqs"`
	// Subscribers is how many messages of one stage a worker handles at
	// once on a broker.
	Subscribers int `yaml:"subscribers"`
	// DedupWindow is how many recent CloudWatch event ids deliver-logs
	// remembers to drop redelivered duplicates (0 turns it off).
	DedupWindow int `yaml:"dedup_window"`
}

// NATSTransport configures the NATS JetStream transport.
type NATSTransport struct {
	URL            string        `yaml:"url"`
	AckWait        time.Duration `yaml:"ack_wait"`
	StreamMaxBytes int64         `yaml:"stream_max_bytes"`
	Replicas       int           `yaml:"replicas"`
	// Compression of inter-stage batches: none (default) or s2. S2 cuts
	// the bytes the broker stores and moves by ~3x for ~20% more worker
	// CPU.
	Compression string `yaml:"compression"`
}

// SQSTransport configures the SQS/SNS transport.
type SQSTransport struct {
	Region            string        `yaml:"region"`
	TopicPrefix       string        `yaml:"topic_prefix"`
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	MaxReceiveCount   int           `yaml:"max_receive_count"`
	MessageLimit      int           `yaml:"message_limit"`
	ClaimCheckBucket  string        `yaml:"claim_check_bucket"`
}

type Pipeline struct {
	// MaxInFlightBatches bounds the batches queued for or handled by each
	// stage at once; 0 means 4 per CPU.
	MaxInFlightBatches int `yaml:"max_inflight_batches"`
	// MaxHeldBytes is the process's memory budget for event data (see
	// package membudget): what sources admit, and decoded events until
	// they are delivered, counted with their expected footprint.
	MaxHeldBytes int64 `yaml:"max_held_bytes"`
	// IngestHighWaterBytes is the part of MaxHeldBytes above which sources
	// admit nothing new (Firehose: 429; SQS: polling pauses); the rest is
	// decode's room to expand what was admitted.
	IngestHighWaterBytes int64         `yaml:"ingest_high_water_bytes"`
	MaxRetries           int           `yaml:"max_retries"`
	RetryInitial         time.Duration `yaml:"retry_initial"`
	RetryMax             time.Duration `yaml:"retry_max"`
	DrainTimeout         time.Duration `yaml:"drain_timeout"`
	Topics               Topics        `yaml:"topics"`
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
	Firehose Firehose `yaml:"firehose"`
	SQS      SQS      `yaml:"sqs"`
}

type Firehose struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"`
	// ReusePort opens the listener with SO_REUSEPORT, so that several
	// worker processes on one host share the port and the kernel spreads
	// connections across them (and a new process can take over before the
	// old one drains).
	ReusePort bool `yaml:"reuse_port"`
	// AccessKeys are the accepted X-Amz-Firehose-Access-Key values. One is
	// required unless AllowUnauthenticated is set.
	AccessKeys           []string `yaml:"access_keys"`
	AllowUnauthenticated bool     `yaml:"allow_unauthenticated"`
	MaxBodyBytes         int64    `yaml:"max_body_bytes"`
	MaxDecompressedBytes int64    `yaml:"max_decompressed_bytes"`
	MaxInFlightBytes     int64    `yaml:"max_inflight_bytes"`
	// A request body must start within BodyReadTimeout and then arrive at
	// MinBodyRate bytes per second on average, or it is answered 408.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	MinBodyRate     int64         `yaml:"min_body_rate"`
	AckTimeout      time.Duration `yaml:"ack_timeout"`
	RecordsPerBatch int           `yaml:"records_per_batch"`
	DedupTTL        time.Duration `yaml:"dedup_ttl"`
	DefaultRegion   string        `yaml:"default_region"`
}

// SQS is the SQS source: queues that carry S3 event notifications (direct,
// through SNS, or from EventBridge) or CloudWatch Logs subscription payloads.
// It is enabled by listing at least one queue.
type SQS struct {
	QueueURLs []string `yaml:"queue_urls"`
	// MaxConcurrentMessages bounds the messages being worked on at once,
	// across every queue; polling pauses while they are all busy.
	MaxConcurrentMessages int `yaml:"max_concurrent_messages"`
	// VisibilityTimeout is asked for on every receive and renewed while a
	// message is worked on, so a short value costs only API calls while a
	// crashed worker's messages come back quickly.
	VisibilityTimeout time.Duration `yaml:"visibility_timeout"`
	// WaitTime is the long-polling wait of one receive (0 to 20s).
	WaitTime time.Duration `yaml:"wait_time"`
	// Region of the queues (and of the S3 client's default); empty takes
	// the SDK's default chain (AWS_REGION).
	Region string `yaml:"region"`
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

type Decode struct {
	MaxRecordBytes       int `yaml:"max_record_bytes"`       // decoded Firehose record, before gunzip
	MaxDecompressedBytes int `yaml:"max_decompressed_bytes"` // one record after gunzip
	MaxEventsPerBatch    int `yaml:"max_events_per_batch"`
	// MaxRequestDecompressedBytes bounds what the records of one Firehose
	// request (or SQS message) decompress to together; the records beyond
	// are dead-lettered.
	MaxRequestDecompressedBytes int64 `yaml:"max_request_decompressed_bytes"`
}

type FormatRule struct {
	LogGroup string `yaml:"log_group"`
	Format   string `yaml:"format"`
}

type Parse struct {
	Formats                []FormatRule `yaml:"formats"`
	AccessLogGroupPrefixes []string     `yaml:"access_log_group_prefixes"`
	OtherSource            string       `yaml:"other_source"`
	Correlation            Correlation  `yaml:"correlation"`
}

type Enrich struct {
	// Tags are added to every log; DD_TAGS adds to them.
	Tags []string `yaml:"tags"`
	// AWSTags reads each stage's tags from AWS (apigateway:GET and
	// tag:GetResources only).
	AWSTags       bool              `yaml:"aws_tags"`
	RoleTemplate  string            `yaml:"role_template"` // e.g. arn:aws:iam::{account}:role/gwpipe-reader
	RoleOverrides map[string]string `yaml:"role_overrides"`
	ExternalID    string            `yaml:"external_id"`
	DefaultRegion string            `yaml:"default_region"`
	TTL           time.Duration     `yaml:"ttl"`
	NegativeTTL   time.Duration     `yaml:"negative_ttl"`
	MaxStages     int               `yaml:"max_stages"`
	RatePerSecond float64           `yaml:"rate_per_second"`
	Burst         int               `yaml:"burst"`
	MaxWait       time.Duration     `yaml:"max_wait"`
	Mappings      []StageMapping    `yaml:"mappings"`
}

// StageMapping names the API and stage of a log group whose records do not
// say.
type StageMapping struct {
	LogGroup string `yaml:"log_group"`
	APIID    string `yaml:"api_id"`
	Stage    string `yaml:"stage"`
	Account  string `yaml:"account"`
	Region   string `yaml:"region"`
}

type Datadog struct {
	APIKey  string `yaml:"api_key"`
	Site    string `yaml:"site"`
	LogsURL string `yaml:"logs_url"`
	APIURL  string `yaml:"api_url"`
	Service string `yaml:"service"`
	Logs    Logs   `yaml:"logs"`
}

type Logs struct {
	Compression      string        `yaml:"compression"` // gzip, zstd or none
	CompressionLevel int           `yaml:"compression_level"`
	Concurrency      int           `yaml:"concurrency"`
	MaxBatchLogs     int           `yaml:"max_batch_logs"`
	MaxBatchBytes    int           `yaml:"max_batch_bytes"`
	MaxLogBytes      int           `yaml:"max_log_bytes"`
	Linger           time.Duration `yaml:"linger"`
	RequestTimeout   time.Duration `yaml:"request_timeout"`
	RetryInitial     time.Duration `yaml:"retry_initial"`
	RetryMax         time.Duration `yaml:"retry_max"`
}

type DLQ struct {
	Dir string `yaml:"dir"`
}

type Admin struct {
	// Listen serves health, /status (and /debug/pprof when Pprof): keep it
	// on loopback; what it shows is for the operator of the host.
	Listen string `yaml:"listen"`
	// HealthListen serves /healthz and /readyz alone, for probes and load
	// balancers that must reach the process from the network.
	HealthListen string `yaml:"health_listen"`
	// Pprof serves Go's profiles under /debug/pprof/ on Listen.
	Pprof          bool          `yaml:"pprof"`
	ReportInterval time.Duration `yaml:"report_interval"` // 0: no periodic console report
}

// SoftMemoryLimit is the Go runtime's soft memory limit for `gwpipe run`
// (unless GOMEMLIMIT sets one): twice the memory budget. The budget bounds
// what is live; without a limit the collector would let the heap grow to
// twice the live heap and more between collections, so the process's
// resident memory would be about three times the budget.
func (p Pipeline) SoftMemoryLimit() int64 { return 2 * p.MaxHeldBytes }

// Default is DefaultConfig.
//
// Deprecated: use DefaultConfig.
func Default() Config { return DefaultConfig() }

// DefaultConfig returns the built-in defaults: everything in one process,
// the Firehose endpoint on :8088, delivery to Datadog US1.
func DefaultConfig() Config {
	var c Config
	c.Log = Log{Level: "info", Format: "text"}
	c.Transport = Transport{
		Kind: "memory", Subscribers: 4, DedupWindow: 1_000_000,
		NATS: NATSTransport{AckWait: 60 * time.Second, StreamMaxBytes: 1 << 30, Replicas: 1, Compression: "s2"},
		SQS:  SQSTransport{TopicPrefix: "gwpipe-", VisibilityTimeout: 120 * time.Second, MaxReceiveCount: 5, MessageLimit: 256 << 10},
	}
	c.Pipeline = Pipeline{
		MaxHeldBytes: 96 << 20, IngestHighWaterBytes: 48 << 20,
		MaxRetries: 5, RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
		DrainTimeout: 60 * time.Second,
		Topics:       Topics{Raw: "raw", Decoded: "decoded", Parsed: "parsed", Enriched: "enriched", Metrics: "metrics", DLQ: "dlq"},
	}
	c.Sources.Firehose = Firehose{
		Enabled: true, Listen: ":8088",
		MaxBodyBytes: 64 << 20, MaxDecompressedBytes: 96 << 20, MaxInFlightBytes: 128 << 20,
		BodyReadTimeout: 10 * time.Second, MinBodyRate: 64 << 10,
		AckTimeout: 120 * time.Second, RecordsPerBatch: 250, DedupTTL: 10 * time.Minute,
	}
	c.Decode = Decode{MaxRecordBytes: 1_024_000, MaxDecompressedBytes: 8 << 20, MaxEventsPerBatch: 2000,
		MaxRequestDecompressedBytes: 1 << 30}
	c.Parse.OtherSource = "cloudwatch"
	c.Parse.Correlation = defaultCorrelation()
	c.Enrich = Enrich{AWSTags: true, TTL: 15 * time.Minute, NegativeTTL: 5 * time.Minute, MaxStages: 100_000,
		RatePerSecond: 10, Burst: 40, MaxWait: 200 * time.Millisecond}
	c.Metrics = defaultMetrics()
	c.Datadog = Datadog{Site: "datadoghq.com", Service: "apigateway", Logs: Logs{
		Compression: "gzip", CompressionLevel: 1, Concurrency: 4,
		MaxBatchLogs: 1000, MaxBatchBytes: 4_500_000, MaxLogBytes: 1_000_000,
		Linger: 50 * time.Millisecond, RequestTimeout: 30 * time.Second,
		RetryInitial: 500 * time.Millisecond, RetryMax: 30 * time.Second,
	}}
	c.Sources.SQS = SQS{MaxConcurrentMessages: 20, VisibilityTimeout: 60 * time.Second, WaitTime: 20 * time.Second}
	c.DLQ.Dir = "data/dlq"
	c.Admin.Listen = "127.0.0.1:8089"
	c.Replay = Replay{
		SelectBy: "auto", KeySlack: time.Hour, Concurrency: 4, OldLogs: "skip",
		// Datadog drops logs older than 18 h; the margin leaves time for an
		// event to travel from the archive to the intake.
		MaxAge:            17*time.Hour + 50*time.Minute,
		EventsPerBatch:    500,
		MaxInFlightEvents: 10_000,
	}
	return c
}

// LogsURL is the logs intake URL: datadog.logs_url, or the site's default.
func (c Config) LogsURL() string {
	if c.Datadog.LogsURL != "" {
		return c.Datadog.LogsURL
	}
	return "https://http-intake.logs." + c.Datadog.Site + "/api/v2/logs"
}

// APIURL is the metrics API base URL: datadog.api_url, or the site's default.
func (c Config) APIURL() string {
	if c.Datadog.APIURL != "" {
		return c.Datadog.APIURL
	}
	return "https://api." + c.Datadog.Site
}

// Validate reports every problem, each with the key that fixes it.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		// Messages quote the values they refuse, URLs with keys included.
		errs = append(errs, fmt.Errorf("%s: %s", key, redact.URL(fmt.Sprintf(format, a...))))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, not %q", c.Log.Format)
	}
	switch c.Transport.Kind {
	case "memory":
	case "nats":
		if c.Transport.NATS.URL == "" {
			bad("transport.nats.url", "is required with transport.kind nats (e.g. nats://127.0.0.1:4222)")
		}
		if comp := c.Transport.NATS.Compression; comp != "none" && comp != "s2" {
			bad("transport.nats.compression", "must be none or s2, not %q", comp)
		}
	case "sqs":
		if c.Transport.SQS.MessageLimit < 16<<10 || c.Transport.SQS.MessageLimit > 1<<20 {
			bad("transport.sqs.message_limit", "must be 16 KiB to 1 MiB (the SQS limit), got %d", c.Transport.SQS.MessageLimit)
		}
	default:
		bad("transport.kind", "must be memory, sqs or nats, not %q", c.Transport.Kind)
	}
	if c.Transport.Subscribers < 1 {
		bad("transport.subscribers", "must be at least 1")
	}
	if c.Transport.DedupWindow < 0 {
		bad("transport.dedup_window", "must be ≥ 0")
	}
	t := c.Pipeline.Topics
	for key, v := range map[string]string{"raw": t.Raw, "decoded": t.Decoded, "parsed": t.Parsed, "enriched": t.Enriched, "metrics": t.Metrics, "dlq": t.DLQ} {
		if v == "" || strings.ContainsAny(v, ". *>") {
			bad("pipeline.topics."+key, "must be a non-empty name without '.', ' ', '*' or '>' (NATS subjects), got %q", v)
		}
	}
	if c.Pipeline.MaxInFlightBatches < 0 {
		bad("pipeline.max_inflight_batches", "must be ≥ 0")
	}
	if c.Pipeline.MaxRetries < 0 {
		bad("pipeline.max_retries", "must be ≥ 0")
	}
	if p := c.Pipeline; p.MaxHeldBytes < 1<<20 {
		bad("pipeline.max_held_bytes", "must be at least 1 MiB (it is a number of bytes), got %d", p.MaxHeldBytes)
	} else if p.IngestHighWaterBytes <= 0 || p.IngestHighWaterBytes >= p.MaxHeldBytes {
		bad("pipeline.ingest_high_water_bytes", "must be positive and below pipeline.max_held_bytes (%d), got %d: above it sources wait, below it decode has room to expand what they admitted",
			p.MaxHeldBytes, p.IngestHighWaterBytes)
	}
	f := c.Sources.Firehose
	if f.Enabled {
		if _, _, err := net.SplitHostPort(f.Listen); err != nil {
			bad("sources.firehose.listen", "must be host:port: %v", err)
		}
		if len(f.AccessKeys) == 0 && !f.AllowUnauthenticated {
			bad("sources.firehose.access_keys", "at least one access key is required (or set sources.firehose.allow_unauthenticated: true to accept any request)")
		}
		for i, k := range f.AccessKeys {
			if k == "" || len(k) > 4096 {
				bad("sources.firehose.access_keys", "key %d must be 1 to 4096 bytes", i)
			}
		}
		if f.MaxBodyBytes < 1<<20 {
			bad("sources.firehose.max_body_bytes", "must be at least 1 MiB")
		}
		if f.MaxDecompressedBytes < f.MaxBodyBytes {
			bad("sources.firehose.max_decompressed_bytes", "must be at least max_body_bytes")
		}
		if f.MaxInFlightBytes < f.MaxDecompressedBytes {
			bad("sources.firehose.max_inflight_bytes", "must be at least max_decompressed_bytes, or no request of the maximum size could be admitted")
		}
		if f.BodyReadTimeout <= 0 || f.BodyReadTimeout >= 3*time.Minute {
			bad("sources.firehose.body_read_timeout", "must be positive and below Firehose's 3-minute request timeout, got %s", f.BodyReadTimeout)
		}
		if f.MinBodyRate <= 0 {
			bad("sources.firehose.min_body_rate", "must be a positive number of bytes per second, got %d", f.MinBodyRate)
		}
		if f.AckTimeout <= 0 || f.AckTimeout >= 3*time.Minute {
			bad("sources.firehose.ack_timeout", "must be positive and below Firehose's 3-minute request timeout, got %s", f.AckTimeout)
		}
		if f.RecordsPerBatch <= 0 {
			bad("sources.firehose.records_per_batch", "must be positive")
		}
	}
	if q := c.Sources.SQS; len(q.QueueURLs) > 0 {
		for _, u := range q.QueueURLs {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || strings.Trim(pu.Path, "/") == "" {
				bad("sources.sqs.queue_urls", "%q is not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)", u)
			}
		}
		if q.MaxConcurrentMessages < 1 || q.MaxConcurrentMessages > 10_000 {
			bad("sources.sqs.max_concurrent_messages", "must be 1 to 10000, got %d", q.MaxConcurrentMessages)
		}
		if q.VisibilityTimeout < time.Second || q.VisibilityTimeout > 12*time.Hour {
			bad("sources.sqs.visibility_timeout", "must be 1s to 12h (the SQS limits), got %s", q.VisibilityTimeout)
		}
		if q.WaitTime < 0 || q.WaitTime > 20*time.Second {
			bad("sources.sqs.wait_time", "must be 0 to 20s (the SQS long-polling limit), got %s", q.WaitTime)
		}
	}
	r := c.Replay
	switch r.SelectBy {
	case "auto", "key", "modified", "none":
	default:
		bad("replay.select_by", "must be auto, key, modified or none, not %q", r.SelectBy)
	}
	if r.KeySlack < 0 {
		bad("replay.key_slack", "must be ≥ 0")
	}
	if r.Concurrency < 1 || r.Concurrency > 1024 {
		bad("replay.concurrency", "must be 1 to 1024, got %d", r.Concurrency)
	}
	if r.Rate < 0 {
		bad("replay.rate", "must be ≥ 0 events per second (0: unlimited)")
	}
	switch r.OldLogs {
	case "skip", "retimestamp":
	default:
		bad("replay.old_logs", "must be skip or retimestamp, not %q", r.OldLogs)
	}
	if r.MaxAge <= 0 || r.MaxAge > 18*time.Hour {
		bad("replay.max_age", "must be positive and at most 18h (Datadog drops older logs), got %s", r.MaxAge)
	}
	if r.MaxInFlightEvents < 1 {
		bad("replay.max_inflight_events", "must be positive, got %d", r.MaxInFlightEvents)
	}
	if r.EventsPerBatch < 1 || r.EventsPerBatch > 100_000 {
		bad("replay.events_per_batch", "must be 1 to 100000, got %d", r.EventsPerBatch)
	}
	if r.Bucket != "" && r.DLQ != "" {
		bad("replay.dlq", "replays a dead-letter archive instead of replay.bucket: set one of them")
	}
	if strings.HasPrefix(r.Bucket, "s3://") || strings.Contains(r.Bucket, "/") {
		bad("replay.bucket", "must be a bucket name (put the rest in replay.prefix), got %q", r.Bucket)
	}
	if _, _, err := r.TimeRange(time.Now()); err != nil {
		errs = append(errs, err)
	}
	if c.Decode.MaxRecordBytes <= 0 || c.Decode.MaxDecompressedBytes <= 0 || c.Decode.MaxEventsPerBatch <= 0 {
		bad("decode", "max_record_bytes, max_decompressed_bytes and max_events_per_batch must be positive")
	}
	if d := c.Decode; d.MaxRequestDecompressedBytes < int64(d.MaxDecompressedBytes) {
		bad("decode.max_request_decompressed_bytes", "must be at least decode.max_decompressed_bytes (%d), got %d", d.MaxDecompressedBytes, d.MaxRequestDecompressedBytes)
	}
	if c.Datadog.APIKey == "" {
		bad("datadog.api_key", "a Datadog API key is required (set DD_API_KEY)")
	}
	if c.Datadog.Site == "" && (c.Datadog.LogsURL == "" || c.Datadog.APIURL == "") {
		bad("datadog.site", "must be set (DD_SITE), or set datadog.logs_url and datadog.api_url")
	}
	for key, u := range map[string]string{"datadog.logs_url": c.LogsURL(), "datadog.api_url": c.APIURL()} {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad(key, "must be an http(s) URL, got %q", u)
		}
	}
	l := c.Datadog.Logs
	switch l.Compression {
	case "gzip", "zstd", "none":
	default:
		bad("datadog.logs.compression", "must be gzip, zstd or none, not %q", l.Compression)
	}
	if l.MaxBatchLogs < 1 || l.MaxBatchLogs > 1000 {
		bad("datadog.logs.max_batch_logs", "must be 1 to 1000 (the intake's limit), got %d", l.MaxBatchLogs)
	}
	if l.MaxBatchBytes < 1024 || l.MaxBatchBytes > 5_000_000 {
		bad("datadog.logs.max_batch_bytes", "must be 1 KB to 5 MB (the intake's limit), got %d", l.MaxBatchBytes)
	}
	if l.MaxLogBytes < 1024 || l.MaxLogBytes > 1_000_000 || l.MaxLogBytes > l.MaxBatchBytes {
		bad("datadog.logs.max_log_bytes", "must be 1 KB to 1 MB and at most max_batch_bytes, got %d", l.MaxLogBytes)
	}
	if l.Concurrency < 1 {
		bad("datadog.logs.concurrency", "must be at least 1")
	}
	c.validateMetrics(bad)
	if e := c.Enrich; e.AWSTags {
		if e.RoleTemplate != "" && !strings.Contains(e.RoleTemplate, "{account}") && len(e.RoleOverrides) == 0 {
			bad("enrich.role_template", "must contain {account}, e.g. arn:aws:iam::{account}:role/gwpipe-reader, got %q", e.RoleTemplate)
		}
		if e.RatePerSecond <= 0 || e.RatePerSecond > 10 || e.Burst < 1 || e.Burst > 40 {
			bad("enrich.rate_per_second", "must be in (0, 10] with enrich.burst 1..40: API Gateway's control plane allows 10/s, burst 40, per account")
		}
		if e.MaxWait < 0 || e.MaxWait > 10*time.Second {
			bad("enrich.max_wait", "must be 0 to 10s, got %s", e.MaxWait)
		}
	}
	if c.DLQ.Dir == "" {
		bad("dlq.dir", "must be set: dead letters need somewhere to go")
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			bad("admin.listen", "must be host:port: %v", err)
		}
	}
	if c.Admin.HealthListen != "" {
		if _, port, err := net.SplitHostPort(c.Admin.HealthListen); err != nil {
			bad("admin.health_listen", "must be host:port: %v", err)
		} else if c.Admin.HealthListen == c.Admin.Listen && port != "0" {
			bad("admin.health_listen", "must differ from admin.listen (%s): it is a second listener serving /healthz and /readyz alone", c.Admin.Listen)
		}
	}
	if c.Admin.Pprof && c.Admin.Listen == "" {
		bad("admin.pprof", "needs admin.listen: profiles are served there")
	}
	return errors.Join(errs...)
}
