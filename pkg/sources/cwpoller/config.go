package cwpoller

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
)

// Target is one account in one region to poll.
type Target struct {
	Account string // 12 digits: the aws_account tag of its points
	Region  string
}

func (t Target) String() string { return t.Account + "/" + t.Region }

// GetMetricData's limits (CloudWatch API reference).
const (
	// MaxQueriesPerRequest is the most MetricDataQuery a call may hold.
	MaxQueriesPerRequest = 500
	// MaxDatapointsPerRequest is the most data points a call returns
	// before it paginates.
	MaxDatapointsPerRequest = 100_800
)

// Config configures a Poller. The zero value of each field is its default.
type Config struct {
	// Accounts are the account and region pairs to poll.
	Accounts []Target
	// Interval between polls, aligned to multiples of itself (default 60s).
	Interval time.Duration
	// Lag is how long after a period ends before it is fetched: CloudWatch
	// keeps accepting data points for a while, and a period fetched too
	// early would be fetched incomplete, once (default 2m).
	Lag time.Duration
	// Period of the statistics: 60s (API Gateway's resolution) or a
	// multiple of it (default 60s).
	Period time.Duration
	// Namespace polled (default AWS/ApiGateway).
	Namespace string
	// Stats are the extra statistics requested for latency-like metrics
	// (besides SampleCount, Sum, Minimum and Maximum); count metrics only
	// ask for Sum. nil means DefaultStats; set an empty slice for none.
	// Every statistic is one query, and GetMetricData is billed per query.
	Stats []string
	// MaxQueriesPerRequest bounds the queries of one GetMetricData call
	// (default and maximum 500); MaxDatapointsPerRequest the data points
	// it may return (default and maximum 100,800): the window's periods
	// times the queries.
	MaxQueriesPerRequest    int
	MaxDatapointsPerRequest int
	// Backfill is how far back a window may start: for a metric never
	// fetched, and after the poller was down (default 15m, at most 55m:
	// Datadog refuses points older than an hour).
	Backfill time.Duration
	// ListInterval is how often ListMetrics is asked again for new metrics
	// (default 15m). Only metrics active in the last three hours are
	// listed (RecentlyActive PT3H).
	ListInterval time.Duration
	// MaxMetrics bounds the metrics polled per target (default 5,000); the
	// rest are left out, with a warning.
	MaxMetrics int
	// RequestsPerSecond and Burst pace the calls to each target
	// (default 10 and 10; GetMetricData's quota is 50 per second per
	// account and region, shared with everything else that calls it).
	RequestsPerSecond float64
	Burst             int
	// MaxAttempts per call, for throttled and other retryable failures
	// (default 5), with exponential back-off and full jitter from
	// BackoffBase (default 500ms) to BackoffMax (default 20s).
	MaxAttempts             int
	BackoffBase, BackoffMax time.Duration
	// Concurrency is how many targets are polled at once (default 4).
	Concurrency int
	// CredentialsFor returns the credentials that read an account's
	// CloudWatch (the multi-account roles: see RoleCredentials), nil for the
	// aws.Config's own. It is called once per target.
	CredentialsFor func(account string) aws.CredentialsProvider
	// State remembers the last period fetched per metric (default: in
	// memory only; use a FileState so that a restart fetches no period
	// twice).
	State State
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Mapper names the points; share the metric-stream decoder's so that
	// streamed and polled points are named alike (default: a Mapper of
	// metricstream.DefaultConfig()).
	Mapper *metricstream.Mapper
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// DefaultStats are the percentiles requested for latency-like metrics.
var DefaultStats = []string{"p50", "p90", "p99"}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Minute)
	def(&c.Lag, 2*time.Minute)
	def(&c.Period, time.Minute)
	def(&c.Backfill, 15*time.Minute)
	def(&c.ListInterval, 15*time.Minute)
	def(&c.BackoffBase, 500*time.Millisecond)
	def(&c.BackoffMax, 20*time.Second)
	if c.Namespace == "" {
		c.Namespace = metricstream.APIGatewayNamespace
	}
	if c.Stats == nil {
		c.Stats = DefaultStats
	}
	if c.MaxQueriesPerRequest == 0 {
		c.MaxQueriesPerRequest = MaxQueriesPerRequest
	}
	if c.MaxDatapointsPerRequest == 0 {
		c.MaxDatapointsPerRequest = MaxDatapointsPerRequest
	}
	if c.MaxMetrics == 0 {
		c.MaxMetrics = 5000
	}
	if c.RequestsPerSecond == 0 {
		c.RequestsPerSecond = 10
	}
	if c.Burst == 0 {
		c.Burst = 10
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.State == nil {
		c.State = NewMemoryState()
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
func (c *Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(d.Accounts) == 0 {
		bad("no accounts to poll")
	}
	seen := map[Target]bool{}
	for _, t := range d.Accounts {
		if !validAccount(t.Account) {
			bad("account %q: not 12 digits", t.Account)
		}
		if t.Region == "" {
			bad("account %s: no region", t.Account)
		}
		if seen[t] {
			bad("target %s listed twice", t)
		}
		seen[t] = true
	}
	if d.Period < time.Minute || d.Period%time.Minute != 0 {
		bad("period %v: must be a multiple of 60s", d.Period)
	}
	if d.Interval < time.Second {
		bad("interval %v: too short", d.Interval)
	}
	if d.Lag < 0 {
		bad("lag %v: negative", d.Lag)
	}
	if d.Backfill < d.Period || d.Backfill > 55*time.Minute {
		bad("backfill %v: must be between the period and 55m", d.Backfill)
	}
	if d.MaxQueriesPerRequest < 1 || d.MaxQueriesPerRequest > MaxQueriesPerRequest {
		bad("max queries per request %d: must be 1 to %d", d.MaxQueriesPerRequest, MaxQueriesPerRequest)
	}
	if d.MaxDatapointsPerRequest < 1 || d.MaxDatapointsPerRequest > MaxDatapointsPerRequest {
		bad("max data points per request %d: must be 1 to %d", d.MaxDatapointsPerRequest, MaxDatapointsPerRequest)
	}
	// One call must hold at least one metric's queries over a whole window.
	if d.Period > 0 {
		perQuery := int(d.Backfill / d.Period)
		if need := (4 + len(d.Stats)) * perQuery; need > d.MaxDatapointsPerRequest || 4+len(d.Stats) > d.MaxQueriesPerRequest {
			bad("a metric's %d statistics over a %v backfill do not fit one call", 4+len(d.Stats), d.Backfill)
		}
	}
	if d.RequestsPerSecond < 0 || d.Burst < 1 || d.MaxAttempts < 1 || d.Concurrency < 1 || d.MaxMetrics < 1 {
		bad("rates, attempts, concurrency and limits must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("cwpoller: %w", errors.Join(errs...))
	}
	return nil
}

func validAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
