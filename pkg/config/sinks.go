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
	return ddlogs.Config{
		URL: c.LogsURL(), APIKey: c.Datadog.APIKey,
		MaxBatchLogs: l.MaxBatchLogs, MaxBatchBytes: l.MaxBatchBytes, MaxLogBytes: l.MaxLogBytes,
		Linger: l.Linger, Compression: l.Compression, CompressionLevel: l.CompressionLevel,
		Concurrency: l.Concurrency, RequestTimeout: l.RequestTimeout,
		Backoff:  ddlogs.Backoff{InitialInterval: l.RetryInitial, MaxInterval: l.RetryMax},
		Defaults: ddlogs.Defaults{Source: "apigateway", Service: c.Datadog.Service, Tags: ddlogs.JoinTags(c.Enrich.Tags...)},
	}
}

// MetricsClient is deliver-metrics' client configuration from the datadog
// and metrics.delivery sections.
func (c Config) MetricsClient() ddmetrics.Config {
	dl := c.Metrics.Delivery
	return ddmetrics.Config{
		Mode: dl.Mode, APIURL: c.APIURL(), APIKey: c.Datadog.APIKey, Compression: dl.Compression,
		Concurrency: dl.Concurrency, RequestTimeout: dl.RequestTimeout, DogStatsDAddr: dl.DogStatsDAddr,
		Backoff: ddmetrics.Backoff{InitialInterval: dl.RetryInitial, MaxInterval: dl.RetryMax},
	}
}
