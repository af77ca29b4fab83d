package loadgen

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Limits of the Firehose HTTP endpoint protocol and CloudWatch Logs that the
// configuration is checked against
// (docs/wire-formats.md#cloudwatch-framings, docs/wire-formats.md#firehose-request).
const (
	MaxRecordsPerRequest = 10000 // records[] of one Firehose request
	MaxEventsPerRecord   = 10000 // logEvents[] of one CloudWatch envelope
)

// Config describes the traffic to generate and how to send it. The zero value
// of every field means "use the default" (see DefaultConfig), except where a
// zero is meaningful (Events, Duration, Rate, ControlRate, Seed, Instance).
type Config struct {
	// Delivery.
	URL         string // Firehose HTTP endpoint destination
	AccessKey   string // sent as X-Amz-Firehose-Access-Key when not empty
	Events      int64  // total events to send; 0 = until Duration or ctx ends
	Duration    time.Duration
	Rate        float64 // events per second; 0 = as fast as possible
	Concurrency int     // requests in flight

	// Packing.
	RecordsPerRequest int     // Firehose records per request (upper bound)
	EventsPerRecord   int     // CloudWatch events per envelope (upper bound)
	GzipBody          bool    // Content-Encoding: gzip on the whole request body
	GzipLevel         int     // level for envelopes and body (klauspost/compress levels)
	Direct            bool    // API Gateway → Firehose directly: one access-log line per record
	ControlRate       float64 // probability that a request carries one CONTROL_MESSAGE record
	StreamName        string  // delivery stream of CloudWatch-subscription traffic (direct mode: amazon-apigateway-{api}-{stage})
	FilterName        string  // subscriptionFilters[0] of the envelopes

	// Universe and traffic.
	Accounts int
	APIs     int
	Stages   int // stages per API
	Mix      Mix
	Seed     int64
	Instance uint16 // distinguishes generators that share a Seed (part of event ids)

	// Clock returns "now"; event and request timestamps are derived from it.
	// Nil means time.Now.
	Clock func() time.Time

	// Firehose retry emulation (docs/wire-formats.md#firehose-retries-and-backup).
	InitialBackoff time.Duration // first retry delay; doubles each retry
	MaxBackoff     time.Duration // cap of one retry delay
	RetryDuration  time.Duration // total backoff budget after the first failure; < 0 = no retries
	RequestTimeout time.Duration // one attempt (Firehose waits 3 minutes)
}

// Default values.
const (
	DefaultURL            = "http://127.0.0.1:8088/"
	DefaultStreamName     = "gwpipe-apigateway-logs"
	DefaultFilterName     = "gwpipe"
	DefaultConcurrency    = 4
	DefaultRecords        = 50
	DefaultEventsInRecord = 50
	DefaultAccounts       = 3
	DefaultAPIs           = 8
	DefaultStages         = 3
	DefaultGzipLevel      = gzip.BestSpeed
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 2 * time.Minute
	DefaultRetryDuration  = 5 * time.Minute
	DefaultRequestTimeout = 3 * time.Minute
)

// DefaultMix is the event mix used when Config.Mix is zero.
var DefaultMix = Mix{JSON: 6, CLF: 2, Exec: 2}

// DefaultConfig returns a configuration with every default filled in.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with zero-valued fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	c.URL = cmp.Or(c.URL, DefaultURL)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.RecordsPerRequest = cmp.Or(c.RecordsPerRequest, DefaultRecords)
	c.EventsPerRecord = cmp.Or(c.EventsPerRecord, DefaultEventsInRecord)
	c.GzipLevel = cmp.Or(c.GzipLevel, DefaultGzipLevel)
	c.StreamName = cmp.Or(c.StreamName, DefaultStreamName)
	c.FilterName = cmp.Or(c.FilterName, DefaultFilterName)
	c.Accounts = cmp.Or(c.Accounts, DefaultAccounts)
	c.APIs = cmp.Or(c.APIs, DefaultAPIs)
	c.Stages = cmp.Or(c.Stages, DefaultStages)
	c.Mix = cmp.Or(c.Mix, DefaultMix)
	c.InitialBackoff = cmp.Or(c.InitialBackoff, DefaultInitialBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.RetryDuration = cmp.Or(c.RetryDuration, DefaultRetryDuration)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	return c
}

// Validate reports every problem of c (after defaults are applied).
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url %q: want an absolute http(s) URL", c.URL)
	}
	if c.Events < 0 {
		bad("events %d: must not be negative", c.Events)
	}
	if c.Duration < 0 {
		bad("duration %v: must not be negative", c.Duration)
	}
	if c.Rate < 0 {
		bad("rate %v: must not be negative", c.Rate)
	}
	if c.Concurrency < 1 {
		bad("concurrency %d: must be at least 1", c.Concurrency)
	}
	if c.RecordsPerRequest < 1 || c.RecordsPerRequest > MaxRecordsPerRequest {
		bad("records per request %d: must be in 1..%d", c.RecordsPerRequest, MaxRecordsPerRequest)
	}
	if c.EventsPerRecord < 1 || c.EventsPerRecord > MaxEventsPerRecord {
		bad("events per record %d: must be in 1..%d", c.EventsPerRecord, MaxEventsPerRecord)
	}
	if c.GzipLevel < gzip.HuffmanOnly || c.GzipLevel > gzip.BestCompression {
		bad("gzip level %d: must be in %d..%d", c.GzipLevel, gzip.HuffmanOnly, gzip.BestCompression)
	}
	if c.ControlRate < 0 || c.ControlRate > 1 {
		bad("control rate %v: must be in 0..1", c.ControlRate)
	}
	if c.Accounts < 1 || c.Accounts > 1000 {
		bad("accounts %d: must be in 1..1000", c.Accounts)
	}
	if c.APIs < c.Accounts || c.APIs > 10000 {
		bad("apis %d: must be in accounts(%d)..10000 (every account has an API)", c.APIs, c.Accounts)
	}
	if c.Stages < 1 || c.Stages > 100 {
		bad("stages %d: must be in 1..100", c.Stages)
	}
	if err := c.Mix.validate(c.Direct); err != nil {
		errs = append(errs, err)
	}
	if c.InitialBackoff < 0 || c.MaxBackoff < c.InitialBackoff {
		bad("backoff %v..%v: want 0 < initial <= max", c.InitialBackoff, c.MaxBackoff)
	}
	if c.RequestTimeout < 0 {
		bad("request timeout %v: must not be negative", c.RequestTimeout)
	}
	return errors.Join(errs...)
}

// maxEventsPerRequest is the most real events one request can carry.
func (c Config) maxEventsPerRequest() int {
	if c.Direct {
		return c.RecordsPerRequest
	}
	return c.RecordsPerRequest * c.EventsPerRecord
}

// Kind is the kind of a generated log event.
type Kind uint8

const (
	AccessJSON Kind = iota // access log, Datadog's JSON format (unquoted numbers)
	AccessCLF              // access log, the console's REST CLF format
	Execution              // one REST execution-log line
)

var kindNames = [...]string{"json", "clf", "exec"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Mix holds the relative weights of event kinds, in events. It implements
// flag.Value with the syntax "json=6,clf=2,exec=2".
type Mix struct {
	JSON, CLF, Exec int
}

// ParseMix parses "json=6,clf=2,exec=2"; kinds not named get weight 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	if strings.TrimSpace(s) == "" {
		return m, errors.New("mix: empty")
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix: %q: want kind=weight", part)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 {
			return Mix{}, fmt.Errorf("mix: %q: weight must be a non-negative integer", part)
		}
		if seen[name] {
			return Mix{}, fmt.Errorf("mix: %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "json":
			m.JSON = w
		case "clf":
			m.CLF = w
		case "exec", "execution":
			m.Exec = w
		default:
			return Mix{}, fmt.Errorf("mix: unknown kind %q (want json, clf, exec)", name)
		}
	}
	if m == (Mix{}) {
		return Mix{}, errors.New("mix: all weights are zero")
	}
	return m, nil
}

// String renders the mix in ParseMix syntax.
func (m Mix) String() string {
	return "json=" + strconv.Itoa(m.JSON) + ",clf=" + strconv.Itoa(m.CLF) + ",exec=" + strconv.Itoa(m.Exec)
}

// Set implements flag.Value.
func (m *Mix) Set(s string) error {
	v, err := ParseMix(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func (m Mix) validate(direct bool) error {
	if m.JSON < 0 || m.CLF < 0 || m.Exec < 0 {
		return fmt.Errorf("mix %s: weights must not be negative", m)
	}
	if direct && m.JSON+m.CLF == 0 {
		return fmt.Errorf("mix %s: direct mode carries access logs only; json or clf needs a weight", m)
	}
	if m.JSON+m.CLF+m.Exec == 0 {
		return fmt.Errorf("mix %s: all weights are zero", m)
	}
	return nil
}
