package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config/check"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddmetrics"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
)

// Sites are Datadog's sites (DD_SITE); datadog.site also takes another
// host name (a proxy, a test intake), never a URL.
var Sites = []string{"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com"}

// keyRE matches what a component's message starts with when it names its
// key: max_wait, mappings[0].api_id, role_overrides[123456789012].
var keyRE = regexp.MustCompile(`^[a-z0-9_]+(\[[^\]]*\])?(\.[a-z0-9_]+(\[[^\]]*\])?)*$`)

// problems gathers Validate's findings, each under its full key.
type problems struct {
	list []problem
}

type problem struct{ key, msg string }

func (p *problems) add(key, format string, a ...any) {
	p.list = append(p.list, problem{key, fmt.Sprintf(format, a...)})
}

// section adds a component's Validate findings: each starts with the
// component's own key, which becomes prefix.key. A finding about a key
// already reported is left out.
func (p *problems) section(prefix string, err error) {
	p.sectionAs(prefix, err, func(key string) (string, bool) { return join(prefix, key), true })
}

// sectionAs is section with the full key of each finding given by full
// (false: leave the finding out).
func (p *problems) sectionAs(prefix string, err error, full func(key string) (string, bool)) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p.sectionAs(prefix, e, full)
		}
		return
	}
	key, msg, ok := strings.Cut(err.Error(), ": ")
	if !ok || !keyRE.MatchString(key) {
		p.list = append(p.list, problem{prefix, err.Error()})
		return
	}
	k, keep := full(key)
	if !keep || slices.ContainsFunc(p.list, func(q problem) bool { return q.key == k }) {
		return // said already (a negative duration, say)
	}
	p.list = append(p.list, problem{k, msg})
}

func (p *problems) has(prefix string) bool {
	return slices.ContainsFunc(p.list, func(q problem) bool { return q.key == prefix || strings.HasPrefix(q.key, prefix+".") })
}

// err is every problem, one per line, without the secrets URLs carry. A
// key a variable set is followed by the variable, which is where the value
// is to be fixed.
func (p *problems) err(c Config) error {
	errs := make([]error, len(p.list))
	for i, q := range p.list {
		msg := q.msg
		if q.key != "" {
			key := q.key
			if env := c.setByOf(key); env != "" {
				key += " (set by " + env + ")"
			}
			msg = key + ": " + msg
		}
		errs[i] = errors.New(redact.URL(msg))
	}
	return errors.Join(errs...)
}

// Validate reports every problem, each with the full key that fixes it:
// everything `gwpipe run` would refuse (the access-log templates compiled,
// the enrich mappings and roles, the metric-stream and transport settings,
// the Datadog clients' settings), and values no setting makes sense with
// (a negative duration, a port out of range, DD_SITE given as a URL). It
// reads no file and calls nothing on the network.
func (c Config) Validate() error {
	var p problems
	c.validateValues(&p)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		p.add("log.format", "must be text or json, not %q", c.Log.Format)
	}

	p.section("transport", c.Transport.TransportConfig.Validate())
	if fd := c.Transport.FleetDedup; fd.Enabled && c.Transport.Kind == "nats" {
		p.section("transport.fleet_dedup", fd.Validate())
	}
	if c.Transport.DedupWindow < 0 {
		p.add("transport.dedup_window", "must be ≥ 0 (0: off), got %d", c.Transport.DedupWindow)
	}

	p.section("pipeline", c.Pipeline.Runtime.Validate())
	p.section("pipeline", c.Pipeline.Config.Validate())
	if c.Pipeline.DrainTimeout <= 0 {
		p.add("pipeline.drain_timeout", "must be positive, got %s", c.Pipeline.DrainTimeout)
	}
	t := c.Pipeline.Topics
	for _, tp := range []struct{ key, v string }{{"raw", t.Raw}, {"decoded", t.Decoded}, {"parsed", t.Parsed}, {"enriched", t.Enriched}, {"metrics", t.Metrics}, {"dlq", t.DLQ}} {
		if tp.v == "" || strings.ContainsAny(tp.v, ". *>") {
			p.add("pipeline.topics."+tp.key, "must be a non-empty name without '.', ' ', '*' or '>' (NATS subjects), got %q", tp.v)
		}
	}

	p.section("sources.firehose", c.Sources.Firehose.Validate())
	p.section("sources.sqs", c.Sources.SQS.Validate())
	p.section("decode", c.Decode.Validate())
	p.section("parse", c.Parse.Config.Validate())
	p.section("parse.correlation", c.Parse.Correlation.CorrelatorConfig.Validate())
	c.validateEnrich(&p)
	p.section("filters", c.Filters.Validate())
	c.validateDatadog(&p)
	c.validateMetrics(&p)
	p.section("dlq", c.DLQ.Validate())
	c.validateAdmin(&p)
	c.validateReplay(&p)
	return p.err(c)
}

// validateValues applies the rules that hold for every key of a kind: no
// negative duration, no number that is not finite. A key's own checks
// then add nothing about a value refused here.
func (c Config) validateValues(p *problems) {
	root := reflect.ValueOf(c)
	for _, k := range schema() {
		v := root.FieldByIndex(k.index)
		switch {
		case k.typ == reflect.TypeFor[time.Duration]() && v.Int() < 0:
			p.add(k.name, "must not be negative, got %s", time.Duration(v.Int()))
		case k.typ.Kind() == reflect.Float64 && (math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0)):
			p.add(k.name, "must be a finite number, got %v", v.Float())
		}
	}
}

func (c Config) validateEnrich(p *problems) {
	e := c.Enrich
	p.section("enrich", e.Config.Validate())
	for i, t := range e.Tags {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, ", \t\n") {
			p.add(fmt.Sprintf("enrich.tags[%d]", i), "%q: a tag is non-empty and has no comma or blank", t)
		}
	}
	if e.AWSTags {
		// API Gateway's control plane allows 10 requests/s, burst 40, per
		// account, shared with every other caller.
		if !(e.RatePerSecond > 0 && e.RatePerSecond <= 10) || e.Burst < 1 || e.Burst > 40 {
			p.add("enrich.rate_per_second", "must be in (0, 10] with enrich.burst 1..40: API Gateway's control plane allows 10/s, burst 40, per account")
		}
		if e.MaxWait > 10*time.Second {
			p.add("enrich.max_wait", "must be 0 to 10s, got %s", e.MaxWait)
		}
	}
}

func (c Config) validateDatadog(p *problems) {
	d := c.Datadog
	if d.APIKey == "" {
		p.add("datadog.api_key", "a Datadog API key is required (set DD_API_KEY)")
	}
	switch {
	case d.Site == "" && (d.LogsURL == "" || d.APIURL == ""):
		p.add("datadog.site", "must be set (DD_SITE), or set datadog.logs_url and datadog.api_url")
	case d.Site == "" || slices.Contains(Sites, d.Site):
	case strings.Contains(d.Site, "://") || strings.Contains(d.Site, "/"):
		p.add("datadog.site", "must be a site name such as datadoghq.eu (one of %s), not a URL: %q (a URL goes in datadog.logs_url and datadog.api_url)", strings.Join(Sites, ", "), d.Site)
	case !check.HostName(d.Site) || !strings.Contains(d.Site, "."):
		p.add("datadog.site", "must be a Datadog site (%s) or a host name, got %q", strings.Join(Sites, ", "), d.Site)
	}
	if !p.has("datadog.site") {
		for _, u := range []struct{ key, v string }{{"datadog.logs_url", c.LogsURL()}, {"datadog.api_url", c.APIURL()}} {
			if err := check.URL(u.v, "http", "https"); err != nil {
				p.add(u.key, "%v", err)
			}
		}
	}
	p.client("datadog.logs", c.LogsClient().Validate())
}

// client adds a Datadog client's Validate findings under section, but
// those about what the datadog section gives the client (its URL, the API
// key) under that section's keys, where they are fixed; unless the datadog
// section has been found wrong already: they would only say it again.
func (p *problems) client(section string, err error) {
	moved := map[string]string{"url": "datadog.logs_url", "api_url": "datadog.api_url", "api_key": "datadog.api_key"}
	ownFound := p.has("datadog.api_key") || p.has("datadog.site") || p.has("datadog.logs_url") || p.has("datadog.api_url")
	p.sectionAs(section, err, func(key string) (string, bool) {
		to, ok := moved[key]
		if !ok {
			return join(section, key), true
		}
		return to, !ownFound
	})
}

func (c Config) validateMetrics(p *problems) {
	m := c.Metrics
	if !m.Enabled {
		return
	}
	p.section("metrics", m.Config.Validate())
	if !p.has("metrics.window") && (m.Window < time.Second || m.Window%time.Second != 0) {
		p.add("metrics.window", "must be a whole number of seconds, at least 1s, got %s", m.Window)
	}
	if !p.has("metrics.tick") && m.Tick <= 0 {
		p.add("metrics.tick", "must be positive, got %s", m.Tick)
	}
	if tl := m.Telemetry; tl.Enabled {
		if err := ddmetrics.CheckDogStatsDAddr(tl.DogStatsDAddr); err != nil {
			p.add("metrics.telemetry.dogstatsd_addr", "%v", err)
		}
		if tl.Interval <= 0 {
			p.add("metrics.telemetry.interval", "must be positive, got %s", tl.Interval)
		}
	}
	p.client("metrics.delivery", c.MetricsClient().Validate())
	if m.Streams.Enabled {
		p.section("metrics.streams", m.Streams.Config.Validate())
	}
	if len(m.Poller.Accounts) > 0 {
		p.section("metrics.poller", m.Poller.Validate())
		if m.Poller.Lag == 0 {
			// The poller reads a zero Lag as its default (2m): refuse it
			// rather than poll two minutes later than asked, silently.
			p.add("metrics.poller.lag", "must be at least 1s (0 would be read as the default, 2m)")
		}
		if url, _ := m.Poller.StateLocation(); strings.HasPrefix(url, "nats-kv://") && c.Transport.Kind != "nats" {
			p.add("metrics.poller.state_url", "%s needs transport.kind nats (the bucket is on its server), got %q", url, c.Transport.Kind)
		}
	}
}

func (c Config) validateAdmin(p *problems) {
	a := c.Admin
	if a.Listen != "" {
		if err := check.Listen(a.Listen); err != nil {
			p.add("admin.listen", "%v", err)
		}
	}
	if a.HealthListen != "" {
		if err := check.Listen(a.HealthListen); err != nil {
			p.add("admin.health_listen", "%v", err)
		} else if a.HealthListen == a.Listen && !strings.HasSuffix(a.HealthListen, ":0") {
			p.add("admin.health_listen", "must differ from admin.listen (%s): it is a second listener serving /healthz, /readyz and /metrics alone", a.Listen)
		}
	}
	if a.Pprof && a.Listen == "" {
		p.add("admin.pprof", "needs admin.listen: profiles are served there")
	}
	p.section("admin.tls", a.TLS.Validate())
}

func (c Config) validateReplay(p *problems) {
	r := c.Replay
	switch r.SelectBy {
	case "auto", "key", "modified", "none":
	default:
		p.add("replay.select_by", "must be auto, key, modified or none, not %q", r.SelectBy)
	}
	if r.Concurrency < 1 || r.Concurrency > 1024 {
		p.add("replay.concurrency", "must be 1 to 1024, got %d", r.Concurrency)
	}
	if r.Rate < 0 {
		p.add("replay.rate", "must be ≥ 0 events per second (0: unlimited)")
	}
	switch r.OldLogs {
	case "skip", "retimestamp":
	default:
		p.add("replay.old_logs", "must be skip or retimestamp, not %q", r.OldLogs)
	}
	if !p.has("replay.max_age") && (r.MaxAge <= 0 || r.MaxAge > ddlogs.MaxLogAge) {
		p.add("replay.max_age", "must be positive and at most 18h (Datadog drops older logs), got %s", r.MaxAge)
	}
	if r.MaxInFlightEvents < 1 {
		p.add("replay.max_inflight_events", "must be positive, got %d", r.MaxInFlightEvents)
	}
	if r.EventsPerBatch < 1 || r.EventsPerBatch > 100_000 {
		p.add("replay.events_per_batch", "must be 1 to 100000, got %d", r.EventsPerBatch)
	}
	if r.Bucket != "" && r.DLQ != "" {
		p.add("replay.dlq", "replays a dead-letter archive instead of replay.bucket: set one of them")
	}
	if strings.HasPrefix(r.DLQ, "s3://") {
		if _, _, err := dlq.ParseS3URL(r.DLQ); err != nil {
			p.add("replay.dlq", "%v", err)
		}
	}
	if strings.HasPrefix(r.Bucket, "s3://") || strings.Contains(r.Bucket, "/") {
		p.add("replay.bucket", "must be a bucket name (put the rest in replay.prefix), got %q", r.Bucket)
	}
	if _, _, err := r.TimeRange(time.Now()); err != nil {
		p.section("", err)
	}
	p.section("replay.lease", r.Lease.Validate())
	if strings.HasPrefix(r.Checkpoint, "s3://") {
		if b, k, err := dlq.ParseS3URL(r.Checkpoint); errors.Is(err, dlq.ErrS3Credentials) {
			p.add("replay.checkpoint", "%v", err)
		} else if err != nil || b == "" || strings.TrimSuffix(k, "/") == "" {
			p.add("replay.checkpoint", "an S3 checkpoint is s3://bucket/key (an object), got %q", r.Checkpoint)
		}
	}
}
