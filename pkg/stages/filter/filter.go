// Package filter scrubs, filters and samples the logs gwpipe sends to
// Datadog: built-in redaction of IP and e-mail addresses, custom scrubbing
// rules, the Datadog Forwarder's include/exclude expressions, dropping by
// parsed attributes, and deterministic sampling by request.
//
// It applies where logs leave for Datadog, after the metrics from logs
// have counted them, so that filtering never changes those metrics. A
// batch is never modified: other stages may read it at the same time (one
// process), so what changes is copied.
//
// The compiled filters are swapped atomically (Filters.Load), so that a
// reload never stops delivery; each rule's counters live as long as its
// name does.
package filter

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// KeySampleRate is the attribute every log kept by a sample rule carries:
// its rule's rate, so that log analytics can weight it by 1/rate.
const KeySampleRate = "gwpipe.sample_rate"

// Filters is the filter set in use, safe for concurrent use.
type Filters struct {
	cur   atomic.Pointer[set]
	reg   *telemetry.Registry
	mu    sync.Mutex
	stats map[string]*RuleStats // by rule name, across loads
}

// New compiles c; reg (nil: none) receives each rule's counters.
func New(c Config, reg *telemetry.Registry) (*Filters, error) {
	f := &Filters{reg: reg, stats: map[string]*RuleStats{}}
	if err := f.Load(c); err != nil {
		return nil, err
	}
	return f, nil
}

// Load compiles c and puts it in use at once; a batch being filtered
// finishes with the set it started with. On error the set in use stays.
func (f *Filters) Load(c Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("filters: %w", err)
	}
	s, err := f.compile(c)
	if err != nil {
		return fmt.Errorf("filters: %w", err)
	}
	f.cur.Store(s)
	return nil
}

// Apply returns b, or a copy of b without the logs dropped, sampled out or
// excluded, and with what the scrubbing rules matched replaced. b is not
// modified. A nil Filters returns b.
func (f *Filters) Apply(b *record.Batch) *record.Batch {
	out, count := f.ApplyUncounted(b)
	count()
	return out
}

// ApplyUncounted is Apply without counting: count adds what the rules did
// to their counters. A stage calls it once the batch is done, so that a
// batch that fails and comes again is counted once.
func (f *Filters) ApplyUncounted(b *record.Batch) (out *record.Batch, count func()) {
	if f == nil {
		return b, func() {}
	}
	s := f.cur.Load()
	if s == nil || s.empty {
		return b, func() {}
	}
	return s.apply(b, false)
}

// Scrub returns b, or a copy of b with what the scrubbing rules (redact,
// rules) matched replaced, every log kept and nothing counted: what an
// operator's view of the logs (gwpipe tap) shows, so that what the
// configuration keeps from Datadog does not leave the process there
// either. b is not modified. A nil Filters returns b.
func (f *Filters) Scrub(b *record.Batch) *record.Batch {
	if f == nil {
		return b
	}
	s := f.cur.Load()
	if s == nil || len(s.scrubs) == 0 {
		return b
	}
	out, _ := s.apply(b, true)
	return out
}

// RuleStats are one rule's counters.
type RuleStats struct {
	Matched    *telemetry.Counter // logs the rule matched (scrubbing: logs it changed)
	Redacted   *telemetry.Counter // replacements the scrubbing rule made
	Dropped    *telemetry.Counter // logs dropped by it (drop, include/exclude)
	SampledOut *telemetry.Counter // logs its sampling left out
}

// Stats returns the counters of a rule by name (ip, email, a rule's name,
// include_at_match, exclude_at_match, drop[i] or sample[i] when unnamed);
// nil for a rule never loaded.
func (f *Filters) Stats(name string) *RuleStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats[name]
}

func (f *Filters) statsFor(name string) *RuleStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.stats[name]
	if !ok {
		st = newRuleStats(f.reg, name)
		f.stats[name] = st
	}
	return st
}

// set is one compiled configuration.
type set struct {
	empty            bool
	scrubs           []*scrubber
	scoped           bool // a scrubber has a scope
	exclude, include *pattern
	excludeSt        *RuleStats
	includeSt        *RuleStats
	drop             []*matcher
	sample           []*sampler
}

// scrubber is a built-in or custom scrubbing rule.
type scrubber struct {
	fns   []func(dst, s []byte) ([]byte, int)
	scope *scope // nil: every log
	st    *RuleStats
}

type scope struct {
	logGroups, apiIDs, stages []string
}

type matcher struct {
	st          *RuleStats
	route       string
	method      []byte
	status      int
	statusClass int // 2 for 2xx; 0: any
	apiID       string
	apiName     string
	stage       string
	logGroup    string
	kind        record.Kind
	anyKind     bool
	attr, value string
	hasValue    bool
	needsReq    bool
	needsTags   bool
}

type sampler struct {
	matcher
	all       bool   // rate 1
	threshold uint64 // keep when the request's hash is below it
	rate      []byte // the rate as delivered in KeySampleRate
}

func (f *Filters) compile(c Config) (*set, error) {
	s := &set{empty: c.Empty()}
	for _, r := range c.Redact {
		sc := &scrubber{st: f.statsFor(r)}
		switch r {
		case RedactIP:
			// IPv6 first: it masks an IPv4-mapped address whole.
			sc.fns = append(sc.fns, redactIPv6, redactIPv4)
		case RedactEmail:
			sc.fns = append(sc.fns, redactEmail)
		}
		s.scrubs = append(s.scrubs, sc)
	}
	for _, r := range c.Rules {
		p, err := compilePattern(r.Pattern)
		if err != nil {
			return nil, fmt.Errorf("rules %s: %w", r.Name, err)
		}
		repl := []byte(r.Replace)
		sc := &scrubber{st: f.statsFor(r.Name), fns: []func(dst, s []byte) ([]byte, int){
			func(dst, in []byte) ([]byte, int) { return p.replace(dst, in, repl) },
		}}
		if len(r.LogGroups)+len(r.APIIDs)+len(r.Stages) > 0 {
			sc.scope = &scope{logGroups: r.LogGroups, apiIDs: tagValues(r.APIIDs), stages: tagValues(r.Stages)}
			s.scoped = true
		}
		s.scrubs = append(s.scrubs, sc)
	}
	var err error
	if c.ExcludeAtMatch != "" {
		if s.exclude, err = compilePattern(c.ExcludeAtMatch); err != nil {
			return nil, fmt.Errorf("exclude_at_match: %w", err)
		}
		s.excludeSt = f.statsFor("exclude_at_match")
	}
	if c.IncludeAtMatch != "" {
		if s.include, err = compilePattern(c.IncludeAtMatch); err != nil {
			return nil, fmt.Errorf("include_at_match: %w", err)
		}
		s.includeSt = f.statsFor("include_at_match")
	}
	for i, m := range c.Drop {
		s.drop = append(s.drop, compileMatcher(m, f.statsFor(cmp(m.Name, fmt.Sprintf("drop[%d]", i)))))
	}
	for i, m := range c.Sample {
		rate := *m.Rate
		sm := &sampler{matcher: *compileMatcher(m.Matcher, f.statsFor(cmp(m.Name, fmt.Sprintf("sample[%d]", i))))}
		sm.all = rate >= 1
		if !sm.all {
			// rate·2⁶⁴, below 2⁶⁴ since rate < 1.
			sm.threshold = uint64(math.Ldexp(rate, 64))
		}
		sm.rate = strconv.AppendFloat(nil, rate, 'g', -1, 64)
		s.sample = append(s.sample, sm)
	}
	return s, nil
}

// tagValues are configured API ids, names or stages as the log's tags
// write them (see view.api).
func tagValues(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = awstags.NormalizeValue(v)
	}
	return out
}

func compileMatcher(m Matcher, st *RuleStats) *matcher {
	c := &matcher{
		st: st, route: m.Route, logGroup: m.LogGroup, attr: m.Attribute, value: m.Value, hasValue: m.Value != "",
		apiID: awstags.NormalizeValue(m.APIID), apiName: awstags.NormalizeValue(m.APIName), stage: awstags.NormalizeValue(m.Stage),
	}
	if m.Method != "" {
		c.method = []byte(m.Method)
	}
	if m.Status != nil {
		c.status = *m.Status
	}
	if m.StatusClass != "" {
		c.statusClass = int(m.StatusClass[0] - '0')
	}
	c.kind, c.anyKind = logTypes[m.LogType], m.LogType == ""
	c.needsReq = c.route != "" || c.method != nil || c.status != 0 || c.statusClass != 0
	c.needsTags = c.apiID != "" || c.apiName != "" || c.stage != ""
	return c
}

// view is what the matchers read from one record, each part read once
// when first asked for.
type view struct {
	r       *record.Record
	req     derive.Request
	readReq bool
	readTag bool
	apiID   string
	apiName string
	stage   string
	// partial: the log carries awstags.PartialTag, its stage's tags were
	// not known in time (AWS slow or unreachable, a cold cache), so its
	// API and stage may be unknown here although it has them.
	partial bool
}

func (v *view) request() *derive.Request {
	if !v.readReq {
		derive.ReadRequest(v.r, nil, &v.req)
		v.readReq = true
	}
	return &v.req
}

// api reads the API's id, name and stage from the tags enrichment added,
// else (id and stage) from the log's own attributes. Both are compared as
// the tags write them (awstags.NormalizeValue: lower case, "$default" is
// "_default"), and so are the configured values: AWS shows the stage
// `Prod` that the tag stage:prod names.
func (v *view) api() {
	if v.readTag {
		return
	}
	v.readTag = true
	for _, t := range v.r.Tags {
		if t == awstags.PartialTag {
			v.partial = true
			continue
		}
		k, val, ok := cut(t)
		if !ok {
			continue
		}
		switch {
		case k == "apiid" && v.apiID == "":
			v.apiID = val
		case k == "apiname" && v.apiName == "":
			v.apiName = val
		case k == "stage" && v.stage == "":
			v.stage = val
		}
	}
	if v.apiID == "" || v.stage == "" {
		// Aliased, not copied (two allocations per log): a view lives for
		// one record's decision, and its strings are only compared.
		req := v.request()
		// Clean values, the usual, are returned as they are: no copy.
		if v.apiID == "" {
			v.apiID = awstags.NormalizeValue(str(req.APIID))
		}
		if v.stage == "" {
			v.stage = awstags.NormalizeValue(str(req.Stage))
		}
	}
}

func cut(tag string) (k, v string, ok bool) {
	for i := 0; i < len(tag); i++ {
		if tag[i] == ':' {
			return tag[:i], tag[i+1:], i > 0 && i < len(tag)-1
		}
	}
	return "", "", false
}

func (v *view) logGroup() string {
	if v.r.Origin == nil {
		return ""
	}
	return v.r.Origin.LogGroup
}

func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (m *matcher) match(v *view) bool {
	r := v.r
	if !m.anyKind && r.Kind != m.kind {
		return false
	}
	if m.logGroup != "" && !apigw.GlobMatch(m.logGroup, v.logGroup()) {
		return false
	}
	if m.needsReq {
		req := v.request()
		if m.method != nil && !bytes.EqualFold(req.Method, m.method) {
			return false
		}
		if m.route != "" && (len(req.Route) == 0 || !apigw.GlobMatch(m.route, str(req.Route))) {
			return false
		}
		if m.status != 0 && req.Status != m.status {
			return false
		}
		if m.statusClass != 0 && req.Status/100 != m.statusClass {
			return false
		}
	}
	if m.needsTags {
		v.api()
		if (m.apiID != "" && v.apiID != m.apiID) || (m.apiName != "" && v.apiName != m.apiName) || (m.stage != "" && v.stage != m.stage) {
			return false
		}
	}
	if m.attr != "" {
		a, ok := r.Attr(m.attr)
		if !ok || (m.hasValue && !attrEquals(&a, m.value)) {
			return false
		}
	}
	return true
}

// attrEquals compares an attribute's value, as delivered, with s.
func attrEquals(a *record.Attr, s string) bool {
	switch a.Kind {
	case record.String, record.Number:
		return str(a.Str) == s
	case record.Int:
		var buf [24]byte
		return str(strconv.AppendInt(buf[:0], a.Int, 10)) == s
	case record.Bool:
		return (a.Int != 0 && s == "true") || (a.Int == 0 && s == "false")
	case record.Null:
		return s == "null"
	}
	return false
}

func (sc *scope) contains(v *view) bool {
	if len(sc.logGroups) > 0 {
		lg, ok := v.logGroup(), false
		for _, g := range sc.logGroups {
			if apigw.GlobMatch(g, lg) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(sc.apiIDs) > 0 || len(sc.stages) > 0 {
		v.api()
		// A log whose API or stage was not known in time may be in the
		// scope: scrubbed, rather than its secrets sent to Datadog for as
		// long as AWS does not answer.
		if len(sc.apiIDs) > 0 && !contains(sc.apiIDs, v.apiID) && (v.apiID != "" || !v.partial) {
			return false
		}
		if len(sc.stages) > 0 && !contains(sc.stages, v.stage) && (v.stage != "" || !v.partial) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sampleKey is what a log is sampled by: its request id, which the access
// log and the execution-log lines of a request share, so that every worker
// keeps or drops them alike; else its CloudWatch event id; else its text.
func sampleKey(r *record.Record) []byte {
	for i := range r.Attrs {
		a := &r.Attrs[i]
		if a.Key == apigw.KeyRequestID && a.Kind == record.String && len(a.Str) > 0 {
			return a.Str
		}
	}
	if r.EventID != "" {
		return unsafe.Slice(unsafe.StringData(r.EventID), len(r.EventID))
	}
	return r.Message
}

// hash64 is FNV-1a with a final avalanche (splitmix64's), so that its high
// bits, compared with a rate's threshold, are uniform.
func hash64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Sampled reports whether a log with the given sampling key (its request
// id) is kept at rate: the same answer in every process, and a key kept
// at a rate is kept at every higher rate.
func Sampled(key []byte, rate float64) bool {
	if rate >= 1 {
		return true
	}
	return hash64(key) < uint64(math.Ldexp(max(rate, 0), 64))
}
