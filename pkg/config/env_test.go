package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// TestEnvironmentSetsEveryKindOfKey: one variable per kind of value, read
// as the file's values are.
func TestEnvironmentSetsEveryKindOfKey(t *testing.T) {
	cases := []struct {
		kind, env string
		got       func(Config) any
		want      any
	}{
		{"float", "GWPIPE_ENRICH_RATE_PER_SECOND=5.5", func(c Config) any { return c.Enrich.RatePerSecond }, 5.5},
		{"float written as an integer", "GWPIPE_ENRICH_RATE_PER_SECOND=3", func(c Config) any { return c.Enrich.RatePerSecond }, 3.0},
		{"size", "GWPIPE_PIPELINE_MAX_HELD_BYTES=268435456", func(c Config) any { return c.Pipeline.MaxHeldBytes }, int64(256 << 20)},
		{"int", "GWPIPE_DATADOG_LOGS_CONCURRENCY=7", func(c Config) any { return c.Datadog.Logs.Concurrency }, 7},
		{"duration", "GWPIPE_ENRICH_NEGATIVE_TTL=90s", func(c Config) any { return c.Enrich.NegativeTTL }, 90 * time.Second},
		{"bool", "GWPIPE_METRICS_STREAMS_PERCENTILES=false", func(c Config) any { return c.Metrics.Streams.Percentiles }, false},
		{"bool as a digit", "GWPIPE_SOURCES_FIREHOSE_REUSE_PORT=1", func(c Config) any { return c.Sources.Firehose.ReusePort }, true},
		{"map", `GWPIPE_ENRICH_ROLE_OVERRIDES={"111111111111": "arn:aws:iam::111111111111:role/r"}`,
			func(c Config) any { return c.Enrich.RoleOverrides }, map[string]string{"111111111111": "arn:aws:iam::111111111111:role/r"}},
		{"list of structs", `GWPIPE_ENRICH_MAPPINGS=[{"log_group": "/aws/x/*", "api_id": "a1b2c3", "stage": "prod"}]`,
			func(c Config) any { return c.Enrich.Mappings }, []awstags.Mapping{{LogGroup: "/aws/x/*", APIID: "a1b2c3", Stage: "prod"}}},
		{"list of structs: formats", `GWPIPE_PARSE_FORMATS=[{"log_group": "api-*", "format": "$context.requestId $context.status"}]`,
			func(c Config) any { return c.Parse.Formats }, []apigw.FormatRule{{LogGroup: "api-*", Format: "$context.requestId $context.status"}}},
		{"list of strings, comma-separated", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS= a, b ,,c",
			func(c Config) any { return c.Sources.Firehose.AccessKeys }, []string{"a", "b", "c"}},
		{"list of strings, JSON", `GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=["a,b", "c"]`,
			func(c Config) any { return c.Sources.Firehose.AccessKeys }, []string{"a,b", "c"}},
		{"empty list", "GWPIPE_METRICS_TAG_ALLOWLIST=", func(c Config) any { return c.Metrics.TagAllowlist }, []string(nil)},
		{"list of text values", "GWPIPE_METRICS_POLLER_TARGETS=123456789012:us-east-1, 210987654321:eu-west-1",
			func(c Config) any { return c.Metrics.Poller.Accounts },
			[]cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}, {Account: "210987654321", Region: "eu-west-1"}}},
		{"text value", "GWPIPE_TRANSPORT_NATS_COMPRESSION=none", func(c Config) any { return c.Transport.NATS.Compression }, stage.CompressNone},
		{"a string is taken as it is", "GWPIPE_DATADOG_SERVICE=null", func(c Config) any { return c.Datadog.Service }, "null"},
		{"a string keeps its blanks", "GWPIPE_REPLAY_PREFIX= a/b ", func(c Config) any { return c.Replay.Prefix }, " a/b "},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			c, err := Load("", []string{tc.env})
			require.NoError(t, err)
			assert.Equal(t, tc.want, tc.got(c))
		})
	}
}

// TestEnvironmentRefusesValuesThatDoNotFit: each error names the variable
// and its key.
func TestEnvironmentRefusesValuesThatDoNotFit(t *testing.T) {
	for _, env := range []string{
		"GWPIPE_ENRICH_RATE_PER_SECOND=fast",
		"GWPIPE_DATADOG_LOGS_CONCURRENCY=5.5",
		"GWPIPE_DATADOG_LOGS_CONCURRENCY=",
		"GWPIPE_DATADOG_LOGS_CONCURRENCY=null",
		"GWPIPE_DATADOG_LOGS_CONCURRENCY=99999999999999999999",
		"GWPIPE_ENRICH_TTL=15",
		"GWPIPE_ENRICH_AWS_TAGS=maybe",
		`GWPIPE_ENRICH_MAPPINGS=[{"log_grop": "/aws/x", "api_id": "a"}]`,
		`GWPIPE_ENRICH_MAPPINGS={"log_group": "/aws/x"}`,
		`GWPIPE_ENRICH_ROLE_OVERRIDES=["a"]`,
		`GWPIPE_ENRICH_ROLE_OVERRIDES={"a": `,
		"GWPIPE_METRICS_POLLER_TARGETS=123456789012",
		"GWPIPE_TRANSPORT_NATS_COMPRESSION=lz4",
	} {
		t.Run(env, func(t *testing.T) {
			_, err := Load("", []string{env})
			require.Error(t, err)
			name, _, _ := strings.Cut(env, "=")
			assert.Contains(t, err.Error(), name+" (")
			assert.Contains(t, err.Error(), schemaByEnv(name).name+")")
		})
	}
}

// TestUnknownVariablesAreReportedWithTheClosestKey
func TestUnknownVariablesAreReportedWithTheClosestKey(t *testing.T) {
	got := EnvWarnings([]string{
		"GWPIPE_DATADOG_LOGS_URLL=http://x",
		"GWPIPE_ENRICH_RATE_PER_SECONDS=5",
		"GWPIPE_DATADOG_LOGS_URL=http://ok",      // a key
		"GWPIPE_INGEST_SERVICE_HOST=10.0.0.1",    // Kubernetes service links
		"GWPIPE_INGEST_PORT=tcp://10.0.0.1:8088", //
		"GWPIPE_INGEST_PORT_8088_TCP_ADDR=10.0.0.1",
		"DD_SITE=datadoghq.eu", // not ours to judge
		"PATH=/bin",
	})
	require.Len(t, got, 2, "%q", got)
	assert.Contains(t, got[0], "GWPIPE_DATADOG_LOGS_URLL names no configuration key")
	assert.Contains(t, got[0], "did you mean GWPIPE_DATADOG_LOGS_URL, key datadog.logs_url?")
	assert.Contains(t, got[1], "did you mean GWPIPE_ENRICH_RATE_PER_SECOND, key enrich.rate_per_second?")

	// Not an error: gwpipe runs (the variable is ignored).
	c, err := Load("", []string{"GWPIPE_DATADOG_LOGS_URLL=http://x"})
	require.NoError(t, err)
	assert.Empty(t, c.Datadog.LogsURL)
}

// TestYAMLIsStrictWithLineNumbers: unknown keys (at any depth, inside
// lists of structs too) and values that do not fit are reported with their
// line and full key, all at once.
func TestYAMLIsStrictWithLineNumbers(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "datadog:\n  site: datadoghq.eu\n  sitee: x\n", "line 3: unknown key datadog.sitee (did you mean datadog.site?)"},
		{"unknown section", "\nenrichh:\n  ttl: 1m\n", "line 2: unknown key enrichh (did you mean enrich?)"},
		{"unknown key of an inlined component", "enrich:\n  negative_tll: 1m\n", "line 2: unknown key enrich.negative_tll (did you mean enrich.negative_ttl?)"},
		{"unknown key in a list of structs", "parse:\n  formats:\n    - log_group: a\n      fromat: $context.requestId\n", "line 4: unknown key parse.formats[0].fromat (did you mean parse.formats[0].format?)"},
		{"a value of the wrong type", "sources:\n  firehose:\n    max_body_bytes: lots\n", "line 3: sources.firehose.max_body_bytes: cannot unmarshal !!str `lots` into int64"},
		{"a fraction for an integer", "datadog:\n  logs:\n    concurrency: 5.5\n", "line 3: datadog.logs.concurrency: must be a whole number, got 5.5"},
		{"a duration without unit", "enrich:\n  ttl: 15\n", "line 2: enrich.ttl:"},
		{"a key without value", "admin:\n  listen:\n", "line 2: admin.listen has no value"},
		{"a section that is not a mapping", "metrics: on\n", "line 1: metrics must be a mapping of keys"},
		{"a bad text value", "transport:\n  nats:\n    compression: lz4\n", "line 3: transport.nats.compression: compression must be s2 or none"},
		{"not YAML", "datadog: [\n", "yaml: line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.yaml), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	// Every problem of the file at once.
	_, err := Load(writeFile(t, "datadog:\n  sitee: x\nadmin:\n  lisen: y\n"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: unknown key datadog.sitee")
	assert.Contains(t, err.Error(), "line 4: unknown key admin.lisen")
}

func TestYAMLAnchorsAndEmptyFiles(t *testing.T) {
	c, err := Load(writeFile(t, `
base: &base
`+"  {}\n"), nil)
	require.Error(t, err, "base is not a key")
	_ = c

	c, err = Load(writeFile(t, "# nothing set\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultConfig(), c)

	c, err = Load(writeFile(t, `
metrics:
  delivery: &d
    concurrency: 3
  telemetry:
    enabled: true
sources:
  sqs:
    <<: {max_concurrent_messages: 9}
`), nil)
	require.NoError(t, err)
	assert.Equal(t, 3, c.Metrics.Delivery.Concurrency)
	assert.Equal(t, 9, c.Sources.SQS.MaxConcurrentMessages)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gwpipe.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// The Datadog Forwarder's filtering variables, and which wins where a
// filters.* key says otherwise (the README's rule): redaction and scrubbing
// add to the file's; INCLUDE_AT_MATCH and EXCLUDE_AT_MATCH win over the
// file, and the GWPIPE_ form wins over them.
func TestForwarderFilterVariables(t *testing.T) {
	file := writeFile(t, "filters:\n  redact: [email]\n  rules: [{name: mine, pattern: x}]\n  include_at_match: from-file\n  exclude_at_match: from-file\n")
	c, err := Load(file, []string{
		"REDACT_IP=false", // the Forwarder tests presence: any value turns it on
		"REDACT_EMAIL=true",
		`DD_SCRUBBING_RULE=\d{16}`,
		"INCLUDE_AT_MATCH=from-forwarder", "EXCLUDE_AT_MATCH=from-forwarder",
		"GWPIPE_FILTERS_EXCLUDE_AT_MATCH=from-gwpipe",
	})
	require.NoError(t, err)
	f := c.Filters
	assert.Equal(t, []string{"email", "ip"}, f.Redact)
	require.Len(t, f.Rules, 2)
	assert.Equal(t, "mine", f.Rules[0].Name)
	assert.Equal(t, ForwarderScrubbingRule, f.Rules[1].Name)
	assert.Equal(t, `\d{16}`, f.Rules[1].Pattern)
	assert.Equal(t, "xxxxx", f.Rules[1].Replace, "the Forwarder's default replacement")
	assert.Equal(t, "from-forwarder", f.IncludeAtMatch)
	assert.Equal(t, "from-gwpipe", f.ExcludeAtMatch)
	require.NoError(t, f.Validate())

	c, err = Load("", []string{`DD_SCRUBBING_RULE=secret=\w+`, "DD_SCRUBBING_RULE_REPLACEMENT=", "REDACT_IP="})
	require.NoError(t, err)
	assert.Equal(t, "", c.Filters.Rules[0].Replace, "an empty replacement, set, deletes the match")
	assert.Equal(t, []string{"ip"}, c.Filters.Redact)

	c, err = Load("", nil)
	require.NoError(t, err)
	assert.True(t, c.Filters.Empty(), "no variable, no filter")
}

// A value that does not validate is reported under its key and the
// variable that set it, where it is to be fixed: a Forwarder variable's
// name is not its key's.
func TestValidateNamesTheVariableThatSetAValue(t *testing.T) {
	file := writeFile(t, "sources: {firehose: {access_keys: [k]}}\ndatadog: {api_key: x}\nfilters:\n  rules: [{name: mine, pattern: x}]\n")
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"EXCLUDE_AT_MATCH=health(?=check)"}, "filters.exclude_at_match (set by EXCLUDE_AT_MATCH): invalid or unsupported Perl syntax"},

		{[]string{"DD_SCRUBBING_RULE=(?=x)"}, "filters.rules[1].pattern (set by DD_SCRUBBING_RULE): invalid or unsupported Perl syntax"},
		{[]string{"DD_SCRUBBING_RULE=a(b)", "DD_SCRUBBING_RULE_REPLACEMENT=$2"}, "filters.rules[1].replace (set by DD_SCRUBBING_RULE_REPLACEMENT): $2 refers to group 2"},
		{[]string{"GWPIPE_FILTERS_RULES=[{\"name\":\"dd_scrubbing_rule\",\"pattern\":\"x\"}]", "DD_SCRUBBING_RULE=y"},
			`filters.rules[1].name (set by DD_SCRUBBING_RULE): "dd_scrubbing_rule" is taken by rules[0].name`},
		{[]string{"DD_SITE=https://datadoghq.eu"}, "datadog.site (set by DD_SITE): must be a site name"},
		{[]string{"DD_TAGS=env:prod,team:a\tb"}, `enrich.tags[1] (set by DD_TAGS): "team:a\tb"`},
	} {
		cfg, err := Load(file, c.env)
		require.NoError(t, err, c.env)
		err = cfg.Validate()
		if assert.Error(t, err, c.env) {
			assert.Contains(t, err.Error(), c.want)
			assert.Equal(t, 1, strings.Count(err.Error(), "set by"), err.Error())
		}
	}
	// A value from the file, or from a GWPIPE_ variable (named after its
	// key) that wins over the Forwarder's, is the key's alone.
	for _, env := range [][]string{{"DD_SITE=datadoghq.eu"}, {"EXCLUDE_AT_MATCH=x", "GWPIPE_FILTERS_EXCLUDE_AT_MATCH=("}} {
		cfg, err := Load(writeFile(t, "filters: {exclude_at_match: '('}\n"), env)
		require.NoError(t, err)
		err = cfg.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "filters.exclude_at_match: missing closing )")
		assert.NotContains(t, err.Error(), "set by")
	}
}

// TestErrorsDoNotQuoteSecrets: a value that does not fit a key holding a
// secret (the Datadog API key, the Firehose access keys, the external id),
// in the file or in the environment, or a secret reached through a YAML
// alias under another key, is reported under its key and never quoted.
func TestErrorsDoNotQuoteSecrets(t *testing.T) {
	const secret = "Sekr1tValue0123456789"
	files := []struct{ name, yaml, key string }{
		{"access keys as one string", "sources:\n  firehose:\n    access_keys: " + secret + "\n", "sources.firehose.access_keys"},
		{"access keys in a mapping", "sources:\n  firehose:\n    access_keys: [{k: " + secret + "}]\n", "sources.firehose.access_keys"},
		{"an API key tagged as a number", "datadog:\n  api_key: !!int " + secret + "\n", "datadog.api_key"},
		{"an API key tagged as a float", "datadog:\n  api_key: !!float " + secret + "\n", "datadog.api_key"},
		{"an API key tagged as binary", "datadog:\n  api_key: !!binary " + secret + "\n", "datadog.api_key"},
		{"an API key holding a backtick", "datadog:\n  api_key: !!int \"a`" + secret + "`b\"\n", "datadog.api_key"},
		{"an external id tagged as a number", "enrich:\n  external_id: !!int " + secret + "\n", "enrich.external_id"},
		{"an API key's anchor as a number", "datadog:\n  api_key: &k " + secret + "\n  logs:\n    concurrency: *k\n", "datadog.logs.concurrency"},
		{"an API key's anchor as a section", "datadog:\n  api_key: &k " + secret + "\n  logs: *k\n", "datadog.logs"},
		{"an API key's anchor as a whole number", "datadog:\n  api_key: &k 1.5" + secret[:0] + "\n  logs:\n    concurrency: *k\n", "datadog.logs.concurrency"},
		{"an API key's anchor in a merge", "datadog:\n  api_key: &k " + secret + "\nmetrics:\n  delivery:\n    <<: {concurrency: *k}\n", "metrics.delivery.concurrency"},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			_, err := Load(writeFile(t, f.yaml), nil)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret[:6], "not even the start the YAML decoder quotes of a long value")
			assert.Contains(t, err.Error(), f.key)
		})
	}
	t.Run("a whole number through an alias", func(t *testing.T) {
		// A fraction quoted where a whole number is due, reached by alias.
		_, err := Load(writeFile(t, "datadog:\n  api_key: &k 1.2345\n  logs:\n    concurrency: *k\n"), nil)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "1.2345")
		assert.Contains(t, err.Error(), "line 4: datadog.logs.concurrency", "the line is the alias's")
	})
	envs := []struct{ name, env, key string }{
		{"access keys as a list of mappings", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=[{k: " + secret + "}]", "sources.firehose.access_keys"},
		{"access keys tagged as numbers", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=[!!int " + secret + "]", "sources.firehose.access_keys"},
		{"access keys, a list not closed", "GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS=[" + secret, "sources.firehose.access_keys"},
	}
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			_, err := Load("", []string{e.env})
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret[:6], "not even the start the YAML decoder quotes of a long value")
			assert.Contains(t, err.Error(), e.key)
		})
	}
	// What Validate says of them.
	for _, m := range []func(*Config){
		func(c *Config) { c.Datadog.APIKey = secret + " \n" },
		func(c *Config) { c.Sources.Firehose.AccessKeys = []string{secret, ""} },
		func(c *Config) { c.Sources.Firehose.AccessKeys = []string{strings.Repeat(secret, 200)} },
	} {
		c := runnable()
		m(&c)
		err := c.Validate()
		require.Error(t, err)
		assert.NotContains(t, err.Error(), secret[:6], "not even the start the YAML decoder quotes of a long value")
	}
}

// TestEveryKeyNamedForASecretIsHidden: a key whose name says it holds a
// secret is one the messages do not quote.
func TestEveryKeyNamedForASecretIsHidden(t *testing.T) {
	for _, k := range keyNames() {
		last := k[strings.LastIndexByte(k, '.')+1:]
		if strings.HasSuffix(last, "_file") || strings.HasSuffix(last, "_url") || strings.HasSuffix(last, "_urls") || last == "url" || last == "key_slack" {
			continue // a path, or a URL (its credentials are masked), or a duration
		}
		if typ := schemaByName(k).typ; typ != reflect.TypeFor[string]() && typ != reflect.TypeFor[[]string]() {
			continue
		}
		if redact.SecretParam(last) || strings.Contains(last, "external_id") {
			assert.True(t, isSecretKey(k), "%s reads as a secret: add it to secretKeys", k)
		}
	}
}
