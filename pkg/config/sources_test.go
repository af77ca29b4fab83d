package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
)

func TestSQSAndReplayDefaultsAreValid(t *testing.T) {
	c := loadValid(t, "", valid())
	assert.Empty(t, c.Sources.SQS.QueueURLs, "the SQS source is off until a queue is named")
	assert.Equal(t, 20, c.Sources.SQS.MaxConcurrentMessages)
	assert.Equal(t, 60*time.Second, c.Sources.SQS.VisibilityTimeout)
	assert.Equal(t, 20*time.Second, c.Sources.SQS.WaitTime)
	assert.Equal(t, "skip", c.Replay.OldLogs)
	assert.Equal(t, "auto", c.Replay.SelectBy)
	assert.Equal(t, 4, c.Replay.Concurrency)
	assert.Less(t, c.Replay.MaxAge, 18*time.Hour, "a margin below Datadog's limit")
}

func TestSQSAndReplayFromFileAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gwpipe.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
sources:
  sqs:
    queue_urls: [https://sqs.eu-west-1.amazonaws.com/123456789012/a]
    visibility_timeout: 5m
replay:
  bucket: archive
  prefix: firehose/
  from: -6h
  old_logs: retimestamp
`), 0o600))
	c := loadValid(t, path, append(valid(),
		"GWPIPE_SOURCES_SQS_QUEUE_URLS=https://sqs.eu-west-1.amazonaws.com/123456789012/a,https://sqs.eu-west-1.amazonaws.com/123456789012/b",
		"GWPIPE_SOURCES_SQS_MAX_CONCURRENT_MESSAGES=50",
		"GWPIPE_SOURCES_SQS_REGION=eu-west-1",
		"GWPIPE_REPLAY_RATE=5000",
		"GWPIPE_REPLAY_CHECKPOINT=/var/lib/gwpipe/replay.ckpt",
	))
	assert.Len(t, c.Sources.SQS.QueueURLs, 2)
	assert.Equal(t, 50, c.Sources.SQS.MaxConcurrentMessages)
	assert.Equal(t, 5*time.Minute, c.Sources.SQS.VisibilityTimeout)
	assert.Equal(t, "eu-west-1", c.Sources.SQS.DefaultRegion)
	assert.Equal(t, "archive", c.Replay.Bucket)
	assert.Equal(t, "-6h", c.Replay.From)
	assert.Equal(t, "retimestamp", c.Replay.OldLogs)
	assert.Equal(t, 5000, c.Replay.Rate)
	assert.Equal(t, "/var/lib/gwpipe/replay.ckpt", c.Replay.Checkpoint)

	keys := map[string]bool{}
	for _, k := range Keys() {
		keys[k[0]] = true
	}
	for _, k := range []string{"sources.sqs.queue_urls", "sources.sqs.max_concurrent_messages", "sources.sqs.visibility_timeout", "sources.sqs.wait_time", "sources.sqs.region",
		"replay.bucket", "replay.prefix", "replay.from", "replay.to", "replay.select_by", "replay.key_slack", "replay.concurrency", "replay.rate",
		"replay.checkpoint", "replay.old_logs", "replay.max_age", "replay.dlq", "replay.region", "replay.events_per_batch", "replay.max_inflight_events"} {
		assert.True(t, keys[k], "key %s is listed", k)
	}
}

func TestSQSAndReplayValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		key    string
	}{
		{"queue URL", func(c *Config) { c.Sources.SQS.QueueURLs = []string{"my-queue"} }, "sources.sqs.queue_urls"},
		{"queue URL without path", func(c *Config) { c.Sources.SQS.QueueURLs = []string{"https://sqs.us-east-1.amazonaws.com/"} }, "sources.sqs.queue_urls"},
		{"concurrency", func(c *Config) {
			c.Sources.SQS.QueueURLs = []string{"https://sqs.us-east-1.amazonaws.com/1/q"}
			c.Sources.SQS.MaxConcurrentMessages = 0
		}, "sources.sqs.max_concurrent_messages"},
		{"visibility beyond 12h", func(c *Config) {
			c.Sources.SQS.QueueURLs = []string{"https://sqs.us-east-1.amazonaws.com/1/q"}
			c.Sources.SQS.VisibilityTimeout = 13 * time.Hour
		}, "sources.sqs.visibility_timeout"},
		{"long polling beyond 20s", func(c *Config) {
			c.Sources.SQS.QueueURLs = []string{"https://sqs.us-east-1.amazonaws.com/1/q"}
			c.Sources.SQS.WaitTime = 30 * time.Second
		}, "sources.sqs.wait_time"},
		{"selection", func(c *Config) { c.Replay.SelectBy = "size" }, "replay.select_by"},
		{"old logs", func(c *Config) { c.Replay.OldLogs = "drop" }, "replay.old_logs"},
		{"max age beyond Datadog's", func(c *Config) { c.Replay.MaxAge = 24 * time.Hour }, "replay.max_age"},
		{"concurrency", func(c *Config) { c.Replay.Concurrency = 0 }, "replay.concurrency"},
		{"rate", func(c *Config) { c.Replay.Rate = -1 }, "replay.rate"},
		{"batch", func(c *Config) { c.Replay.EventsPerBatch = 0 }, "replay.events_per_batch"},
		{"window", func(c *Config) { c.Replay.MaxInFlightEvents = 0 }, "replay.max_inflight_events"},
		{"bucket as URL", func(c *Config) { c.Replay.Bucket = "s3://archive/prefix" }, "replay.bucket"},
		{"bucket and dlq", func(c *Config) { c.Replay.Bucket, c.Replay.DLQ = "b", "data/dlq" }, "replay.dlq"},
		{"from", func(c *Config) { c.Replay.From = "last tuesday" }, "replay.from"},
		{"reversed range", func(c *Config) { c.Replay.From, c.Replay.To = "-1h", "-2h" }, "must be before replay.to"},
		{"s3 checkpoint without key", func(c *Config) { c.Replay.Checkpoint = "s3://bucket/" }, "replay.checkpoint: an S3 checkpoint is s3://bucket/key"},
		{"replay lease", func(c *Config) { c.Replay.Lease.TTL = time.Millisecond }, "replay.lease.ttl: must be"},
		{"dlq url", func(c *Config) { c.DLQ.URL = "https://bucket/dlq" }, "dlq.url: "},
		{"dlq linger", func(c *Config) { c.DLQ.Linger = time.Hour }, "dlq.linger: must be"},
		{"no dlq", func(c *Config) { c.DLQ.Dir = "" }, "dlq.dir: must be set"},
		{"fleet dedup ttl", func(c *Config) {
			c.Transport.Kind, c.Transport.NATS.URL = "nats", "nats://127.0.0.1:4222"
			c.Transport.FleetDedup.TTL = time.Second
		}, "transport.fleet_dedup.ttl: must be"},
		{"poller state url scheme", func(c *Config) {
			c.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
			c.Metrics.Poller.StateURL = "gs://bucket/x"
		}, "metrics.poller.state_url: must be a local file"},
		{"poller kv without nats", func(c *Config) {
			c.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
			c.Metrics.Poller.StateURL = "nats-kv://gwpipe-cwpoller"
		}, "metrics.poller.state_url: nats-kv://gwpipe-cwpoller needs transport.kind nats"},
		{"poller both state keys", func(c *Config) {
			c.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
			c.Metrics.Poller.StateURL, c.Metrics.Poller.StateFile = "s3://b/p/", "old.json"
		}, "metrics.poller.state_file: is the former name"},
		{"poller lease", func(c *Config) {
			c.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
			c.Metrics.Poller.StateURL, c.Metrics.Poller.Lease.TTL = "s3://b/cwpoller/", 0
		}, "metrics.poller.lease.ttl: must be"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load("", valid())
			require.NoError(t, err)
			c.mutate(&cfg)
			err = cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.key)
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2026-11-28T06:30:00Z", want: time.Date(2026, 11, 28, 6, 30, 0, 0, time.UTC)},
		{in: "2026-11-28T06:30:00.5+01:00", want: time.Date(2026, 11, 28, 5, 30, 0, 5e8, time.UTC)},
		{in: "2026-11-28", want: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)},
		{in: "now", want: now},
		{in: "-2h", want: now.Add(-2 * time.Hour)},
		{in: "-1h30m", want: now.Add(-90 * time.Minute)},
		{in: "+10m", want: now.Add(10 * time.Minute)},
		{in: "-3d", want: now.Add(-72 * time.Hour)},
		{in: "-0.5d", want: now.Add(-12 * time.Hour)},
		{in: "", bad: true},
		{in: "yesterday", bad: true},
		{in: "-3w", bad: true},
		{in: "NaNd", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseTime(c.in, now)
			if c.bad {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, c.want.Equal(got), "got %s, want %s", got, c.want)
		})
	}
}

func TestReplayTimeRange(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	from, to, err := Replay{From: "-6h"}.TimeRange(now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-6*time.Hour), from)
	assert.Equal(t, now, to, "to defaults to now")
	from, to, err = Replay{}.TimeRange(now)
	require.NoError(t, err)
	assert.True(t, from.IsZero(), "no lower bound")
	assert.Equal(t, now, to)
	_, _, err = Replay{From: "now", To: "-1h"}.TimeRange(now)
	assert.ErrorContains(t, err, "must be before")
}

// The poller's state moved from state_file to state_url: the old key is
// still obeyed, with a warning.
func TestPollerStateFileStillAccepted(t *testing.T) {
	cfg := loadValid(t, "", append(valid(), "GWPIPE_METRICS_POLLER_TARGETS=123456789012:us-east-1", "GWPIPE_METRICS_POLLER_STATE_FILE=/var/lib/gwpipe/poller.json"))
	url, warn := cfg.Metrics.Poller.StateLocation()
	assert.Equal(t, "/var/lib/gwpipe/poller.json", url)
	assert.Contains(t, warn, "metrics.poller.state_file is deprecated")
	assert.Equal(t, []string{warn}, cfg.Warnings())

	cfg = loadValid(t, "", append(valid(), "GWPIPE_METRICS_POLLER_STATE_URL=s3://gwpipe-state/cwpoller/"))
	url, warn = cfg.Metrics.Poller.StateLocation()
	assert.Equal(t, "s3://gwpipe-state/cwpoller/", url)
	assert.Empty(t, warn)
	assert.Empty(t, cfg.Warnings())
}

// A poller in a fleet with its state on a worker's disk polls from every
// worker: the configuration says so at start-up.
func TestPollerLocalStateInAFleetWarns(t *testing.T) {
	cfg := loadValid(t, "", append(valid(), "GWPIPE_METRICS_POLLER_TARGETS=123456789012:us-east-1",
		"GWPIPE_TRANSPORT_KIND=nats", "GWPIPE_TRANSPORT_NATS_URL=nats://127.0.0.1:4222"))
	require.Len(t, cfg.Warnings(), 1)
	assert.Contains(t, cfg.Warnings()[0], "every worker of the fleet that runs ingest polls every target")
	cfg.Metrics.Poller.StateURL = "nats-kv://gwpipe-cwpoller"
	require.NoError(t, cfg.Validate())
	assert.Empty(t, cfg.Warnings())
}
