package config

import (
	"encoding"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/sources/cwpoller"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// runnable is the default configuration with what it needs to run.
func runnable() Config {
	c := DefaultConfig()
	c.Datadog.APIKey = "k"
	c.Sources.Firehose.AccessKeys = []string{"a"}
	return c
}

// TestValidateCatchesWhatRunWould: one case per class of problem, each
// reported under its full key.
func TestValidateCatchesWhatRunWould(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"a template that does not compile", func(c *Config) {
			c.Parse.Formats = []apigw.FormatRule{{LogGroup: "api-*", Format: "requests of $stageVariables.x only"}}
		}, "parse.formats[0].format: of log group api-*:"},
		{"a format without log group", func(c *Config) {
			c.Parse.Formats = []apigw.FormatRule{{Format: "$context.requestId"}}
		}, "parse.formats[0].log_group: empty"},
		{"a mapping without API", func(c *Config) { c.Enrich.Mappings = []awstags.Mapping{{LogGroup: "/aws/x"}} }, "enrich.mappings[0].api_id: is required"},
		{"a mapping with a bad glob", func(c *Config) { c.Enrich.Mappings = []awstags.Mapping{{LogGroup: "[", APIID: "a"}} }, "enrich.mappings[0].log_group:"},
		{"a mapping with a bad account", func(c *Config) {
			c.Enrich.Mappings = []awstags.Mapping{{LogGroup: "x", APIID: "a", Account: "12"}}
		}, "enrich.mappings[0].account:"},
		{"a role override for no account", func(c *Config) {
			c.Enrich.RoleOverrides = map[string]string{"prod": "arn:aws:iam::111111111111:role/r"}
		}, "enrich.role_overrides: \"prod\" is not a 12-digit account id"},
		{"a role override that is no role", func(c *Config) {
			c.Enrich.RoleOverrides = map[string]string{"111111111111": "gwpipe-reader"}
		}, "enrich.role_overrides[111111111111]:"},
		{"a role template without account", func(c *Config) { c.Enrich.RoleTemplate = "arn:aws:iam::1:role/r" }, "enrich.role_template:"},
		{"a metric-stream namespace", func(c *Config) { c.Metrics.Streams.Namespace = "AWS/Gateway" }, "metrics.streams.namespace:"},
		{"a metrics namespace", func(c *Config) { c.Metrics.Namespace = "aws.mine." }, "metrics.namespace:"},
		{"a poller target twice", func(c *Config) {
			c.Metrics.Poller.Accounts = append(c.Metrics.Poller.Accounts, c.Metrics.Poller.Accounts...)
		}, ""}, // empty: no targets, no poller
		{"a transport without its URL", func(c *Config) { c.Transport.Kind = "nats" }, "transport.nats.url: is required"},
		{"a broker URL with a port out of range", func(c *Config) {
			c.Transport.Kind, c.Transport.NATS.URL = "nats", "nats://127.0.0.1:70000"
		}, "transport.nats.url: port \"70000\""},
		{"NATS replicas", func(c *Config) { c.Transport.NATS.Replicas = 7 }, "transport.nats.replicas:"},
		{"an SQS message limit", func(c *Config) { c.Transport.SQS.MessageLimit = 2 << 20 }, "transport.sqs.message_limit:"},
		// SNS refuses more than 256 KiB, whatever SQS takes: a larger limit
		// failed every batch between the two.
		// 1 moved to the SQS dead-letter queue, which nothing reads, every
		// message a stopped or killed worker held: lost to the pipeline.
		{"an SQS max receive count of 1", func(c *Config) { c.Transport.SQS.MaxReceiveCount = 1 }, "transport.sqs.max_receive_count: must be 2 to 1000"},
		{"an SQS message limit over SNS's", func(c *Config) { c.Transport.SQS.MessageLimit = 1 << 20 }, "transport.sqs.message_limit: must be 16 KiB to 256 KiB"},
		{"DD_SITE as a URL", func(c *Config) { c.Datadog.Site = "https://datadoghq.eu" }, "datadog.site: must be a site name such as datadoghq.eu"},
		{"DD_SITE not a host", func(c *Config) { c.Datadog.Site = "datadog eu" }, "datadog.site: must be a Datadog site"},
		{"a logs URL with a port out of range", func(c *Config) { c.Datadog.LogsURL = "https://intake:99999/api/v2/logs" }, "datadog.logs_url: port"},
		{"a listen port out of range", func(c *Config) { c.Sources.Firehose.Listen = ":70000" }, "sources.firehose.listen: port \"70000\""},
		{"an admin port out of range", func(c *Config) { c.Admin.Listen = "127.0.0.1:65536" }, "admin.listen: port"},
		{"a health listen without port", func(c *Config) { c.Admin.HealthListen = "0.0.0.0" }, "admin.health_listen: must be host:port"},
		{"a DogStatsD port out of range", func(c *Config) {
			c.Metrics.Telemetry.Enabled, c.Metrics.Telemetry.DogStatsDAddr = true, "localhost:0"
		}, "metrics.telemetry.dogstatsd_addr: port"},
		{"a negative TTL", func(c *Config) { c.Enrich.NegativeTTL = -time.Minute }, "enrich.negative_ttl: must not be negative, got -1m0s"},
		{"a negative TTL and a bad mapping", func(c *Config) {
			c.Enrich.NegativeTTL = -time.Minute
			c.Enrich.Mappings = []awstags.Mapping{{LogGroup: "/aws/x"}}
		}, "enrich.mappings[0].api_id: is required"},
		{"a negative dedup TTL", func(c *Config) { c.Sources.Firehose.DedupTTL = -time.Second }, "sources.firehose.dedup_ttl: must not be negative"},
		{"a negative key slack", func(c *Config) { c.Replay.KeySlack = -time.Hour }, "replay.key_slack: must not be negative"},
		{"a negative poller lag", func(c *Config) { c.Metrics.Poller.Lag = -time.Minute }, "metrics.poller.lag: must not be negative"},
		{"a zero poller lag, which the poller would read as 2m", func(c *Config) {
			c.Metrics.Poller.Accounts, c.Metrics.Poller.Lag = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}, 0
		}, "metrics.poller.lag: must be at least 1s (0 would be read as the default, 2m)"},
		{"a zero TTL", func(c *Config) { c.Enrich.TTL = 0 }, "enrich.ttl: must be positive"},
		{"a rate that is not a number", func(c *Config) { c.Enrich.RatePerSecond = math.NaN() }, "enrich.rate_per_second: must be a finite number"},
		{"a rate above API Gateway's", func(c *Config) { c.Enrich.RatePerSecond = 11 }, "enrich.rate_per_second: must be in (0, 10]"},
		{"a size that must be positive", func(c *Config) { c.Decode.MaxEventsPerBatch = 0 }, "decode.max_events_per_batch: must be positive"},
		{"a body limit", func(c *Config) { c.Sources.Firehose.MaxBodyBytes = -1 }, "sources.firehose.max_body_bytes:"},
		{"a stream limit", func(c *Config) { c.Transport.NATS.StreamMaxBytes = 0 }, "transport.nats.stream_max_bytes:"},
		{"a compression level", func(c *Config) { c.Datadog.Logs.CompressionLevel = 12 }, "datadog.logs.compression_level: must be 1 to 9 with gzip"},
		{"an API key with a blank", func(c *Config) { c.Datadog.APIKey = "k k" }, "datadog.api_key: contains whitespace"},
		{"a logs batch size", func(c *Config) { c.Datadog.Logs.MaxBatchLogs = 0 }, "datadog.logs.max_batch_logs: must be 1 to 1000 (the intake's limit), got 0"},
		{"a metrics retry", func(c *Config) { c.Metrics.Delivery.Backoff.InitialInterval = 0 }, "metrics.delivery.retry_initial: must be positive"},
		{"a DogStatsD delivery port out of range", func(c *Config) {
			c.Metrics.Delivery.Mode, c.Metrics.Delivery.DogStatsDAddr = "dogstatsd", "localhost:70000"
		}, "metrics.delivery.dogstatsd_addr: port"},
		{"retries", func(c *Config) { c.Pipeline.Runtime.MaxRetries = -1 }, "pipeline.max_retries:"},
		{"a correlation bound", func(c *Config) { c.Parse.Correlation.MaxOpen = 0 }, "parse.correlation.max_open:"},
		{"a metric window", func(c *Config) { c.Metrics.Window = 0 }, "metrics.window:"},
		{"a DLQ directory", func(c *Config) { c.DLQ.Dir = "" }, "dlq.dir:"},
		{"an enrich tag with a comma", func(c *Config) { c.Enrich.Tags = []string{"a:b,c:d"} }, "enrich.tags[0]:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := runnable()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			lines := strings.Split(err.Error(), "\n")
			seen := map[string]bool{}
			for _, line := range lines {
				assert.False(t, seen[line], "%q reported twice", line)
				seen[line] = true
			}
			for _, line := range lines {
				key, _, _ := strings.Cut(line, ":")
				key, _, _ = strings.Cut(key, "[")
				assert.True(t, isKeyOrSection(key), "%q starts with a key", line)
			}
		})
	}
}

func isKeyOrSection(k string) bool {
	for _, name := range keyNames() {
		if name == k || strings.HasPrefix(name, k+".") {
			return true
		}
	}
	return false
}

func TestValidateReportsASecretFreeMessage(t *testing.T) {
	c := runnable()
	c.Datadog.LogsURL = "https://intake:99999/api/v2/logs?dd-api-key=s3cret"
	err := c.Validate()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}

func TestPollerTargetsAreValidatedWhenSet(t *testing.T) {
	c, err := Load("", []string{"GWPIPE_METRICS_POLLER_TARGETS=123456789012:us-east-1,123456789012:us-east-1"})
	require.NoError(t, err)
	c.Datadog.APIKey, c.Sources.Firehose.AccessKeys = "k", []string{"a"}
	assert.ErrorContains(t, c.Validate(), "metrics.poller.targets: 123456789012/us-east-1 listed twice")
}

// TestDefaultConfigRoundTrips: the defaults validate (given the two
// settings without default), and survive the file and the environment:
// written as YAML, or every key set through its GWPIPE_ variable to its
// default, they load as the same Config.
func TestDefaultConfigRoundTrips(t *testing.T) {
	c := runnable()
	require.NoError(t, c.Validate())
	assertRoundTrips(t, c)
}

// TestAnyConfigRoundTrips is the property behind it for any value of every
// key: what the file or the environment says is what the Config holds.
func TestAnyConfigRoundTrips(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		c := DefaultConfig()
		root := reflect.ValueOf(&c).Elem()
		for _, k := range schema() {
			root.FieldByIndex(k.index).Set(randomValue(rng, k.typ))
		}
		normalize(&c)
		if !assertRoundTrips(t, c) {
			t.Fatalf("seed %d", seed)
		}
	}
}

func assertRoundTrips(t *testing.T, c Config) bool {
	t.Helper()
	data, err := yaml.Marshal(c)
	require.NoError(t, err)
	fromFile, err := Load(writeFile(t, string(data)), nil)
	require.NoError(t, err, "%s", data)
	ok := assert.Equal(t, c, fromFile, "through YAML:\n%s", data)

	env := []string{}
	for _, k := range schema() {
		env = append(env, k.env+"="+envString(t, reflect.ValueOf(c).FieldByIndex(k.index)))
	}
	fromEnv, err := Load("", env)
	require.NoError(t, err, "%q", env)
	return assert.Equal(t, c, fromEnv, "through the environment: %q", env) && ok
}

// envString writes a value as its variable takes it: strings as they are,
// lists and maps as YAML flow (JSON's superset).
func envString(t *testing.T, v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		require.NoError(t, err)
		return string(b)
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Int, reflect.Int64:
		if d, ok := v.Interface().(time.Duration); ok {
			return d.String()
		}
		return strconv.FormatInt(v.Int(), 10)
	}
	var n yaml.Node
	require.NoError(t, n.Encode(v.Interface()))
	flow(&n)
	b, err := yaml.Marshal(&n)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func flow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		flow(c)
	}
}

// randomValue is any value of t a key can hold.
func randomValue(rng *rand.Rand, t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		texts := map[string][]string{
			"Compression": {"s2", "none"},
			"Target":      {fmt.Sprintf("%012d:%s", rng.Int64N(1e12), randomWord(rng))},
		}[t.Name()]
		if texts == nil {
			panic("no random text for " + t.String())
		}
		if err := u.UnmarshalText([]byte(texts[rng.IntN(len(texts))])); err != nil {
			panic(err)
		}
		return v
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(randomString(rng))
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Float64:
		v.SetFloat(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-4)))
	case reflect.Int, reflect.Int64:
		if t == reflect.TypeFor[time.Duration]() {
			v.SetInt(rng.Int64N(2e15) - 1e15)
		} else {
			v.SetInt(rng.Int64N(1<<40) - 1<<39)
		}
	case reflect.Slice:
		for range rng.IntN(4) {
			v = reflect.Append(v, randomValue(rng, t.Elem()))
		}
		if v.Len() == 0 {
			v = reflect.Zero(t)
		}
	case reflect.Map:
		if n := rng.IntN(3); n > 0 {
			v.Set(reflect.MakeMap(t))
			for range n {
				v.SetMapIndex(reflect.ValueOf(randomWord(rng)), randomValue(rng, t.Elem()))
			}
		}
	case reflect.Pointer: // an optional value: nil or set
		if rng.IntN(2) == 1 {
			p := reflect.New(t.Elem())
			p.Elem().Set(randomValue(rng, t.Elem()))
			v.Set(p)
		}
	case reflect.Struct:
		for _, f := range fields(t) {
			v.FieldByIndex(f.index).Set(randomValue(rng, f.typ))
		}
	default:
		panic("no random value for " + t.String())
	}
	return v
}

// randomString has what makes strings hard to carry: quotes, commas,
// colons, brackets, YAML words (null, true, ~), blanks at either end,
// digits, non-ASCII letters.
func randomString(rng *rand.Rand) string {
	parts := []string{"", "a", "null", "~", "true", "0x1F", "12", "1e3", " ", ",", ":", ": ", "#", "'", "\"", "[", "{", "}", "-", "é", "日本", "$context.requestId", "*", "\\", "&x", "!t", "|", ">"}
	var b strings.Builder
	for range rng.IntN(5) {
		b.WriteString(parts[rng.IntN(len(parts))])
	}
	return b.String()
}

func randomWord(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789-"
	b := make([]byte, 1+rng.IntN(12))
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// A status written out of range is refused as such, 0 included: read as no
// status, it made a drop matcher "give no field" and a sample entry match
// every log.
func TestFilterStatusZeroIsOutOfRange(t *testing.T) {
	c, err := LoadData("t", []byte("filters:\n  drop:\n    - {name: z, status: 0}\n  sample:\n    - {status: 0, rate: 0}\n"), nil)
	require.NoError(t, err)
	c.Datadog.APIKey, c.Sources.Firehose.AccessKeys = "k", []string{"a"}
	err = c.Validate()
	require.Error(t, err)
	assert.Equal(t, "filters.drop[0].status: must be an HTTP status 100 to 599, got 0\n"+
		"filters.sample[0].status: must be an HTTP status 100 to 599, got 0", err.Error())
}

// TestValidateDoesNotQuoteTheCredentialsOfURLs: whatever is wrong with a
// URL that carries a password — the password itself holding characters a
// URL reserves, left unencoded (generated passwords and AWS secret keys
// hold '/'), a bad port, a wrong scheme, no scheme — the message names the
// key and quotes neither the password nor a piece of it.
func TestValidateDoesNotQuoteTheCredentialsOfURLs(t *testing.T) {
	const password = "Pw0rdA/Pw0rdB#Pw0rdC?Pw0rdD@Pw0rdE"
	pieces := []string{"Pw0rdA", "Pw0rdB", "Pw0rdC", "Pw0rdD", "Pw0rdE"}
	nats := func(u string) func(*Config) {
		return func(c *Config) { c.Transport.Kind, c.Transport.NATS.URL = "nats", u }
	}
	cases := []struct {
		name, key string
		mutate    func(*Config)
	}{
		{"a NATS URL whose password holds / # ? @", "transport.nats.url", nats("nats://gwpipe:" + password + "@nats:4222")},
		{"a NATS URL whose password holds a blank", "transport.nats.url", nats("nats://gwpipe:Pw0rdA Pw0rdB@nats:4222")},
		{"a NATS URL with a bad port", "transport.nats.url", nats("nats://gwpipe:" + password + "@nats:99999")},
		{"a NATS URL with a wrong scheme", "transport.nats.url", nats("tcp://gwpipe:" + password + "@nats:4222")},
		{"a NATS URL without scheme", "transport.nats.url", nats("gwpipe:" + password + "@nats:4222")},
		{"a NATS URL with a bad escape", "transport.nats.url", nats("nats://gwpipe:Pw0rdA%zzPw0rdB@nats:4222")},
		{"a second NATS URL wrong", "transport.nats.url", nats("nats://a:Pw0rdA@n1:4222, nats://b:Pw0rdB/Pw0rdC@n2:99999")},
		{"a logs URL with a bad port", "datadog.logs_url", func(c *Config) { c.Datadog.LogsURL = "https://u:" + password + "@intake:99999/api/v2/logs" }},
		{"an API URL with a wrong scheme", "datadog.api_url", func(c *Config) { c.Datadog.APIURL = "ftp://u:" + password + "@api" }},
		{"a dead-letter archive that is no S3 URL", "dlq.url", func(c *Config) { c.DLQ.URL = "ftp://u:" + password + "@bucket/p/" }},
		{"a dead-letter archive without scheme", "dlq.url", func(c *Config) { c.DLQ.URL = "u:" + password + "@bucket/p/" }},
		{"a queue URL that is no SQS URL", "sources.sqs.queue_urls", func(c *Config) { c.Sources.SQS.QueueURLs = []string{"ftp://u:" + password + "@sqs/1/q"} }},
		{"a queue URL without scheme", "sources.sqs.queue_urls", func(c *Config) { c.Sources.SQS.QueueURLs = []string{"u:" + password + "@sqs/1/q"} }},
		{"a checkpoint that is no object", "replay.checkpoint", func(c *Config) { c.Replay.Checkpoint = "s3://u:" + password + "@" }},
		{"DD_SITE given as a URL", "datadog.site", func(c *Config) { c.Datadog.Site = "https://u:" + password + "@datadoghq.eu" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := runnable()
			tc.mutate(&c)
			err := c.Validate()
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg, tc.key+":", "the message names the key")
			for _, p := range pieces {
				assert.NotContains(t, msg, p, "no piece of the password is quoted")
			}
		})
	}
}

// TestS3AndSQSURLsWithCredentialsAreRefused: credentials written in an
// s3:// URL or an SQS queue URL would be ignored (requests are signed with
// the AWS credential chain), the requests made with other credentials than
// the ones the operator meant: refused, saying so, without quoting them.
func TestS3AndSQSURLsWithCredentialsAreRefused(t *testing.T) {
	const keyID, secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	creds := keyID + ":" + secret + "@"
	cases := []struct {
		key    string
		mutate func(*Config)
	}{
		{"dlq.url", func(c *Config) { c.DLQ.URL = "s3://" + creds + "letters/dlq/" }},
		{"dlq.url", func(c *Config) { c.DLQ.URL = "s3://token@letters/dlq/" }},
		{"dlq.url", func(c *Config) { c.DLQ.URL = "s3://" + keyID + ":123/x@letters/dlq/" }},
		{"replay.dlq", func(c *Config) { c.Replay.DLQ = "s3://" + creds + "letters/dlq/" }},
		{"replay.checkpoint", func(c *Config) { c.Replay.Checkpoint = "s3://" + creds + "state/replay.json" }},
		{"metrics.poller.state_url", func(c *Config) {
			c.Metrics.Poller.Accounts = []cwpoller.Target{{Account: "123456789012", Region: "us-east-1"}}
			c.Metrics.Poller.StateURL = "s3://" + creds + "state/poller/"
		}},
		{"sources.sqs.queue_urls", func(c *Config) {
			c.Sources.SQS.QueueURLs = []string{"https://" + creds + "sqs.eu-west-1.amazonaws.com/123456789012/q"}
		}},
	}
	for _, tc := range cases {
		c := runnable()
		tc.mutate(&c)
		err := c.Validate()
		require.Error(t, err, tc.key)
		assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(tc.key)+`: .*(credentials|is not an s3://bucket/prefix/ URL)`, err.Error())
		for _, s := range []string{keyID, "wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY", "token"} {
			assert.NotContains(t, err.Error(), s)
		}
	}
	// An '@' in a prefix is no credential.
	c := runnable()
	c.DLQ.URL = "s3://letters/team@example/"
	assert.NoError(t, c.Validate())
}
