package metricstream

import (
	"errors"
	"fmt"
	"strings"
)

// IntegrationNamespace is the prefix the Datadog AWS integration writes
// CloudWatch metrics under: aws.apigateway.count, aws.lambda.duration...
const IntegrationNamespace = "aws."

// Config says how CloudWatch metrics are named in Datadog; it is part of
// the metrics.streams section of gwpipe's configuration. Start from
// DefaultConfig: the zero value turns PassOther and Percentiles off.
type Config struct {
	// Namespace replaces the integration's "aws." prefix. Keep the default
	// to write exactly the integration's names (aws.apigateway.latency).
	// When Datadog's own CloudWatch crawler stays on for the same accounts,
	// set a namespace of gwpipe's (e.g. "cloudwatch." gives
	// cloudwatch.apigateway.latency), or both would write the same series
	// and every point would be counted twice. A missing trailing '.' is
	// added.
	Namespace string `yaml:"namespace"`
	// PassOther forwards the metrics of AWS namespaces other than
	// AWS/ApiGateway (and of custom namespaces) under the generic mapping
	// (aws.<service>.<metric>). When false they are dropped, and counted in
	// Stats.Dropped.
	PassOther bool `yaml:"pass_other"`
	// DropNamespaces are CloudWatch namespaces ("AWS/EC2", "MyApp") whose
	// metrics are dropped (counted in Stats.Dropped) even with PassOther.
	// AWS/ApiGateway may be listed too.
	DropNamespaces []string `yaml:"drop_namespaces"`
	// Percentiles emits the percentile statistics a stream carries
	// (latency.p99...). Each is one more series per metric and dimension set.
	Percentiles bool `yaml:"percentiles"`
	// MaxSeries bounds the cache of resolved series (names and tags per
	// account, region, metric and dimension set). When it is full the cache
	// is emptied and rebuilt from the traffic. Default 100,000.
	MaxSeries int `yaml:"-"`
	// MaxPendingCache bounds the cache hit or miss counts kept waiting for
	// their other half (see the package documentation on the cache view).
	// Default 10,000.
	MaxPendingCache int `yaml:"-"`
}

// DefaultConfig is the integration's naming: "aws." namespace, other
// namespaces passed through, percentiles emitted when streamed.
func DefaultConfig() Config {
	return Config{Namespace: IntegrationNamespace, PassOther: true, Percentiles: true, MaxSeries: defaultMaxSeries, MaxPendingCache: defaultMaxPending}
}

const (
	defaultMaxSeries  = 100_000
	defaultMaxPending = 10_000
)

// Validate reports every problem of a configuration, each message
// starting with its key; zero fields are valid (they take the defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if ns := strings.TrimSuffix(c.Namespace, "."); c.Namespace != "" {
		switch {
		case ns == "":
			bad("namespace", "%q is empty", c.Namespace)
		case strings.Trim(ns, "abcdefghijklmnopqrstuvwxyz0123456789_.") != "":
			bad("namespace", "%q: Datadog metric names allow only lower-case letters, digits, '_' and '.'", c.Namespace)
		case ns[0] < 'a' || ns[0] > 'z':
			bad("namespace", "%q must start with a letter", c.Namespace)
		case strings.Contains(ns, ".."):
			bad("namespace", "%q has an empty segment", c.Namespace)
		}
	}
	for i, n := range c.DropNamespaces {
		if strings.TrimSpace(n) == "" {
			bad(fmt.Sprintf("drop_namespaces[%d]", i), "is empty")
		}
	}
	if c.MaxSeries < 0 || c.MaxPendingCache < 0 {
		bad("max_series", "MaxSeries and MaxPendingCache must not be negative")
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = IntegrationNamespace
	}
	if !strings.HasSuffix(c.Namespace, ".") {
		c.Namespace += "."
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = defaultMaxSeries
	}
	if c.MaxPendingCache == 0 {
		c.MaxPendingCache = defaultMaxPending
	}
	return c
}
