package awstags

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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

// Config configures a Tagger. The zero value is valid: one account, the
// pipeline's own credentials, the defaults above.
type Config struct {
	// RoleTemplate is the role assumed in each account, with "{account}"
	// standing for the account id, e.g.
	// "arn:aws:iam::{account}:role/gwpipe-reader". Empty: the pipeline's own
	// credentials serve the account they belong to.
	RoleTemplate string
	// RoleOverrides maps an account id to the role ARN assumed there instead
	// of the template's.
	RoleOverrides map[string]string
	// ExternalID is passed to every AssumeRole when set.
	ExternalID string
	// RoleSessionName names the assumed-role sessions (CloudTrail shows it);
	// default "gwpipe".
	RoleSessionName string

	// DefaultRegion is the region of records that carry none (S3 replays of
	// direct Firehose deliveries, for instance).
	DefaultRegion string
	// SourceRegions gives the region per source, keyed by record.Origin
	// SourceARN or Source ("firehose", "sqs", "s3", "replay"); it is consulted
	// before DefaultRegion.
	SourceRegions map[string]string

	// TTL is how long an inventory is served before it is read again in the
	// background (default 15m).
	TTL time.Duration
	// NegativeTTL is how long an answer of "no such API or stage", and a
	// failed read of an account, is remembered before AWS is asked again
	// (default 5m).
	NegativeTTL time.Duration
	// Jitter spreads refreshes by ±Jitter×TTL so that accounts loaded
	// together do not refresh together (default 0.1; negative: none).
	Jitter float64
	// MaxStages bounds the stages cached over all accounts and regions
	// (default 100000).
	MaxStages int

	// RatePerSecond and Burst limit AWS calls per account. API Gateway allows
	// 10 control-plane requests/s with a burst of 40 per account, shared with
	// every other caller (deployments included); stay within it.
	RatePerSecond float64
	Burst         int

	// MaxWait bounds how long one Lookup waits for a stage that is not
	// cached yet (default 200ms). After that the record goes on, flagged
	// partial.
	MaxWait time.Duration
	// CallTimeout bounds each AWS call attempt (default 10s).
	CallTimeout time.Duration
	// MaxAttempts is how often a retryable AWS call is tried (default 3).
	MaxAttempts int
	// RetryBase is the first retry delay, doubled per attempt with full
	// jitter (default 200ms).
	RetryBase time.Duration

	// StaticTags are added to every record ("key:value", as given).
	StaticTags []string
	// Mappings name the stage of log groups (or Firehose delivery streams)
	// whose records carry no API id and stage of their own.
	Mappings []Mapping

	// OnFormat receives each stage's access-log format with the log group
	// (or Firehose delivery stream name) it is written to, whenever it is
	// first seen or changes; an empty format means access logging was turned
	// off. It is called from refresh goroutines, never from Lookup.
	OnFormat func(logGroup, format string)

	// HTTPClient carries every AWS call; default: the aws.Config's, else the
	// SDK's client with CallTimeout.
	HTTPClient aws.HTTPClient
	Logger     *slog.Logger
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
}

// Mapping names the stage of a log group.
type Mapping struct {
	// LogGroup is a path.Match glob over the log group name, or the Firehose
	// delivery stream name for direct access-log delivery.
	LogGroup string
	APIID    string
	Stage    string // optional: without it, the API's tags apply
	// Account and Region, when set, replace what the record says.
	Account string
	Region  string
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.RoleTemplate != "" {
		if !strings.Contains(c.RoleTemplate, accountPlaceholder) {
			errs = append(errs, fmt.Errorf("role_template %q: must contain %s", c.RoleTemplate, accountPlaceholder))
		} else if err := validRoleARN(strings.ReplaceAll(c.RoleTemplate, accountPlaceholder, "123456789012")); err != nil {
			errs = append(errs, fmt.Errorf("role_template: %w", err))
		}
	}
	for acct, role := range c.RoleOverrides {
		if !validAccount(acct) {
			errs = append(errs, fmt.Errorf("role_overrides: %q is not a 12-digit account id", acct))
		}
		if err := validRoleARN(role); err != nil {
			errs = append(errs, fmt.Errorf("role_overrides[%s]: %w", acct, err))
		}
	}
	if len(c.RoleSessionName) > 64 {
		errs = append(errs, errors.New("role_session_name: longer than 64 characters"))
	}
	if c.DefaultRegion != "" && !validRegion(c.DefaultRegion) {
		errs = append(errs, fmt.Errorf("default_region %q: not a region name", c.DefaultRegion))
	}
	for src, r := range c.SourceRegions {
		if !validRegion(r) {
			errs = append(errs, fmt.Errorf("source_regions[%s] %q: not a region name", src, r))
		}
	}
	for name, d := range map[string]time.Duration{"ttl": c.TTL, "negative_ttl": c.NegativeTTL, "max_wait": c.MaxWait, "call_timeout": c.CallTimeout, "retry_base": c.RetryBase} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: negative duration %s", name, d))
		}
	}
	if c.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("jitter %.2f: must be below 1", c.Jitter))
	}
	if c.MaxStages < 0 || c.Burst < 0 || c.MaxAttempts < 0 || c.RatePerSecond < 0 {
		errs = append(errs, errors.New("max_stages, burst, max_attempts and rate_per_second must not be negative"))
	}
	for i, t := range c.StaticTags {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, ", \t\n") {
			errs = append(errs, fmt.Errorf("tags[%d] %q: a tag is non-empty and has no comma or blank", i, t))
		}
	}
	for i, m := range c.Mappings {
		if m.LogGroup == "" {
			errs = append(errs, fmt.Errorf("mappings[%d]: log_group is required", i))
		} else if _, err := path.Match(m.LogGroup, ""); err != nil {
			errs = append(errs, fmt.Errorf("mappings[%d] log_group %q: %w", i, m.LogGroup, err))
		}
		if m.APIID == "" {
			errs = append(errs, fmt.Errorf("mappings[%d]: api_id is required", i))
		}
		if m.Account != "" && !validAccount(m.Account) {
			errs = append(errs, fmt.Errorf("mappings[%d]: account %q is not a 12-digit account id", i, m.Account))
		}
		if m.Region != "" && !validRegion(m.Region) {
			errs = append(errs, fmt.Errorf("mappings[%d]: region %q is not a region name", i, m.Region))
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy with every zero value replaced by its default.
func (c Config) withDefaults() Config {
	if c.RoleSessionName == "" {
		c.RoleSessionName = DefaultSessionName
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	} else if c.Jitter < 0 {
		c.Jitter = 0
	}
	if c.MaxStages == 0 {
		c.MaxStages = DefaultMaxStages
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = DefaultRatePerSecond
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBase == 0 {
		c.RetryBase = DefaultRetryBase
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

// validAccount reports whether s is a 12-digit AWS account id. Records carry
// whatever their source said; only plausible ids reach AWS.
func validAccount(s string) bool {
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
