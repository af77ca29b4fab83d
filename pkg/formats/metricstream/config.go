package metricstream

import (
	"fmt"
	"strings"
)

// IntegrationNamespace is the prefix the Datadog AWS integration writes
// CloudWatch metrics under: aws.apigateway.count, aws.lambda.duration...
const IntegrationNamespace = "aws."

// Config says how CloudWatch metrics are named in Datadog. Start from
// DefaultConfig: the zero value turns PassOther and Percentiles off.
type Config struct {
	// Namespace replaces the integration's "aws." prefix. Keep the default
	// to write exactly the integration's names (aws.apigateway.latency).
	// When Datadog's own CloudWatch crawler stays on for the same accounts,
	// set a namespace of gwpipe's (e.g. "cloudwatch." gives
	// cloudwatch.apigateway.latency), or both would write the same series
	// and every point would be counted twice. A missing trailing '.' is
	// added.
	Namespace string
	// PassOther forwards the metrics of AWS namespaces other than
	// AWS/ApiGateway (and of custom namespaces) under the generic mapping
	// (aws.<service>.<metric>). When false they are dropped, and counted in
	// Stats.Dropped.
	PassOther bool
	// DropNamespaces are CloudWatch namespaces ("AWS/EC2", "MyApp") whose
	// metrics are dropped (counted in Stats.Dropped) even with PassOther.
	// AWS/ApiGateway may be listed too.
	DropNamespaces []string
	// Percentiles emits the percentile statistics a stream carries
	// (latency.p99...). Each is one more series per metric and dimension set.
	Percentiles bool
	// MaxSeries bounds the cache of resolved series (names and tags per
	// account, region, metric and dimension set). When it is full the cache
	// is emptied and rebuilt from the traffic. Default 100,000.
	MaxSeries int
	// MaxPendingCache bounds the cache hit or miss counts kept waiting for
	// their other half (see the package documentation on the cache view).
	// Default 10,000.
	MaxPendingCache int
}

// DefaultConfig is the integration's naming: "aws." namespace, other
// namespaces passed through, percentiles emitted when streamed.
func DefaultConfig() Config {
	return Config{Namespace: IntegrationNamespace, PassOther: true, Percentiles: true}
}

const (
	defaultMaxSeries  = 100_000
	defaultMaxPending = 10_000
)

// Validate reports a configuration that cannot be used.
func (c *Config) Validate() error {
	ns := c.Namespace
	if ns == "" {
		return nil
	}
	ns = strings.TrimSuffix(ns, ".")
	if ns == "" {
		return fmt.Errorf("metricstream: namespace %q is empty", c.Namespace)
	}
	for i := 0; i < len(ns); i++ {
		ch := ns[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.'
		if !ok {
			return fmt.Errorf("metricstream: namespace %q: Datadog metric names allow only lower-case letters, digits, '_' and '.'", c.Namespace)
		}
	}
	if ns[0] < 'a' || ns[0] > 'z' {
		return fmt.Errorf("metricstream: namespace %q must start with a letter", c.Namespace)
	}
	if strings.Contains(ns, "..") {
		return fmt.Errorf("metricstream: namespace %q has an empty segment", c.Namespace)
	}
	if c.MaxSeries < 0 || c.MaxPendingCache < 0 {
		return fmt.Errorf("metricstream: MaxSeries and MaxPendingCache must not be negative")
	}
	return nil
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
