package awstags

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

// Defaults for Config's zero values.
const (
	DefaultTTL           = 15 * time.Minute
	DefaultNegativeTTL   = 5 * time.Minute
	DefaultJitter        = 0.1
	DefaultMaxStages     = 100_000
	DefaultRatePerSecond = 10
	DefaultBurst         = 40
	DefaultMaxWait       = 200 * time.Millisecond
	DefaultCallTimeout   = 10 * time.Second
	DefaultMaxAttempts   = 3
	DefaultRetryBase     = 200 * time.Millisecond
	DefaultSessionName   = "gwpipe"

	// accountPlaceholder is replaced by the account id in RoleTemplate.
	accountPlaceholder = "{account}"
)

// Config configures a Tagger; it is the enrich section of gwpipe's
// configuration (but for enrich.tags and enrich.aws_tags). Constructors
// give zero fields DefaultConfig's values: Config{} is one account, the
// pipeline's own credentials, the defaults above.
type Config struct {
	// RoleTemplate is the role assumed in each account, with "{account}"
	// standing for the account id, e.g.
	// "arn:aws:iam::{account}:role/gwpipe-reader". Empty: the pipeline's own
	// credentials serve the account they belong to.
	RoleTemplate string `yaml:"role_template"`
	// RoleOverrides maps an account id to the role ARN assumed there instead
	// of the template's.
	RoleOverrides map[string]string `yaml:"role_overrides"`
	// ExternalID is passed to every AssumeRole when set.
	ExternalID string `yaml:"external_id"`
	// RoleSessionName names the assumed-role sessions (CloudTrail shows it);
	// default "gwpipe".
	RoleSessionName string `yaml:"-"`

	// DefaultRegion is the region of records that carry none (S3 replays of
	// direct Firehose deliveries, for instance).
	DefaultRegion string `yaml:"default_region"`
	// SourceRegions gives the region per source, keyed by record.Origin
	// SourceARN or Source ("firehose", "sqs", "s3", "replay"); it is consulted
	// before DefaultRegion.
	SourceRegions map[string]string `yaml:"-"`

	// TTL is how long an inventory is served before it is read again in the
	// background (default 15m).
	TTL time.Duration `yaml:"ttl"`
	// NegativeTTL is how long an answer of "no such API or stage", and a
	// failed read of an account, is remembered before AWS is asked again
	// (default 5m).
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// Jitter spreads refreshes by ±Jitter×TTL so that accounts loaded
	// together do not refresh together (default 0.1; negative: none).
	Jitter float64 `yaml:"-"`
	// MaxStages bounds the stages cached over all accounts and regions
	// (default 100000).
	MaxStages int `yaml:"max_stages"`

	// RatePerSecond and Burst limit AWS calls per account. API Gateway allows
	// 10 control-plane requests/s with a burst of 40 per account, shared with
	// every other caller (deployments included); stay within it.
	RatePerSecond float64 `yaml:"rate_per_second"`
	Burst         int     `yaml:"burst"`

	// MaxWait bounds how long one Lookup waits for a stage that is not
	// cached yet (default 200ms). After that the record goes on, flagged
	// partial.
	MaxWait time.Duration `yaml:"max_wait"`
	// CallTimeout bounds each AWS call attempt (default 10s).
	CallTimeout time.Duration `yaml:"-"`
	// MaxAttempts is how often a retryable AWS call is tried (default 3).
	MaxAttempts int `yaml:"-"`
	// Retry paces the retries (default: DefaultRetryBase doubled per
	// attempt up to 32 times it, with full jitter; unset when its
	// InitialInterval is zero).
	Retry backoff.Policy `yaml:"-"`

	// Mappings name the stage of log groups (or Firehose delivery streams)
	// whose records carry no API id and stage of their own.
	Mappings []Mapping `yaml:"mappings"`

	// OnFormat receives each stage's access-log format with the log group
	// (or Firehose delivery stream name) it is written to, whenever it is
	// first seen or changes; an empty format means access logging was turned
	// off. It is called from refresh goroutines, never from Lookup.
	OnFormat func(logGroup, format string) `yaml:"-"`

	// HTTPClient carries every AWS call; default: the aws.Config's, else the
	// SDK's client with CallTimeout.
	HTTPClient aws.HTTPClient `yaml:"-"`
	Logger     *slog.Logger   `yaml:"-"`
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time `yaml:"-"`
}

// Mapping names the stage of a log group.
type Mapping struct {
	// LogGroup is a path.Match glob over the log group name, or the Firehose
	// delivery stream name for direct access-log delivery.
	LogGroup string `yaml:"log_group"`
	APIID    string `yaml:"api_id"`
	Stage    string `yaml:"stage"` // optional: without it, the API's tags apply
	// Account and Region, when set, replace what the record says.
	Account string `yaml:"account"`
	Region  string `yaml:"region"`
}

// DefaultConfig is the pipeline's own credentials, the cache and rate
// limits above, no mappings.
func DefaultConfig() Config {
	return Config{
		RoleSessionName: DefaultSessionName, TTL: DefaultTTL, NegativeTTL: DefaultNegativeTTL, Jitter: DefaultJitter,
		MaxStages: DefaultMaxStages, RatePerSecond: DefaultRatePerSecond, Burst: DefaultBurst, MaxWait: DefaultMaxWait,
		CallTimeout: DefaultCallTimeout, MaxAttempts: DefaultMaxAttempts, Retry: backoff.ExponentialFullJitter(DefaultRetryBase, 32*DefaultRetryBase),
	}
}

// Validate reports every problem of the configuration at once, each
// message starting with its key. Constructors validate after giving zero
// fields their defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if c.RoleTemplate != "" {
		if !strings.Contains(c.RoleTemplate, accountPlaceholder) {
			bad("role_template", "%q must contain %s, e.g. arn:aws:iam::{account}:role/gwpipe-reader", c.RoleTemplate, accountPlaceholder)
		} else if err := validRoleARN(strings.ReplaceAll(c.RoleTemplate, accountPlaceholder, "123456789012")); err != nil {
			bad("role_template", "%v", err)
		}
	}
	for acct, role := range c.RoleOverrides {
		if !ValidAccount(acct) {
			bad("role_overrides", "%q is not a 12-digit account id", acct)
		}
		if err := validRoleARN(role); err != nil {
			bad("role_overrides["+acct+"]", "%v", err)
		}
	}
	if len(c.RoleSessionName) > 64 {
		bad("role_session_name", "longer than 64 characters")
	}
	if c.DefaultRegion != "" && !validRegion(c.DefaultRegion) {
		bad("default_region", "%q is not a region name", c.DefaultRegion)
	}
	for src, r := range c.SourceRegions {
		if !validRegion(r) {
			bad("source_regions["+src+"]", "%q is not a region name", r)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"ttl", c.TTL}, {"negative_ttl", c.NegativeTTL}, {"call_timeout", c.CallTimeout}} {
		if d.v <= 0 {
			bad(d.key, "must be positive, got %s", d.v)
		}
	}
	if c.MaxWait < 0 {
		bad("max_wait", "must not be negative, got %s", c.MaxWait)
	}
	if !(c.Jitter < 1) {
		bad("jitter", "%.2f: must be below 1", c.Jitter)
	}
	if c.MaxStages < 1 {
		bad("max_stages", "must be positive, got %d", c.MaxStages)
	}
	if !(c.RatePerSecond > 0) || math.IsInf(c.RatePerSecond, 0) {
		bad("rate_per_second", "must be a positive number, got %v", c.RatePerSecond)
	}
	if c.Burst < 1 {
		bad("burst", "must be positive, got %d", c.Burst)
	}
	if c.MaxAttempts < 1 {
		bad("max_attempts", "must be positive, got %d", c.MaxAttempts)
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry.%w", err))
	}
	for i, m := range c.Mappings {
		key := fmt.Sprintf("mappings[%d]", i)
		if m.LogGroup == "" {
			bad(key+".log_group", "is required")
		} else if _, err := path.Match(m.LogGroup, ""); err != nil {
			bad(key+".log_group", "%q: %v", m.LogGroup, err)
		}
		if m.APIID == "" {
			bad(key+".api_id", "is required")
		}
		if m.Account != "" && !ValidAccount(m.Account) {
			bad(key+".account", "%q is not a 12-digit account id", m.Account)
		}
		if m.Region != "" && !validRegion(m.Region) {
			bad(key+".region", "%q is not a region name", m.Region)
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy with every zero value replaced by
// DefaultConfig's (a negative Jitter means none).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.RoleSessionName == "" {
		c.RoleSessionName = d.RoleSessionName
	}
	for _, f := range []struct{ v, d *time.Duration }{{&c.TTL, &d.TTL}, {&c.NegativeTTL, &d.NegativeTTL}, {&c.MaxWait, &d.MaxWait}, {&c.CallTimeout, &d.CallTimeout}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if c.Retry.InitialInterval == 0 {
		c.Retry = d.Retry
	}
	if c.Jitter == 0 {
		c.Jitter = d.Jitter
	} else if c.Jitter < 0 {
		c.Jitter = 0
	}
	for _, f := range []struct{ v, d *int }{{&c.MaxStages, &d.MaxStages}, {&c.Burst, &d.Burst}, {&c.MaxAttempts, &d.MaxAttempts}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = d.RatePerSecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// RoleFor returns the role to assume in an account, or "" for the
// pipeline's own credentials.
func (c *Config) RoleFor(account string) string {
	if r, ok := c.RoleOverrides[account]; ok {
		return r
	}
	if c.RoleTemplate != "" {
		return strings.ReplaceAll(c.RoleTemplate, accountPlaceholder, account)
	}
	return ""
}

func validRoleARN(s string) error {
	if !strings.HasPrefix(s, "arn:") || !strings.Contains(s, ":iam::") || !strings.Contains(s, ":role/") {
		return fmt.Errorf("%q is not an IAM role ARN (arn:aws:iam::{account}:role/{name})", s)
	}
	return nil
}

// ValidAccount reports whether s is a 12-digit AWS account id. Records carry
// whatever their source said; only plausible ids reach AWS.
func ValidAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validRegion accepts names shaped like AWS regions ("us-east-1",
// "us-gov-west-1", "cn-north-1"): lower-case words and a final number.
func validRegion(s string) bool {
	if len(s) < 6 || len(s) > 25 {
		return false
	}
	dashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && s[i-1] != '-':
			dashes++
		default:
			return false
		}
	}
	last := s[len(s)-1]
	return dashes >= 2 && last >= '0' && last <= '9'
}
