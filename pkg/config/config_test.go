package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

func valid() []string {
	return []string{"DD_API_KEY=abc", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=k1"}
}

func TestDefaultsNeedOnlyKeys(t *testing.T) {
	c := loadValid(t, "", valid())
	assert.Equal(t, "https://http-intake.logs.datadoghq.com/api/v2/logs", c.LogsURL())
	assert.Equal(t, "https://api.datadoghq.com", c.APIURL())
	assert.Equal(t, []string{"k1"}, c.Sources.Firehose.AccessKeys)
}

func TestEnvironmentOverridesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gwpipe.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
sources:
  firehose:
    listen: 127.0.0.1:9000
    access_keys: [file-key]
datadog:
  site: datadoghq.eu
  logs:
    linger: 10ms
`), 0o600))
	c := loadValid(t, path, []string{
		"DD_API_KEY=abc",
		"GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=a, b",
		"GWPIPE_DATADOG_LOGS_CONCURRENCY=7",
		"GWPIPE_PIPELINE_RETRY_MAX=2s",
		"DD_TAGS=env:prod team:payments",
	})
	assert.Equal(t, "127.0.0.1:9000", c.Sources.Firehose.Listen)
	assert.Equal(t, []string{"a", "b"}, c.Sources.Firehose.AccessKeys)
	assert.Equal(t, 7, c.Datadog.Logs.Concurrency)
	assert.Equal(t, 10*time.Millisecond, c.Datadog.Logs.Linger)
	assert.Equal(t, 2*time.Second, c.Pipeline.Runtime.MaxInterval)
	assert.Equal(t, "https://http-intake.logs.datadoghq.eu/api/v2/logs", c.LogsURL())
	assert.Equal(t, []string{"env:prod", "team:payments"}, c.Enrich.Tags)
}

func TestDDSiteAndURLOverride(t *testing.T) {
	c, err := Load("", append(valid(), "DD_SITE=us5.datadoghq.com", "GWPIPE_DATADOG_LOGS_URL=http://127.0.0.1:1/api/v2/logs"))
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:1/api/v2/logs", c.LogsURL())
	assert.Equal(t, "https://api.us5.datadoghq.com", c.APIURL())
}

func TestUnknownYAMLKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("datadog:\n  sitee: x\n"), 0o600))
	_, err := Load(path, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sitee")
}

func TestBadEnvironmentValueNamesTheKey(t *testing.T) {
	_, err := Load("", []string{"GWPIPE_DATADOG_LOGS_CONCURRENCY=many"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "datadog.logs.concurrency")
}

func TestValidateReportsEveryProblemWithItsKey(t *testing.T) {
	c := DefaultConfig()
	c.Datadog.Logs.MaxBatchLogs = 5000
	c.Transport.Kind = "kafka"
	c.Sources.Firehose.AckTimeout = 5 * time.Minute
	err := c.Validate()
	require.Error(t, err)
	for _, key := range []string{"datadog.api_key", "sources.firehose.access_keys", "datadog.logs.max_batch_logs", "transport.kind", "sources.firehose.ack_timeout"} {
		assert.Contains(t, err.Error(), key)
	}
}

func TestUnauthenticatedMustBeExplicit(t *testing.T) {
	loadValid(t, "", []string{"DD_API_KEY=x", "GWPIPE_SOURCES_FIREHOSE_ALLOW_UNAUTHENTICATED=true"})
}

func TestKeysCoverEveryLeaf(t *testing.T) {
	keys := Keys()
	var names []string
	for _, k := range keys {
		names = append(names, k[0])
		assert.Equal(t, "GWPIPE_"+strings.ToUpper(strings.ReplaceAll(k[0], ".", "_")), k[1])
	}
	assert.Contains(t, names, "sources.firehose.access_keys")
	assert.Contains(t, names, "datadog.logs_url")
	assert.Contains(t, names, "admin.listen")
	// The clients' sections: their sender's keys (inlined twice, through
	// ddhttp.Config and backoff.Policy) are keys; their runtime fields
	// (yaml:"-": the URL, the API key, the logger, the clock) are not.
	for _, k := range []string{"datadog.logs.concurrency", "datadog.logs.retry_initial", "datadog.logs.max_log_bytes", "metrics.delivery.retry_max", "metrics.delivery.dogstatsd_addr"} {
		assert.Contains(t, names, k)
	}
	for _, k := range []string{"datadog.logs.url", "datadog.logs.api_key", "datadog.logs.max_pending", "datadog.logs.multiplier", "metrics.delivery.now", "metrics.delivery.max_age"} {
		assert.NotContains(t, names, k)
	}
}

func TestNATSCompressionIsChecked(t *testing.T) {
	env := []string{"DD_API_KEY=x", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=k", "GWPIPE_TRANSPORT_KIND=nats", "GWPIPE_TRANSPORT_NATS_URL=nats://127.0.0.1:4222"}
	c := loadValid(t, "", env)
	assert.Equal(t, stage.CompressS2, c.Transport.NATS.Compression, "compressed by default")

	loadValid(t, "", append(env, "GWPIPE_TRANSPORT_NATS_COMPRESSION=none"))

	_, err := Load("", append(env, "GWPIPE_TRANSPORT_NATS_COMPRESSION=lz4"))
	require.Error(t, err, "the compression's type knows its names")
	assert.Contains(t, err.Error(), "transport.nats.compression")
}

func TestMemoryKeysAreChecked(t *testing.T) {
	cases := []struct {
		env []string
		key string
	}{
		{[]string{"GWPIPE_PIPELINE_MAX_HELD_BYTES=96"}, "pipeline.max_held_bytes"},
		{[]string{"GWPIPE_PIPELINE_INGEST_HIGH_WATER_BYTES=0"}, "pipeline.ingest_high_water_bytes"},
		{[]string{"GWPIPE_PIPELINE_MAX_HELD_BYTES=33554432", "GWPIPE_PIPELINE_INGEST_HIGH_WATER_BYTES=33554432"}, "pipeline.ingest_high_water_bytes"},
		{[]string{"GWPIPE_SOURCES_FIREHOSE_BODY_READ_TIMEOUT=0s"}, "sources.firehose.body_read_timeout"},
		{[]string{"GWPIPE_SOURCES_FIREHOSE_MIN_BODY_RATE=0"}, "sources.firehose.min_body_rate"},
		{[]string{"GWPIPE_DECODE_MAX_REQUEST_DECOMPRESSED_BYTES=1048576"}, "decode.max_request_decompressed_bytes"},
	}
	for _, c := range cases {
		cfg, err := Load("", append(valid(), c.env...))
		require.NoError(t, err)
		err = cfg.Validate()
		require.Error(t, err, "%v", c.env)
		assert.Contains(t, err.Error(), c.key+":")
	}
	cfg, err := Load("", valid())
	require.NoError(t, err)
	assert.Equal(t, 2*cfg.Pipeline.MaxHeldBytes, cfg.Pipeline.SoftMemoryLimit())
}

// A zero that a user writes is kept: allowed_lateness 0 closes each window
// at its end, where it used to become the 2 s default.
func TestExplicitZeroLatenessIsKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gwpipe.yaml")
	require.NoError(t, os.WriteFile(path, []byte("metrics:\n  allowed_lateness: 0s\n"), 0o600))
	c, err := Load(path, nil)
	require.NoError(t, err)
	assert.Zero(t, c.Metrics.AllowedLateness)
	assert.NotContains(t, fmt.Sprint(c.Validate()), "allowed_lateness")

	c, err = Load("", nil)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, c.Metrics.AllowedLateness, "unset, the default holds")
}

// loadValid loads the configuration from path and env, and requires it to
// load and to validate.
func loadValid(t *testing.T, path string, env []string) Config {
	t.Helper()
	c, err := Load(path, env)
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	return c
}
