package config

import (
	"reflect"
	"slices"
	"strings"
)

// ReloadClass is what a running `gwpipe run` does with a key whose value
// changed when it is asked to reload (SIGHUP).
type ReloadClass uint8

const (
	// Unclassified: a key nobody decided about yet (TestEveryKeyHasAReloadClass
	// fails on it).
	Unclassified ReloadClass = iota
	// Reloads: the new value is applied to the running process; the
	// batches in flight finish with the old one.
	Reloads
	// NeedsRestart: the change is reported and the key keeps the value
	// the process started with.
	NeedsRestart
	// NotRun: the key is read only by another command (gwpipe replay),
	// when it starts; a running `gwpipe run` has no use for it.
	NotRun
)

func (c ReloadClass) String() string {
	switch c {
	case Reloads:
		return "reloads"
	case NeedsRestart:
		return "needs a restart"
	case NotRun:
		return "not used by run"
	}
	return "unclassified"
}

// reloadableKeys are applied by a reload. Each has a hook in the component
// that uses it (see pkg/pipeline/reload.go); add a key here only with its
// hook.
var reloadableKeys = []string{
	"log.level",
	"parse.formats", "parse.access_log_group_prefixes", "parse.other_source",
	"enrich.tags",
	"enrich.role_template", "enrich.role_overrides", "enrich.external_id",
	"enrich.mappings",
	"datadog.service",
	"metrics.tag_allowlist",
	"filters.redact", "filters.rules", "filters.include_at_match", "filters.exclude_at_match",
	"filters.drop", "filters.sample",
}

// restartKeys are read once, when the process starts: listeners,
// transport and topics, which stages exist and how they are built, the
// clients' connections and credentials, sizes of what is allocated.
var restartKeys = []string{
	"log.format",
	"transport.kind", "transport.nats.url", "transport.nats.ack_wait", "transport.nats.stream_max_bytes",
	"transport.nats.replicas", "transport.nats.compression",
	"transport.sqs.region", "transport.sqs.topic_prefix", "transport.sqs.visibility_timeout",
	"transport.sqs.max_receive_count", "transport.sqs.message_limit", "transport.sqs.claim_check_bucket",
	"transport.subscribers", "transport.dedup_window",
	"transport.fleet_dedup.enabled", "transport.fleet_dedup.ttl", "transport.fleet_dedup.claim_ttl",
	"pipeline.max_inflight_batches", "pipeline.max_retries", "pipeline.retry_initial", "pipeline.retry_max",
	"pipeline.max_held_bytes", "pipeline.ingest_high_water_bytes", "pipeline.drain_timeout",
	"pipeline.topics.raw", "pipeline.topics.decoded", "pipeline.topics.parsed", "pipeline.topics.enriched",
	"pipeline.topics.metrics", "pipeline.topics.dlq",
	"sources.firehose.enabled", "sources.firehose.listen", "sources.firehose.reuse_port",
	"sources.firehose.access_keys", "sources.firehose.allow_unauthenticated",
	"sources.firehose.max_body_bytes", "sources.firehose.max_decompressed_bytes", "sources.firehose.max_inflight_bytes",
	"sources.firehose.body_read_timeout", "sources.firehose.min_body_rate", "sources.firehose.ack_timeout",
	"sources.firehose.records_per_batch", "sources.firehose.dedup_ttl", "sources.firehose.default_region",
	"sources.firehose.tls.cert_file", "sources.firehose.tls.key_file",
	"sources.sqs.queue_urls", "sources.sqs.max_concurrent_messages", "sources.sqs.visibility_timeout",
	"sources.sqs.wait_time", "sources.sqs.region",
	"decode.max_record_bytes", "decode.max_decompressed_bytes", "decode.max_events_per_batch",
	"decode.max_request_decompressed_bytes",
	"parse.correlation.max_open", "parse.correlation.max_age", "parse.correlation.deliver_summaries",
	"enrich.aws_tags", "enrich.default_region", "enrich.ttl", "enrich.negative_ttl", "enrich.max_stages",
	"enrich.rate_per_second", "enrich.burst", "enrich.max_wait",
	"datadog.api_key", "datadog.site", "datadog.logs_url", "datadog.api_url",
	"datadog.logs.compression", "datadog.logs.compression_level", "datadog.logs.concurrency",
	"datadog.logs.max_batch_logs", "datadog.logs.max_batch_bytes", "datadog.logs.max_log_bytes",
	"datadog.logs.linger", "datadog.logs.request_timeout", "datadog.logs.retry_initial", "datadog.logs.retry_max",
	"metrics.enabled", "metrics.namespace", "metrics.window", "metrics.allowed_lateness",
	"metrics.max_resources_per_api", "metrics.host", "metrics.summaries", "metrics.error_metrics", "metrics.tick",
	"metrics.delivery.mode", "metrics.delivery.compression", "metrics.delivery.concurrency",
	"metrics.delivery.request_timeout", "metrics.delivery.retry_initial", "metrics.delivery.retry_max",
	"metrics.delivery.dogstatsd_addr",
	"metrics.telemetry.enabled", "metrics.telemetry.dogstatsd_addr", "metrics.telemetry.interval", "metrics.telemetry.tags",
	"metrics.streams.enabled", "metrics.streams.namespace", "metrics.streams.pass_other",
	"metrics.streams.drop_namespaces", "metrics.streams.percentiles",
	"metrics.poller.targets", "metrics.poller.interval", "metrics.poller.lag", "metrics.poller.state_file",
	"metrics.poller.state_url", "metrics.poller.lease.ttl",
	"dlq.dir", "dlq.url", "dlq.max_object_bytes", "dlq.linger",
	"admin.listen", "admin.health_listen", "admin.pprof", "admin.report_interval",
	"admin.tls.cert_file", "admin.tls.key_file",
}

// notRunSection is the section only `gwpipe replay` reads.
const notRunSection = "replay."

// ReloadClassOf is what a reload does with key.
func ReloadClassOf(key string) ReloadClass {
	switch {
	case slices.Contains(reloadableKeys, key):
		return Reloads
	case slices.Contains(restartKeys, key):
		return NeedsRestart
	case strings.HasPrefix(key, notRunSection):
		return NotRun
	}
	return Unclassified
}

// ReloadableKeys lists the keys a reload applies, in declaration order.
func ReloadableKeys() []string {
	var out []string
	for _, k := range schema() {
		if ReloadClassOf(k.name) == Reloads {
			out = append(out, k.name)
		}
	}
	return out
}

// Diff lists the keys whose values differ between a and b, in declaration
// order. Only names: the values may be secrets.
func Diff(a, b Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for _, k := range schema() {
		if !equalValues(va.FieldByIndex(k.index), vb.FieldByIndex(k.index)) {
			out = append(out, k.name)
		}
	}
	return out
}

// equalValues compares two values of a key; an empty list or map equals an
// absent one (a file that writes `tags: []` changes nothing).
func equalValues(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// WithReloaded returns running with the value of every reloadable key taken
// from next: what a process that started with running runs after reloading
// next. Every other key keeps running's value.
func (running Config) WithReloaded(next Config) Config {
	out := running
	vo, vn := reflect.ValueOf(&out).Elem(), reflect.ValueOf(next)
	for _, k := range schema() {
		if ReloadClassOf(k.name) == Reloads {
			vo.FieldByIndex(k.index).Set(vn.FieldByIndex(k.index))
		}
	}
	return out
}
