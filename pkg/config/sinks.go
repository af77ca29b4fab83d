package config

import (
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
)

// LogsClient is deliver-logs' client configuration from the datadog
// section. The assembler adds what is not configuration (logger, result
// callback); Validate checks it as the client will.
func (c Config) LogsClient() ddlogs.Config {
	l := c.Datadog.Logs
	lc := ddlogs.DefaultConfig()
	lc.URL, lc.APIKey = c.LogsURL(), c.Datadog.APIKey
	lc.MaxBatchLogs, lc.MaxBatchBytes, lc.MaxLogBytes = l.MaxBatchLogs, l.MaxBatchBytes, l.MaxLogBytes
	lc.Linger, lc.Compression, lc.CompressionLevel = l.Linger, l.Compression, l.CompressionLevel
	lc.Concurrency, lc.RequestTimeout = l.Concurrency, l.RequestTimeout
	lc.Backoff.InitialInterval, lc.Backoff.MaxInterval = l.RetryInitial, l.RetryMax
	lc.Defaults = ddlogs.Defaults{Source: "apigateway", Service: c.Datadog.Service, Tags: ddlogs.JoinTags(c.Enrich.Tags...)}
	return lc
}

// MetricsClient is deliver-metrics' client configuration from the datadog
// and metrics.delivery sections.
func (c Config) MetricsClient() ddmetrics.Config {
	dl := c.Metrics.Delivery
	mc := ddmetrics.DefaultConfig()
	mc.Mode, mc.APIURL, mc.APIKey, mc.Compression = dl.Mode, c.APIURL(), c.Datadog.APIKey, dl.Compression
	mc.Concurrency, mc.RequestTimeout, mc.DogStatsDAddr = dl.Concurrency, dl.RequestTimeout, dl.DogStatsDAddr
	mc.Backoff.InitialInterval, mc.Backoff.MaxInterval = dl.RetryInitial, dl.RetryMax
	return mc
}
