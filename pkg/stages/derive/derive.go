package derive

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Series dimensions, in key and tag order. The first three identify the API
// for the cardinality guard.
const (
	dimAccount = iota
	dimRegion
	dimAPIID
	dimAPIName
	dimStage
	dimMethod
	dimResource
	dimStatusClass
	dimEventType
	numFixedDims
)

// numAPIDims are the dimensions of the API and its stage (0-4).
const numAPIDims = dimStage + 1

// FixedTagKeys are the tag keys every metric may carry, in order. A key is
// left out of a point's tags when the record had no value for it.
var FixedTagKeys = [numFixedDims]string{
	"aws_account", "region", "apiid", "apiname", "stage", "method", "resource", "status_class", "event_type",
}

// ResourceOther is the resource value records are folded into beyond
// MaxResourcesPerAPI.
const ResourceOther = "other"

func fixedDim(k string) int {
	for i, f := range FixedTagKeys {
		if f == k {
			return i
		}
	}
	return -1
}

// Metric names, after the namespace.
const (
	NameCount          = "count"
	Name4xxError       = "4xxerror"
	Name5xxError       = "5xxerror"
	Name4xx            = "4xx"
	Name5xx            = "5xx"
	NameThrottled      = "throttled"
	NameIntegError     = "integration_error"
	NameConnect        = "connect_count"
	NameMessage        = "message_count"
	NameDisconnect     = "disconnect_count"
	NameClientError    = "client_error"
	NameExecutionError = "execution_error"
	NameCacheHit       = "cache_hit_count"
	NameCacheMiss      = "cache_miss_count"
	NameLatency        = "latency"
	NameIntegLatency   = "integration_latency"
	NameResponseSize   = "response_size"
)

type names struct {
	count, e4xxREST, e5xxREST, e4xx, e5xx, throttled, integErr  string
	connect, message, disconnect, clientErr, execErr, hit, miss string
	latency, integLatency, size                                 string
	rest, http                                                  bool
}

func newNames(ns string, errs string) names {
	return names{
		count: ns + NameCount, e4xxREST: ns + Name4xxError, e5xxREST: ns + Name5xxError, e4xx: ns + Name4xx, e5xx: ns + Name5xx,
		throttled: ns + NameThrottled, integErr: ns + NameIntegError,
		connect: ns + NameConnect, message: ns + NameMessage, disconnect: ns + NameDisconnect,
		clientErr: ns + NameClientError, execErr: ns + NameExecutionError,
		hit: ns + NameCacheHit, miss: ns + NameCacheMiss,
		latency: ns + NameLatency, integLatency: ns + NameIntegLatency, size: ns + NameResponseSize,
		rest: errs != ErrorMetricsHTTP, http: errs != ErrorMetricsREST,
	}
}

// Stats are a Deriver's counters. Record counts are in records, point
// counts in metric points.
type Stats struct {
	Records          int64 // access logs and request summaries aggregated
	Ignored          int64 // records of other kinds (execution lines, other logs, …)
	CountedBefore    int64 // records counted when they first passed (Origin.Counted): not again
	SummariesSkipped int64 // summaries of stages that have access logs
	SummariesWaiting int64 // summaries waiting for their stage's first access log (a gauge)
	TooOld           int64 // records older than MaxAge: not aggregated
	TooNew           int64 // records more than MaxFuture ahead: not aggregated
	Late             int64 // records aggregated into a late generation of a closed window
	LateDropped      int64 // records for a window whose every flush slot was used
	Folded           int64 // records counted under resource:other by the cardinality guard
	SeriesDropped    int64 // records dropped because a window held MaxSeriesPerWindow series
	Windows          int64 // window generations flushed
	PointsEmitted    int64 // metric points handed to the output
	PointsTooOld     int64 // points older than MaxAge at flush: dropped
	RecordsExpired   int64 // records aggregated into those dropped points
	EmitErrors       int64 // failed Emit calls (their batches are kept and retried)
	PendingBatches   int64 // metric batches waiting to be emitted again
	PendingPoints    int64 // metric points in those batches
	OpenSeries       int64 // series held in open windows
}

// Deriver is the derive stage: it aggregates access logs and request
// summaries into event-time windows and emits metric batches when windows
// close. It is safe for concurrent use.
type Deriver struct {
	cfg      Config
	names    names
	winSec   int64
	winMs    int64
	lateMs   int64
	maxAgeMs int64
	futureMs int64
	finalAge time.Duration
	nDims    int
	// allow is the tag allowlist in use (under mu); nextAllow is the one
	// SetTagAllowlist set last, taken up by the next Handle.
	allow     *allowlist
	nextAllow atomic.Pointer[allowlist]
	hosts     [2]string

	mu        sync.Mutex // guards everything below, up to pmu
	lanes     [2]lane
	stageSeen map[string]*stageMark
	// summaryOnly holds the stages whose summaries came with no access log
	// seen, and deferred their summaries still waiting for one (auto mode,
	// see summaryCounts).
	summaryOnly map[string]*summaryMark
	deferred    []deferredSummary
	deciding    bool // the deferred are being decided: none waits again
	catalog     map[string]*series
	lastNow     time.Time // processing time of the current add
	lastPrune   time.Time
	key         []byte
	alt         []byte
	skey        []byte
	req         Request
	reader      *Reader
	n           Stats

	// The tags of consecutive records are usually one shared slice (the
	// enrichment shares it per origin): its parse is kept.
	tagsP     *string
	tagsN     int
	tagVals   []val
	tagReplay bool
	tagsFull  bool   // tagVals has account, region, apiid and stage
	prefix    []byte // when tagsFull: the encoded dimensions 0-4
	apiEnd    int    // the API identity's end in prefix
	suffix    []byte // the encoded allowlist dimensions
	sawP      *string
	sawAt     time.Time

	// The accumulators found last by the record's own values (see
	// cachedAcc): a hit skips building the series key and looking it up.
	cache   *[accCacheSize]cachedAcc
	epoch   uint64            // changes when a window's accumulators are taken out
	tagsID  uint64            // names prefix and suffix (content) when tagsFull
	tagIDs  map[string]uint64 // prefix+suffix → tagsID
	nextID  uint64
	noCache bool // tests: the uncached path only
	// When the tags lack some of the API's dimensions: the prefix of the
	// values last completed from a record (fallbackPrefix), and when
	// sawAccess was called for it.
	fbValid   bool
	fbPrefix  []byte
	fbApiEnd  int
	fbID      uint64
	fbSawID   uint64
	fbSawAt   time.Time
	cacheMask int // accCacheSize-1; tests use fewer slots
	cacheBuf  []byte

	pmu     sync.Mutex // guards pending
	pending []*record.Batch

	seq atomic.Uint64
}

type stageMark struct{ last time.Time }

// summaryMark is when a stage's first and latest summaries came while no
// access log of it was known.
type summaryMark struct{ first, last time.Time }

// deferredSummary is a copy of a summary record (the batch it came in is
// released once Handle returns) and when it is decided.
type deferredSummary struct {
	rec record.Record
	due time.Time
}

// lane is a stream of windows with its own watermark: live traffic and
// replays advance event time independently, and write under different hosts.
type lane struct {
	host      string
	watermark int64 // ms: the largest event time seen, capped at processing time
	windows   map[int64]*window
	last      *window
}

// window is one event-time window. It is flushed in generations: the first
// when it closes, later ones for records that arrive after that, each
// stamped one second later (see package doc).
type window struct {
	start  int64 // seconds
	gen    int
	opened time.Time // when the current generation got its first record
	accs   map[string]*acc
	apis   map[string]*apiCard
	done   bool // every slot is used
}

type apiCard struct{ resources map[string]struct{} }

// series is what every window's accumulator of one key shares: the key and
// the tags are built once, not once per window.
type series struct {
	key      string
	tags     []string
	class    int8  // 1-5, 0 unknown
	ws       int8  // 1 connect, 2 message, 3 disconnect
	lastUsed int64 // processing time (unix seconds) the series last opened an accumulator
	// Sizes of the previous window's distributions: the next window's
	// slices start there instead of growing by doubling.
	hintLat, hintInteg, hintSize int32
}

// acc accumulates one series of one window generation.
type acc struct {
	*series
	count, throttled, integErr, cacheHit, cacheMiss int64
	latency, integ, size                            []float64
}

// val is a dimension value taken from a tag (s) or an attribute (b).
type val struct {
	s string
	b []byte
}

func (v val) len() int { return len(v.s) + len(v.b) }

// New returns a Deriver. reg, when not nil, receives the "derive.*"
// counters (see Stats).
func New(cfg Config, reg *telemetry.Registry) (*Deriver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host := cfg.EffectiveHost()
	cfg = cfg.withDefaults()
	d := &Deriver{
		cfg:         cfg,
		names:       newNames(cfg.Namespace, cfg.ErrorMetrics),
		winSec:      int64(cfg.Window / time.Second),
		lateMs:      cfg.AllowedLateness.Milliseconds(),
		maxAgeMs:    cfg.MaxAge.Milliseconds(),
		futureMs:    cfg.MaxFuture.Milliseconds(),
		finalAge:    cfg.MaxAge * 11 / 12,
		hosts:       [2]string{host, host + cfg.ReplayHostSuffix},
		stageSeen:   map[string]*stageMark{},
		summaryOnly: map[string]*summaryMark{},
		catalog:     map[string]*series{},
		cache:       new([accCacheSize]cachedAcc),
		cacheMask:   accCacheSize - 1,
		tagIDs:      map[string]uint64{},
		key:         make([]byte, 0, 256),
		alt:         make([]byte, 0, 256),
	}
	d.winMs = d.winSec * 1000
	d.reader = NewReader(cfg.CacheStatusKeys)
	d.useAllowlist(newAllowlist(cfg.TagAllowlist))
	for i := range d.lanes {
		d.lanes[i] = lane{host: d.hosts[i], windows: map[int64]*window{}}
	}
	if reg != nil {
		d.registerMetrics(reg)
	}
	return d, nil
}

// Hosts returns the hosts written on live and on replayed points.
func (d *Deriver) Hosts() (live, replay string) { return d.hosts[0], d.hosts[1] }

// Handle aggregates the batch's access logs and request summaries, then
// emits a metric batch for every window generation that closed. The input
// is done once aggregated: its acknowledgement does not wait for the
// windows (see package doc). Emission failures never fail the input (a
// retry would count it twice): the metric batches are kept and emitted again
// on the next Handle, Tick or Flush.
func (d *Deriver) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	now := d.cfg.Now()
	d.mu.Lock()
	if a := d.nextAllow.Load(); a != nil && a != d.allow {
		d.useAllowlist(a)
	}
	for i := range in.Records {
		d.add(&in.Records[i], now)
	}
	closed := d.collect(now, false)
	d.mu.Unlock()
	if err := d.emit(ctx, out, d.build(closed, now)); err != nil {
		d.cfg.Logger.Warn("derive: metric batches could not be emitted; kept for the next attempt", "error", err)
	}
	return nil
}

// Tick flushes the window generations due at now (processing time), so a
// quiet pipeline still delivers its windows, and retries pending emissions.
// Call it about every second.
func (d *Deriver) Tick(ctx context.Context, now time.Time, out stage.Output) error {
	d.mu.Lock()
	d.decideDeferred(now, false)
	closed := d.collect(now, false)
	d.pruneStages(now)
	if d.lastPrune.IsZero() || now.Sub(d.lastPrune) >= time.Minute || now.Before(d.lastPrune) {
		d.pruneCatalog(now.Add(-catalogTTL).Unix())
		d.lastPrune = now
	}
	d.mu.Unlock()
	err := d.emit(ctx, out, d.build(closed, now))
	return err
}

// Flush closes every open window generation and emits it, with any pending
// batches: call it at shutdown, after the input has drained, so that a clean
// shutdown loses nothing. Records that arrive later still count, in later
// generations.
func (d *Deriver) Flush(ctx context.Context, out stage.Output) error {
	now := d.cfg.Now()
	d.mu.Lock()
	d.decideDeferred(now, true)
	closed := d.collect(now, true)
	d.mu.Unlock()
	err := d.emit(ctx, out, d.build(closed, now))
	return err
}

// Run calls Tick every interval until ctx ends. Errors are logged: the
// batches they concern stay pending.
func (d *Deriver) Run(ctx context.Context, out stage.Output, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Tick(ctx, d.cfg.Now(), out); err != nil && ctx.Err() == nil {
				d.cfg.Logger.Warn("derive: metric batches could not be emitted; kept for the next attempt", "error", err)
			}
		}
	}
}

// Stats returns the counters.
func (d *Deriver) Stats() Stats {
	d.mu.Lock()
	s := d.n
	for i := range d.lanes {
		for _, w := range d.lanes[i].windows {
			s.OpenSeries += int64(len(w.accs))
		}
	}
	d.mu.Unlock()
	d.pmu.Lock()
	s.PendingBatches = int64(len(d.pending))
	for _, b := range d.pending {
		s.PendingPoints += int64(b.Len())
	}
	d.pmu.Unlock()
	return s
}

// add aggregates one record. d.mu is held.
func (d *Deriver) add(rec *record.Record, now time.Time) {
	switch rec.Kind {
	case record.KindAccess, record.KindSummary:
	default:
		d.n.Ignored++
		return
	}
	if rec.Origin != nil && rec.Origin.Counted {
		// A replayed letter of deliver-logs: this stage counted it before
		// deliver-logs refused it.
		d.n.CountedBefore++
		return
	}
	d.lastNow = now
	r := &d.req
	d.reader.Read(rec, r)
	tp := unsafe.SliceData(rec.Tags)
	if tp == nil || tp != d.tagsP || len(rec.Tags) != d.tagsN {
		clear(d.tagVals)
		d.tagReplay = d.readTags(rec, d.tagVals)
		d.tagsP, d.tagsN = tp, len(rec.Tags)
		tv := d.tagVals
		d.tagsFull = tv[dimAccount].len() > 0 && tv[dimRegion].len() > 0 && tv[dimAPIID].len() > 0 && tv[dimStage].len() > 0
		if d.tagsFull {
			d.prefix, d.apiEnd = d.appendAPI(d.prefix[:0], tv)
		}
		d.suffix = d.allow.appendSuffix(d.suffix[:0], tv)
		if d.tagsFull {
			d.tagsID = d.idOf(d.prefix, d.suffix)
		}
		d.fbValid = false
	}
	// The API's dimensions (0-4), completed from the record where its
	// tags lack them, in an array on the stack: a copy into the heap
	// costs a write barrier per pointer while the GC runs. The allowlisted
	// dimensions are in d.suffix already.
	var api [numAPIDims]val
	copy(api[:], d.tagVals[:numAPIDims])
	vals := api[:]
	replay := d.tagReplay
	if vals[dimAccount].len() == 0 {
		if len(r.Account) > 0 {
			vals[dimAccount].b = r.Account
		} else if rec.Origin != nil {
			vals[dimAccount].s = rec.Origin.Account
		}
	}
	if vals[dimRegion].len() == 0 && rec.Origin != nil {
		vals[dimRegion].s = rec.Origin.Region
	}
	if vals[dimAPIID].len() == 0 {
		vals[dimAPIID].b = r.APIID
	}
	if vals[dimStage].len() == 0 {
		vals[dimStage].b = r.Stage
	}
	// The API's encoded dimensions: d.prefix when the tags have them all;
	// else (but with noCache) those of the values completed from the
	// record, kept while records complete them alike. id names them
	// with the allowlisted tags.
	known, prefix, apiEnd, id := d.tagsFull, d.prefix, d.apiEnd, d.tagsID
	if !known && !d.noCache {
		known, prefix, apiEnd, id = d.fallbackPrefix(vals)
	}
	if d.cfg.Summaries == SummariesAuto {
		if rec.Kind == record.KindAccess {
			// Once a second per shared tag slice, or per API completed
			// alike, is enough: the memory is minutes long.
			if d.tagsFull {
				if tp != d.sawP || now.Sub(d.sawAt) >= time.Second || now.Before(d.sawAt) {
					d.sawAccess(vals, now)
					d.sawP, d.sawAt = tp, now
				}
			} else if !known || id != d.fbSawID || now.Sub(d.fbSawAt) >= time.Second || now.Before(d.fbSawAt) {
				d.sawAccess(vals, now)
				if known {
					d.fbSawID, d.fbSawAt = id, now
				}
			}
		} else {
			switch decision, due := d.summaryCounts(vals, r, now); decision {
			case summarySkip:
				d.n.SummariesSkipped++
				return
			case summaryWait:
				d.deferSummary(rec, due)
				return
			}
		}
	} else if rec.Kind == record.KindSummary && d.cfg.Summaries == SummariesNever {
		d.n.SummariesSkipped++
		return
	}

	nowMs := now.UnixMilli()
	ts := rec.Timestamp
	if ts <= 0 {
		ts = nowMs
	}
	if ts < nowMs-d.maxAgeMs {
		d.n.TooOld++
		return
	}
	if ts > nowMs+d.futureMs {
		d.n.TooNew++
		return
	}
	li := 0
	if replay || (rec.Origin != nil && rec.Origin.Replay) {
		li = 1
	}
	ln := &d.lanes[li]
	if wm := min(ts, nowMs); wm > ln.watermark {
		ln.watermark = wm
	}
	start := floorDiv(ts, d.winMs) * d.winSec
	w := ln.last
	if w == nil || w.start != start {
		w = ln.windows[start]
		if w == nil {
			w = &window{start: start}
			ln.windows[start] = w
		}
		ln.last = w
	}
	if w.done {
		d.n.LateDropped++
		return
	}

	class := int8(r.Status / 100)
	var (
		a  *acc
		ce *cachedAcc
	)
	if known && !d.noCache && len(r.Method) <= maxTagValue && len(r.Route) <= maxTagValue && len(r.EventType) <= maxTagValue {
		ce = &d.cache[accCacheIndex(id, class, r.Method, r.Route, r.EventType)&d.cacheMask]
		if ce.a != nil && ce.w == w && ce.epoch == d.epoch && ce.tagsID == id && ce.same(r.Method, r.Route, class, r.EventType) {
			a = ce.a
		}
	}
	if a == nil {
		if !known {
			prefix, apiEnd = d.appendAPI(d.key[:0], vals)
		}
		if a = d.lookup(w, r, prefix, apiEnd, id, class, now, ce); a == nil {
			return
		}
	}
	if w.gen > 0 {
		d.n.Late++
	}
	d.n.Records++
	a.count++
	if r.Throttled {
		a.throttled++
	}
	if r.IntegrationError {
		a.integErr++
	}
	switch r.Cache {
	case CacheHit:
		a.cacheHit++
	case CacheMiss:
		a.cacheMiss++
	}
	if r.HasLatency {
		a.latency = append(a.latency, r.LatencyMS)
	}
	if r.HasIntegLatency {
		a.integ = append(a.integ, r.IntegLatencyMS)
	}
	if r.HasResponseSize {
		a.size = append(a.size, r.ResponseBytes)
	}
}

// lookup finds the accumulator of the record's series in w by its key,
// or makes it (newSeries); nil means the record is dropped (counted). An
// accumulator found under the key is remembered in ce, when not nil, under
// id. prefix is the encoded API (appendAPI), in d.key or not.
func (d *Deriver) lookup(w *window, r *Request, prefix []byte, apiEnd int, id uint64, class int8, now time.Time, ce *cachedAcc) *acc {
	// The series key: every dimension, length-prefixed.
	k := append(d.key[:0], prefix...)
	k = appendVal(k, val{b: r.Method}, true)
	resStart := len(k)
	k = appendVal(k, val{b: r.Route}, false)
	resEnd := len(k)
	k = append(k, 1, '0'+byte(class))
	k = appendVal(k, val{b: r.EventType}, true)
	k = append(k, d.suffix...)
	d.key = k

	if w.accs == nil {
		w.accs = make(map[string]*acc, 64)
		w.opened = now
	} else if len(w.accs) == 0 {
		w.opened = now
	}
	if a := w.accs[string(k)]; a != nil {
		if ce != nil {
			*ce = cachedAcc{w: w, a: a, epoch: d.epoch, tagsID: id, off: len(prefix)}
		}
		return a
	}
	// Not remembered: a key folded into resource:other or dropped is
	// counted by newSeries at every record.
	return d.newSeries(w, k, apiEnd, resStart, resEnd)
}

// fallbackPrefix is the encoded API (appendAPI) of vals, the record's
// values completed from its attributes and origin, with the id of its
// content and the allowlisted tags: the last one's while vals are alike.
// Not known (false) when a value is clipped.
func (d *Deriver) fallbackPrefix(vals []val) (known bool, prefix []byte, apiEnd int, id uint64) {
	if !d.fbValid || !prefixHolds(d.fbPrefix, vals) {
		for _, v := range vals {
			if v.len() > maxTagValue {
				return false, nil, 0, 0
			}
		}
		d.fbPrefix, d.fbApiEnd = d.appendAPI(d.fbPrefix[:0], vals)
		d.fbID = d.idOf(d.fbPrefix, d.suffix)
		d.fbValid = true
	}
	return true, d.fbPrefix, d.fbApiEnd, d.fbID
}

// prefixHolds reports whether p is appendAPI's encoding of vals, none of
// them clipped.
func prefixHolds(p []byte, vals []val) bool {
	for _, v := range vals[:numAPIDims] {
		n := v.len()
		if len(p) < 1+n || int(p[0]) != n {
			return false
		}
		if v.s != "" {
			if string(p[1:1+n]) != v.s {
				return false
			}
		} else if string(p[1:1+n]) != string(v.b) {
			return false
		}
		p = p[1+n:]
	}
	return len(p) == 0
}

// accCacheSize is the number of accumulators remembered (a power of 2).
const accCacheSize = 1024

// cachedAcc remembers the accumulator of window w that a record's own
// values (method, route, status class and event type as read) selected
// under the tags named tagsID, as long as w keeps its accumulators
// (epoch). A record is checked against the accumulator's own series key,
// as the key is built (appendVal): values longer than maxTagValue, which
// the key clips, are not remembered.
type cachedAcc struct {
	w      *window
	a      *acc
	epoch  uint64
	tagsID uint64
	off    int // where the method starts in a.key
}

// same reports whether the record's values are those of ce's key.
func (ce *cachedAcc) same(method, route []byte, class int8, event []byte) bool {
	k := ce.a.key[ce.off:]
	if len(k) < 1+len(method) || int(k[0]) != len(method) || !equalLower(k[1:1+len(method)], method) {
		return false
	}
	k = k[1+len(method):]
	if len(k) < 1+len(route) || int(k[0]) != len(route) || k[1:1+len(route)] != string(route) {
		return false
	}
	k = k[1+len(route):]
	if len(k) < 3+len(event) || k[0] != 1 || k[1] != '0'+byte(class) || int(k[2]) != len(event) {
		return false
	}
	return equalLower(k[3:3+len(event)], event)
}

// equalLower reports whether k is b ASCII-lower-cased, as appendVal
// writes it.
func equalLower(k string, b []byte) bool {
	if len(k) != len(b) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if k[i] != c {
			return false
		}
	}
	return true
}

// accCacheIndex is the cache slot of a record's values.
func accCacheIndex(tagsID uint64, class int8, method, route, event []byte) int {
	h := tagsID*0x9e3779b97f4a7c15 ^ uint64(class)<<56 ^ uint64(len(method))<<48 ^ uint64(len(event))<<40
	if len(method) > 0 {
		h ^= uint64(method[0])<<32 | uint64(method[len(method)-1])<<24
	}
	if len(event) > 0 {
		h ^= uint64(event[0]) << 16
	}
	for _, c := range route {
		h = (h ^ uint64(c)) * 0x100000001b3
	}
	h ^= h >> 32
	h *= 0x9e3779b97f4a7c15
	return int(h >> (64 - 10))
}

// idOf names the content of prefix and suffix for the cache: the same
// tags get the same id. The table is cleared when large, and the cache
// with it.
func (d *Deriver) idOf(prefix, suffix []byte) uint64 {
	b := append(append(d.cacheBuf[:0], prefix...), suffix...)
	d.cacheBuf = b
	if id, ok := d.tagIDs[string(b)]; ok {
		return id
	}
	if len(d.tagIDs) >= 4096 {
		clear(d.tagIDs)
		d.epoch++
	}
	d.nextID++
	d.tagIDs[string(b)] = d.nextID
	return d.nextID
}

// appendAPI appends the dimensions 0-4 (the API and its stage), and returns
// where the API identity (account, region, apiid) ends.
func (d *Deriver) appendAPI(k []byte, vals []val) ([]byte, int) {
	k = appendVal(k, vals[dimAccount], false)
	k = appendVal(k, vals[dimRegion], false)
	k = appendVal(k, vals[dimAPIID], false)
	apiEnd := len(k)
	k = appendVal(k, vals[dimAPIName], false)
	k = appendVal(k, vals[dimStage], false)
	return k, apiEnd
}

// newSeries finds or creates the accumulator of a key that is not in the
// window yet, applying the cardinality guard. nil means the record is
// dropped (counted).
func (d *Deriver) newSeries(w *window, k []byte, apiEnd, resStart, resEnd int) *acc {
	K := d.cfg.MaxResourcesPerAPI
	if resEnd-resStart > 1 && K > 0 {
		if w.apis == nil {
			w.apis = map[string]*apiCard{}
		}
		card := w.apis[string(k[:apiEnd])]
		if card == nil {
			card = &apiCard{resources: map[string]struct{}{}}
			w.apis[string(k[:apiEnd])] = card
		}
		res := k[resStart+1 : resEnd]
		if _, ok := card.resources[string(res)]; !ok {
			if len(card.resources) >= K && string(res) != ResourceOther {
				d.n.Folded++
				o := append(d.alt[:0], k[:resStart]...)
				o = append(o, byte(len(ResourceOther)))
				o = append(o, ResourceOther...)
				o = append(o, k[resEnd:]...)
				d.alt = o
				if a := w.accs[string(o)]; a != nil {
					return a
				}
				k = o
			} else {
				card.resources[string(res)] = struct{}{}
			}
		}
	}
	if len(w.accs) >= d.cfg.MaxSeriesPerWindow {
		d.n.SeriesDropped++
		return nil
	}
	sr := d.catalog[string(k)]
	if sr == nil {
		if len(d.catalog) >= 2*d.cfg.MaxSeriesPerWindow {
			d.pruneCatalog(d.lastNow.Unix() - 1)
		}
		sr = d.makeSeries(k)
		d.catalog[sr.key] = sr
	}
	sr.lastUsed = d.lastNow.Unix()
	a := &acc{series: sr}
	if sr.hintLat > 0 {
		a.latency = make([]float64, 0, sizeHint(sr.hintLat))
	}
	if sr.hintInteg > 0 {
		a.integ = make([]float64, 0, sizeHint(sr.hintInteg))
	}
	if sr.hintSize > 0 {
		a.size = make([]float64, 0, sizeHint(sr.hintSize))
	}
	w.accs[sr.key] = a
	return a
}

// sizeHint is the capacity to start a distribution with, after a window
// that held n values.
func sizeHint(n int32) int { return int(n) + int(n)/4 + 1 }

// catalogTTL is how long an unused series stays in the catalog.
const catalogTTL = 5 * time.Minute

// pruneCatalog forgets the series that opened no accumulator since before
// (unix seconds); the windows holding them keep them.
func (d *Deriver) pruneCatalog(before int64) {
	for k, sr := range d.catalog {
		if sr.lastUsed < before {
			delete(d.catalog, k)
		}
	}
}

// makeSeries decodes a key into the series' tags.
func (d *Deriver) makeSeries(k []byte) *series {
	a := &series{key: string(k), tags: make([]string, 0, d.nDims)}
	for i := 0; i < numFixedDims && len(k) > 0; i++ {
		n := int(k[0])
		v := k[1 : 1+n]
		k = k[1+n:]
		switch i {
		case dimStatusClass:
			a.class = int8(v[0] - '0')
			if a.class >= 1 && a.class <= 5 {
				a.tags = append(a.tags, "status_class:"+string(v)+"xx")
			} else {
				a.tags = append(a.tags, "status_class:unknown")
			}
			continue
		case dimEventType:
			switch string(v) {
			case "connect":
				a.ws = 1
			case "message":
				a.ws = 2
			case "disconnect":
				a.ws = 3
			}
		}
		if n == 0 {
			continue
		}
		a.tags = append(a.tags, FixedTagKeys[i]+":"+string(v))
	}
	a.tags = appendAllowedTags(a.tags, k)
	return a
}

// appendVal appends a length-prefixed dimension value, clipped to
// maxTagValue bytes at a UTF-8 boundary, optionally lower-cased (ASCII).
func appendVal(k []byte, v val, lower bool) []byte {
	n := v.len()
	if n > maxTagValue {
		n = maxTagValue
		for n > 0 && !utf8.RuneStart(byteAt(v, n)) {
			n--
		}
	}
	k = append(k, byte(n))
	start := len(k)
	if v.s != "" {
		k = append(k, v.s[:n]...)
	} else {
		k = append(k, v.b[:n]...)
	}
	if lower {
		for i := start; i < len(k); i++ {
			if c := k[i]; c >= 'A' && c <= 'Z' {
				k[i] = c + 'a' - 'A'
			}
		}
	}
	return k
}

func byteAt(v val, i int) byte {
	if v.s != "" {
		return v.s[i]
	}
	return v.b[i]
}

// readTags takes the fixed API tags and the allowlisted ones from rec.Tags
// (first occurrence wins), and reports whether the record is a replay.
func (d *Deriver) readTags(rec *record.Record, vals []val) (replay bool) {
	for _, t := range rec.Tags {
		i := strings.IndexByte(t, ':')
		if i <= 0 || i == len(t)-1 {
			continue
		}
		k, v := t[:i], t[i+1:]
		dim := -1
		switch k {
		case "aws_account":
			dim = dimAccount
		case "region":
			dim = dimRegion
		case "apiid":
			dim = dimAPIID
		case "apiname":
			dim = dimAPIName
		case "stage":
			dim = dimStage
		default:
			if k == "replay" && v == "true" {
				replay = true
			}
			if j, ok := d.allow.dims[k]; ok {
				dim = j
			}
		}
		if dim >= 0 && vals[dim].len() == 0 {
			vals[dim].s = v
		}
	}
	return replay
}

// sawAccess remembers that the record's stage writes access logs.
func (d *Deriver) sawAccess(vals []val, now time.Time) {
	k := d.stageKey(vals)
	if m := d.stageSeen[string(k)]; m != nil {
		m.last = now
		return
	}
	d.stageSeen[string(k)] = &stageMark{last: now}
}

// Summary decisions in auto mode (summaryCounts).
const (
	summaryCount = iota
	summarySkip
	summaryWait
)

// summaryCounts decides, in auto mode, whether a request summary counts: not
// when its stage is known to write access logs (which count instead). When
// the record does not say and no access log of the stage has been seen, the
// summary waits (deferSummary) until the stage has had summaries for
// Config.SummaryGrace: the two log groups of a stage arrive independently
// (other Firehose requests, other batches, other workers), so the first
// summaries after a start often come before the first access log, and
// counting them at once would count their requests twice.
func (d *Deriver) summaryCounts(vals []val, r *Request, now time.Time) (decision int, due time.Time) {
	switch r.StageAccessLogs {
	case 1:
		return summarySkip, time.Time{}
	case -1:
		return summaryCount, time.Time{}
	}
	k := d.stageKey(vals)
	if m := d.stageSeen[string(k)]; m != nil && now.Sub(m.last) <= d.cfg.AccessLogMemory {
		return summarySkip, time.Time{}
	}
	m := d.summaryOnly[string(k)]
	if m == nil || now.Sub(m.last) > d.cfg.AccessLogMemory {
		m = &summaryMark{first: now}
		d.summaryOnly[string(k)] = m
	}
	if now.After(m.last) {
		m.last = now
	}
	if d.deciding || now.Sub(m.first) >= d.cfg.SummaryGrace || len(d.deferred) >= maxDeferredSummaries {
		return summaryCount, time.Time{}
	}
	return summaryWait, m.first.Add(d.cfg.SummaryGrace)
}

// maxDeferredSummaries bounds the memory of summaries waiting for their
// stage's first access log (a few hundred bytes each); beyond it they count
// at once.
const maxDeferredSummaries = 100_000

// deferSummary keeps a copy of rec until due.
func (d *Deriver) deferSummary(rec *record.Record, due time.Time) {
	d.deferred = append(d.deferred, deferredSummary{rec: cloneRecord(rec), due: due})
	d.n.SummariesWaiting++
}

// decideDeferred aggregates or skips the deferred summaries due at now
// (all of them when all is set, at shutdown). d.mu is held.
func (d *Deriver) decideDeferred(now time.Time, all bool) {
	if len(d.deferred) == 0 {
		return
	}
	d.deciding = true
	defer func() { d.deciding = false }()
	keep := d.deferred[:0]
	for i := range d.deferred {
		ds := &d.deferred[i]
		if !all && now.Before(ds.due) {
			keep = append(keep, *ds)
			continue
		}
		d.n.SummariesWaiting--
		d.add(&ds.rec, now)
	}
	clear(d.deferred[len(keep):])
	d.deferred = keep
}

// cloneRecord copies what derive reads of a record (attributes, tags,
// origin) out of its batch's memory.
func cloneRecord(rec *record.Record) record.Record {
	c := record.Record{Kind: rec.Kind, Timestamp: rec.Timestamp, Attrs: make([]record.Attr, len(rec.Attrs))}
	for i, a := range rec.Attrs {
		c.Attrs[i] = record.Attr{Key: strings.Clone(a.Key), Kind: a.Kind, Str: bytes.Clone(a.Str), Int: a.Int}
	}
	if rec.Tags != nil {
		c.Tags = make([]string, len(rec.Tags))
		for i, t := range rec.Tags {
			c.Tags[i] = strings.Clone(t)
		}
	}
	if o := rec.Origin; o != nil {
		c.Origin = &record.Origin{Source: strings.Clone(o.Source), Account: strings.Clone(o.Account),
			Region: strings.Clone(o.Region), LogGroup: strings.Clone(o.LogGroup), Replay: o.Replay, Counted: o.Counted}
	}
	return c
}

func (d *Deriver) stageKey(vals []val) []byte {
	k := d.skey[:0]
	for _, i := range [...]int{dimAccount, dimRegion, dimAPIID, dimStage} {
		k = appendVal(k, vals[i], false)
	}
	d.skey = k
	return k
}

func (d *Deriver) pruneStages(now time.Time) {
	for k, m := range d.stageSeen {
		if now.Sub(m.last) > d.cfg.AccessLogMemory {
			delete(d.stageSeen, k)
		}
	}
	for k, m := range d.summaryOnly {
		if now.Sub(m.last) > d.cfg.AccessLogMemory {
			delete(d.summaryOnly, k)
		}
	}
}

// flushed is one window generation taken out for emission.
type flushed struct {
	host string
	ts   int64 // seconds: window start + generation
	accs map[string]*acc
}

// collect takes out every window generation that is due (all of them when
// force), and forgets windows too old to matter. d.mu is held.
func (d *Deriver) collect(now time.Time, force bool) []flushed {
	var out []flushed
	nowMs := now.UnixMilli()
	for li := range d.lanes {
		ln := &d.lanes[li]
		for start, w := range ln.windows {
			tooOld := start*1000+d.winMs < nowMs-d.maxAgeMs
			if len(w.accs) > 0 && (force || tooOld || d.due(ln, w, now)) {
				for _, a := range w.accs { // under d.mu: the series are shared with add
					a.hintLat, a.hintInteg, a.hintSize = int32(len(a.latency)), int32(len(a.integ)), int32(len(a.size))
				}
				out = append(out, flushed{host: ln.host, ts: w.start + int64(w.gen), accs: w.accs})
				d.n.Windows++
				w.accs, w.apis, w.opened = nil, nil, time.Time{}
				d.epoch++ // the cache forgets w's accumulators
				if w.gen+1 >= int(d.winSec) {
					w.done = true
				} else {
					w.gen++
				}
			}
			if tooOld {
				delete(ln.windows, start)
				if ln.last == w {
					ln.last = nil
				}
			}
		}
	}
	return out
}

// due reports whether a window's current generation should be flushed.
//
//   - generation 0 closes when the lane's watermark passes the window's end
//     plus the allowed lateness, or when Window + AllowedLateness of
//     processing time have passed since its first record (quiet pipelines,
//     replays that stopped);
//   - later generations (records that arrived after a flush) wait
//     AllowedLateness (at least 1s), doubling with each generation, to
//     coalesce stragglers;
//   - the last generation (slot Window−1) waits until the window is
//     nearly MaxAge old, since no slot is left after it.
func (d *Deriver) due(ln *lane, w *window, now time.Time) bool {
	late := d.cfg.AllowedLateness
	switch {
	case w.gen == 0:
		return ln.watermark >= (w.start*1000+d.winMs+d.lateMs) ||
			!now.Before(w.opened.Add(d.cfg.Window+late))
	case w.gen < int(d.winSec)-1:
		wait := max(late, time.Second) << (w.gen - 1)
		return !now.Before(w.opened.Add(wait))
	default:
		return !now.Before(time.Unix(w.start, 0).Add(d.finalAge))
	}
}

// build turns window generations into metric batches.
func (d *Deriver) build(fs []flushed, now time.Time) []*record.Batch {
	if len(fs) == 0 {
		return nil
	}
	var (
		batches        []*record.Batch
		cur            []record.Metric
		values         int
		emitted, stale int64
		expired        int64
	)
	seal := func() {
		if len(cur) == 0 {
			return
		}
		batches = append(batches, &record.Batch{ID: d.batchID(), Metrics: cur})
		cur, values = nil, 0
	}
	oldest := now.UnixMilli() - d.maxAgeMs
	nm := &d.names
	win := d.winSec
	for _, f := range fs {
		for _, a := range f.accs {
			n0 := len(cur)
			count := func(name string, v int64) {
				if v > 0 {
					cur = append(cur, record.Metric{Name: name, Kind: record.MetricCount, Timestamp: f.ts, Interval: win,
						Value: float64(v), Tags: a.tags, Host: f.host, Unit: "request"})
				}
			}
			dist := func(name, unit string, vs []float64) {
				if len(vs) > 0 {
					cur = append(cur, record.Metric{Name: name, Kind: record.MetricDistribution, Timestamp: f.ts,
						Values: vs, Tags: a.tags, Host: f.host, Unit: unit})
					values += len(vs)
				}
			}
			count(nm.count, a.count)
			switch a.class {
			case 4:
				if nm.rest {
					count(nm.e4xxREST, a.count)
				}
				if nm.http {
					count(nm.e4xx, a.count)
				}
			case 5:
				if nm.rest {
					count(nm.e5xxREST, a.count)
				}
				if nm.http {
					count(nm.e5xx, a.count)
				}
			}
			count(nm.throttled, a.throttled)
			count(nm.integErr, a.integErr)
			if a.ws != 0 {
				count([...]string{"", nm.connect, nm.message, nm.disconnect}[a.ws], a.count)
				switch a.class {
				case 4:
					count(nm.clientErr, a.count)
				case 5:
					count(nm.execErr, a.count)
				}
			}
			count(nm.hit, a.cacheHit)
			count(nm.miss, a.cacheMiss)
			dist(nm.latency, "millisecond", a.latency)
			dist(nm.integLatency, "millisecond", a.integ)
			dist(nm.size, "byte", a.size)
			if f.ts*1000 < oldest {
				stale += int64(len(cur) - n0)
				expired += a.count
				cur = cur[:n0]
				continue
			}
			emitted += int64(len(cur) - n0)
			if len(cur) >= d.cfg.MaxPointsPerBatch || values >= d.cfg.MaxValuesPerBatch {
				seal()
			}
		}
	}
	seal()
	d.mu.Lock()
	d.n.PointsEmitted += emitted
	d.n.PointsTooOld += stale
	d.n.RecordsExpired += expired
	d.mu.Unlock()
	return batches
}

func (d *Deriver) batchID() string {
	return fmt.Sprintf("derive-%s-%d", d.hosts[0], d.seq.Add(1))
}

// emit sends the pending batches, then bs. What cannot be sent stays
// pending: of a batch the stage downstream delivered in part (a fused
// topic, stage.EmitRest), only what it did not.
func (d *Deriver) emit(ctx context.Context, out stage.Output, bs []*record.Batch) error {
	d.pmu.Lock()
	if len(d.pending) > 0 {
		bs = append(d.pending, bs...)
		d.pending = nil
	}
	d.pmu.Unlock()
	for i, b := range bs {
		if err := out.Emit(ctx, b); err != nil {
			keep := bs[i:]
			if rest, ok := stage.EmitRest(err); ok {
				keep = bs[i+1:]
				if rest.Len() > 0 {
					keep = append([]*record.Batch{rest}, keep...)
				}
			}
			d.pmu.Lock()
			d.pending = append(d.pending, keep...)
			d.pmu.Unlock()
			d.mu.Lock()
			d.n.EmitErrors++
			d.mu.Unlock()
			return fmt.Errorf("derive: emit metric batch %s: %w", b.ID, err)
		}
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
