package config

import (
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
)

// LogsClient is deliver-logs' client configuration: datadog.logs with
// what the rest of the datadog section (and enrich.tags) gives it. The
// assembler adds what is not configuration (logger, result callback).
func (c Config) LogsClient() ddlogs.Config {
	lc := c.Datadog.Logs
	lc.URL, lc.APIKey = c.LogsURL(), c.Datadog.APIKey
	lc.Defaults = ddlogs.Defaults{Source: "apigateway", Service: c.Datadog.Service, Tags: ddlogs.JoinTags(c.Enrich.Tags...)}
	return lc
}

// MetricsClient is deliver-metrics' client configuration: metrics.delivery
// with the datadog section's API URL and key.
func (c Config) MetricsClient() ddmetrics.Config {
	mc := c.Metrics.Delivery
	mc.APIURL, mc.APIKey = c.APIURL(), c.Datadog.APIKey
	return mc
}
