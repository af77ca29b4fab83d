package ddhttp

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config/check"
	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

// Config is what every Datadog HTTP client of gwpipe configures the same
// way. The logs and metrics clients embed it inline, so its keys sit
// beside theirs (datadog.logs.concurrency, metrics.delivery.retry_max, …).
type Config struct {
	// Concurrency bounds the requests in flight, and the bodies being
	// compressed, at once.
	Concurrency int `yaml:"concurrency"`
	// RequestTimeout bounds one HTTP attempt.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Backoff paces the attempts to send one payload (retry_initial,
	// retry_max); an answer's Retry-After is a floor for the next one.
	Backoff backoff.Policy `yaml:",inline"`
}

// Defaults.
const (
	DefaultConcurrency     = 4
	DefaultRequestTimeout  = 30 * time.Second
	DefaultInitialInterval = 500 * time.Millisecond
	DefaultMaxInterval     = 30 * time.Second
	MaxConcurrency         = 1024
)

// DefaultConfig is the one place the defaults live.
func DefaultConfig() Config {
	return Config{
		Concurrency:    DefaultConcurrency,
		RequestTimeout: DefaultRequestTimeout,
		Backoff:        backoff.Exponential(DefaultInitialInterval, DefaultMaxInterval),
	}
}

// Validate reports every invalid field, each message starting with its key.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency: must be 1..%d, got %d", MaxConcurrency, c.Concurrency))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request_timeout: must be positive, got %v", c.RequestTimeout))
	}
	return errors.Join(append(errs, c.Backoff.Validate())...)
}

// DefaultSite is the Datadog site when none is given.
const DefaultSite = "datadoghq.com"

// SiteURL is the base URL of a Datadog site's service host:
// SiteURL("api", "datadoghq.eu") is "https://api.datadoghq.eu". An empty
// site means DefaultSite.
func SiteURL(service, site string) string {
	site = strings.TrimSpace(site)
	if site == "" {
		site = DefaultSite
	}
	return "https://" + service + "." + site
}

// ValidateURL checks an endpoint URL; key names it in the message. The rule
// is check.URL's, so datadog.logs_url in the top-level configuration and
// url/api_url here judge one value the same way.
func ValidateURL(key, u string) error {
	if err := check.URL(u, "https", "http"); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// ValidateAPIKey checks the API key, without ever quoting it.
func ValidateAPIKey(key string) error {
	switch {
	case key == "":
		return errors.New("api_key: is required (the Datadog API key, sent as DD-API-KEY)")
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return errors.New("api_key: contains whitespace or control characters")
	}
	return nil
}
