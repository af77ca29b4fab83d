package cwpoller

import (
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// Target is one account in one region to poll.
type Target struct {
	Account string // 12 digits: the aws_account tag of its points
	Region  string
}

func (t Target) String() string { return t.Account + "/" + t.Region }

// MarshalText writes the target as the configuration does: account:region.
func (t Target) MarshalText() ([]byte, error) { return []byte(t.Account + ":" + t.Region), nil }

// UnmarshalText reads account:region (e.g. 123456789012:us-east-1).
func (t *Target) UnmarshalText(b []byte) error {
	a, r, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || !awstags.ValidAccount(a) || r == "" {
		return fmt.Errorf("a target is account:region (e.g. 123456789012:us-east-1), got %q", b)
	}
	*t = Target{Account: a, Region: r}
	return nil
}

// GetMetricData's limits (CloudWatch API reference).
const (
	// MaxQueriesPerRequest is the most MetricDataQuery a call may hold.
	MaxQueriesPerRequest = 500
	// MaxDatapointsPerRequest is the most data points a call returns
	// before it paginates.
	MaxDatapointsPerRequest = 100_800
)

// Config configures a Poller; it is the metrics.poller section of gwpipe's
// configuration. The zero value of each field is its default.
type Config struct {
	// Accounts are the account and region pairs to poll.
	Accounts []Target `yaml:"targets"`
	// Interval between polls, aligned to multiples of itself (default 60s).
	Interval time.Duration `yaml:"interval"`
	// Lag is how long after a period ends before it is fetched: CloudWatch
	// keeps accepting data points for a while, and a period fetched too
	// early would be fetched incomplete, once (default 2m).
	Lag time.Duration `yaml:"lag"`
	// Period of the statistics: 60s (API Gateway's resolution) or a
	// multiple of it (default 60s).
	Period time.Duration `yaml:"-"`
	// Namespace polled (default AWS/ApiGateway).
	Namespace string `yaml:"-"`
	// Stats are the extra statistics requested for latency-like metrics
	// (besides SampleCount, Sum, Minimum and Maximum); count metrics only
	// ask for Sum. nil means DefaultStats; set an empty slice for none.
	// Every statistic is one query, and GetMetricData is billed per query.
	Stats []string `yaml:"-"`
	// MaxQueriesPerRequest bounds the queries of one GetMetricData call
	// (default and maximum 500); MaxDatapointsPerRequest the data points
	// it may return (default and maximum 100,800): the window's periods
	// times the queries.
	MaxQueriesPerRequest    int `yaml:"-"`
	MaxDatapointsPerRequest int `yaml:"-"`
	// Backfill is how far back a window may start: for a metric never
	// fetched, and after the poller was down (default 15m, at most 55m:
	// Datadog refuses points older than an hour).
	Backfill time.Duration `yaml:"-"`
	// ListInterval is how often ListMetrics is asked again for new metrics
	// (default 15m). Only metrics active in the last three hours are
	// listed (RecentlyActive PT3H).
	ListInterval time.Duration `yaml:"-"`
	// MaxMetrics bounds the metrics polled per target (default 5,000).
	// Over it, whole dimension sets (stages, APIs, methods) are polled, in
	// order of API, stage and dimensions, and the sets after the first
	// that does not fit are left out: counted (Stats.LeftOut,
	// cwpoller.metrics_left_out) and logged once per listing.
	MaxMetrics int `yaml:"-"`
	// RequestsPerSecond and Burst pace the calls to each target
	// (default 10 and 10; GetMetricData's quota is 50 per second per
	// account and region, shared with everything else that calls it).
	RequestsPerSecond float64 `yaml:"-"`
	Burst             int     `yaml:"-"`
	// MaxAttempts per call, for throttled and other retryable failures
	// (default 5), paced by Retry (default: exponential back-off with full
	// jitter from 500ms to 20s; unset when its InitialInterval is zero).
	MaxAttempts int            `yaml:"-"`
	Retry       backoff.Policy `yaml:"-"`
	// Concurrency is how many targets are polled at once (default 4).
	Concurrency int `yaml:"-"`
	// CredentialsFor returns the credentials that read an account's
	// CloudWatch (the multi-account roles: see RoleCredentials), nil for the
	// aws.Config's own. It is called once per target.
	CredentialsFor func(account string) aws.CredentialsProvider `yaml:"-"`
	// StateURL is where the periods fetched are remembered, so that a
	// restart fetches no period twice: a local file, which New opens as a
	// FileState when State is nil (one worker); or, for a fleet whose
	// workers may each run the poller, s3://bucket/prefix/ or
	// nats-kv://bucket, which the assembler opens (a StoreState, and each
	// target's lease in the same store: Leases).
	StateURL string `yaml:"state_url"`
	// StateFile is StateURL's former name, still accepted (State says so).
	StateFile string `yaml:"state_file"`
	// Lease is the targets' leases' settings (with a shared StateURL).
	Lease lease.Config `yaml:"lease"`
	// State remembers the last period fetched per metric (default: a
	// FileState of the local StateURL, else in memory only; a StoreState
	// is shared by the replicas of a fleet).
	State State `yaml:"-"`
	// Leases, when set, returns a target's lease (package lease): this
	// process polls a target only while it holds that lease, so that of
	// several replicas exactly one polls each account and region, and
	// another takes over within about Lease.TTL·1.5 when it dies. Use it
	// with a StoreState in the same store, which the new holder reads
	// before its first poll. Nil: this process polls every target.
	Leases func(t Target) *lease.Lease `yaml:"-"`
	// Now is the clock (default time.Now).
	Now func() time.Time `yaml:"-"`
	// Mapper names the points; share the metric-stream decoder's so that
	// streamed and polled points are named alike (default: a Mapper of
	// metricstream.DefaultConfig()).
	Mapper *metricstream.Mapper `yaml:"-"`
	// Logger (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
}

// DefaultStats are the percentiles requested for latency-like metrics.
var DefaultStats = []string{"p50", "p90", "p99"}

// DefaultConfig polls every minute, two minutes behind, GetMetricData's
// limits and pace as documented on Config's fields.
func DefaultConfig() Config {
	return Config{
		Interval: time.Minute, Lag: 2 * time.Minute, Period: time.Minute, Namespace: metricstream.APIGatewayNamespace,
		Stats: DefaultStats, MaxQueriesPerRequest: MaxQueriesPerRequest, MaxDatapointsPerRequest: MaxDatapointsPerRequest,
		Backfill: 15 * time.Minute, ListInterval: 15 * time.Minute, MaxMetrics: 5000, RequestsPerSecond: 10, Burst: 10,
		MaxAttempts: 5, Retry: backoff.ExponentialFullJitter(500*time.Millisecond, 20*time.Second), Concurrency: 4,
		StateURL: "data/cwpoller-state.json", Lease: lease.DefaultConfig(),
	}
}

// Shared reports whether a state URL is a store the fleet shares (S3, NATS
// key-value) rather than a local file.
func Shared(url string) bool {
	return strings.HasPrefix(url, "s3://") || strings.HasPrefix(url, "nats-kv://")
}

// StateLocation is where the state is: StateURL, or StateFile, its former
// name, with a warning to say so.
func (c Config) StateLocation() (url, warning string) {
	if c.StateFile == "" || c.StateFile == c.StateURL {
		return c.StateURL, ""
	}
	return c.StateFile, "metrics.poller.state_file is deprecated: rename it metrics.poller.state_url (which also takes s3://bucket/prefix/ and nats-kv://bucket, for a fleet)"
}

// withDefaults gives zero fields DefaultConfig's values (but StateURL:
// none is in memory only).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, d *time.Duration }{{&c.Interval, &d.Interval}, {&c.Lag, &d.Lag}, {&c.Period, &d.Period},
		{&c.Backfill, &d.Backfill}, {&c.ListInterval, &d.ListInterval}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	for _, f := range []struct{ v, d *int }{{&c.MaxQueriesPerRequest, &d.MaxQueriesPerRequest}, {&c.MaxDatapointsPerRequest, &d.MaxDatapointsPerRequest},
		{&c.MaxMetrics, &d.MaxMetrics}, {&c.Burst, &d.Burst}, {&c.MaxAttempts, &d.MaxAttempts}, {&c.Concurrency, &d.Concurrency}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if c.Retry.InitialInterval == 0 {
		c.Retry = d.Retry
	}
	if c.Namespace == "" {
		c.Namespace = d.Namespace
	}
	if c.Stats == nil {
		c.Stats = d.Stats
	}
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = d.RequestsPerSecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, fmt.Errorf(key+": "+format, args...)) }
	if len(d.Accounts) == 0 {
		bad("targets", "no accounts to poll")
	}
	seen := map[Target]bool{}
	for _, t := range d.Accounts {
		if !awstags.ValidAccount(t.Account) {
			bad("targets", "account %q: not 12 digits", t.Account)
		}
		if t.Region == "" {
			bad("targets", "account %s: no region", t.Account)
		}
		if seen[t] {
			bad("targets", "%s listed twice", t)
		}
		seen[t] = true
	}
	if d.Period < time.Minute || d.Period%time.Minute != 0 {
		bad("period", "%v: must be a multiple of 60s", d.Period)
	}
	if d.Interval < time.Second {
		bad("interval", "%v: must be at least 1s", d.Interval)
	}
	if d.Lag < 0 {
		bad("lag", "%v: must not be negative", d.Lag)
	}
	if d.Backfill < d.Period || d.Backfill > 55*time.Minute {
		bad("backfill", "%v: must be between the period and 55m", d.Backfill)
	}
	if d.MaxQueriesPerRequest < 1 || d.MaxQueriesPerRequest > MaxQueriesPerRequest {
		bad("max_queries_per_request", "%d: must be 1 to %d", d.MaxQueriesPerRequest, MaxQueriesPerRequest)
	}
	if d.MaxDatapointsPerRequest < 1 || d.MaxDatapointsPerRequest > MaxDatapointsPerRequest {
		bad("max_datapoints_per_request", "%d: must be 1 to %d", d.MaxDatapointsPerRequest, MaxDatapointsPerRequest)
	}
	// One call must hold at least one metric's queries over a whole window.
	if d.Period > 0 {
		perQuery := int(d.Backfill / d.Period)
		if need := (4 + len(d.Stats)) * perQuery; need > d.MaxDatapointsPerRequest || 4+len(d.Stats) > d.MaxQueriesPerRequest {
			bad("stats", "a metric's %d statistics over a %v backfill do not fit one call", 4+len(d.Stats), d.Backfill)
		}
	}
	if d.RequestsPerSecond < 0 || d.Burst < 1 || d.MaxAttempts < 1 || d.Concurrency < 1 || d.MaxMetrics < 1 {
		bad("requests_per_second", "rates, attempts, concurrency and limits must be positive")
	}
	if err := d.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry.%w", err))
	}
	def := DefaultConfig().StateURL
	if c.StateFile != "" && c.StateFile != c.StateURL && c.StateURL != def && c.StateURL != "" {
		bad("state_file", "is the former name of state_url, and both are set (%q, %q): keep state_url", c.StateFile, c.StateURL)
	}
	switch url, _ := c.StateLocation(); {
	case strings.HasPrefix(url, "s3://"):
		if u, err := neturl.Parse(url); err == nil && u.User != nil || err != nil && strings.Contains(url, "@") {
			bad("state_url", "an s3:// URL carries no credentials (key:secret@ before the bucket, not shown): gwpipe signs its S3 requests with the AWS credential chain (environment, profile, role); remove them from the URL")
		} else if err != nil || u.Host == "" || strings.Contains(u.Host, ":") || u.RawQuery != "" {
			bad("state_url", "%q is not an s3://bucket/prefix/ URL", url)
		}
	case strings.HasPrefix(url, "nats-kv://"):
		if b := strings.TrimPrefix(url, "nats-kv://"); !validBucket(b) {
			bad("state_url", "nats-kv://<bucket>: a bucket name of letters, digits, - and _, got %q", url)
		}
	case strings.Contains(url, "://"):
		bad("state_url", "must be a local file, s3://bucket/prefix/ or nats-kv://bucket, got %q", url)
	}
	if Shared(c.StateURL) || Shared(c.StateFile) {
		if err := c.Lease.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("lease.%w", err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// validBucket reports a valid JetStream key-value bucket name.
func validBucket(b string) bool {
	if b == "" {
		return false
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
