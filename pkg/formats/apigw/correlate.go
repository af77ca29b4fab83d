package apigw

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// CorrelatorConfig bounds a Correlator; it is part of the parse.correlation
// section of gwpipe's configuration. Zero fields take DefaultCorrelatorConfig's.
type CorrelatorConfig struct {
	// MaxOpen bounds the requests held open at once. When full, the oldest
	// open request of the shard is evicted (FIFO) and its partial summary
	// returned. It bounds the ids of requests summarised lately, which are
	// remembered, alike.
	MaxOpen int `yaml:"max_open"`
	// MaxAge is how long a request without "Method completed" may stay
	// open before Expire emits it, and how long the id of a summarised
	// request is remembered.
	MaxAge time.Duration `yaml:"max_age"`
	// Shards is the number of independently locked shards (rounded up to a
	// power of two).
	Shards int `yaml:"-"`
	// Now is the clock ages are measured with, in ms since the epoch
	// (default wall clock). Expire's argument is on the same clock.
	Now func() int64 `yaml:"-"`
}

// DefaultCorrelatorConfig holds 200,000 requests open, each 30s at most,
// in 64 shards.
func DefaultCorrelatorConfig() CorrelatorConfig {
	return CorrelatorConfig{MaxOpen: 200_000, MaxAge: 30 * time.Second, Shards: 64}
}

// Validate reports every field out of range.
func (c CorrelatorConfig) Validate() error {
	var errs []error
	if c.MaxOpen < 1 {
		errs = append(errs, fmt.Errorf("max_open: must be positive, got %d", c.MaxOpen))
	}
	if c.MaxAge <= 0 {
		errs = append(errs, fmt.Errorf("max_age: must be positive, got %s", c.MaxAge))
	}
	return errors.Join(errs...)
}

// Summary attribute keys.
const (
	KeySummaryFirst   = "apigateway.summary.first_timestamp"
	KeySummaryLast    = "apigateway.summary.last_timestamp"
	KeySummaryElapsed = "apigateway.summary.elapsed_ms"
	KeySummaryLines   = "apigateway.summary.lines"
	KeySummaryReason  = "apigateway.summary.reason"
	KeySummaryDone    = "apigateway.summary.complete"
	// KeySummaryInferred marks a status the summary infers from a throttle,
	// quota or authorizer refusal line, no line having logged one.
	KeySummaryInferred = "apigateway.summary.status_inferred"
)

// Summary reasons (apigateway.summary.reason).
const (
	ReasonCompleted = "completed" // "Method completed with status" seen
	ReasonExpired   = "expired"   // open longer than MaxAge
	ReasonEvicted   = "evicted"   // pushed out by MaxOpen
	ReasonFlushed   = "flushed"   // Flush (shutdown)
)

// Field length caps keep a request's footprint bounded.
const (
	capShort = 128
	capRoute = 512
	capError = 1024
)

// Correlator folds the execution-log lines of each request id into one
// summary record. It is safe for concurrent use; requests are sharded by id.
type Correlator struct {
	shards   []corrShard
	mask     uint64
	maxAge   int64
	now      func() int64
	seed     maphash.Seed
	perShard int

	completed, expired, evicted, ignored, late atomic.Int64
}

// CorrelatorStats counts what a Correlator has done. Recent is the number
// of summarised requests whose ids are remembered now; Late counts the
// lines that came after their request's summary and were folded into
// nothing.
type CorrelatorStats struct {
	Open, Completed, Expired, Evicted, Ignored, Late, Recent int64
}

type corrShard struct {
	mu      sync.Mutex
	byID    map[string]int32
	entries []openReq
	free    []int32
	head    int32 // oldest (FIFO by first arrival)
	tail    int32

	// The requests summarised within MaxAge, so that lines arriving after
	// their summary (batches reordered) open no second request. done maps
	// the 64-bit hash of the id (8 bytes where an id takes 36) to the
	// Now() of the summary; recent holds them in that order, a ring of at
	// most perShard whose oldest is forgotten first when full.
	done       map[uint64]int64
	recent     []doneReq
	recentHead int
	recentLen  int
	_          [32]byte // keep shards on separate cache lines
}

type doneReq struct {
	hash uint64
	at   int64
}

type openReq struct {
	id          string
	hash        uint64 // the id's, as the shard's done set keys it
	origin      *record.Origin
	opened      int64 // Now() at first line
	first, last int64 // event timestamps
	lines       int32
	status      int16
	integStatus int16
	integLat    int64 // -1 unset
	method      string
	route       string
	path        string
	apiID       string
	stage       string
	extID       string
	errMsg      string
	errKind     string
	outcome     uint8
	throttled   bool
	quota       bool
	canary      bool
	truncated   bool
	prev, next  int32
}

const (
	outNone uint8 = iota
	outAllow
	outUnauthorized
	outDeny
	outError
)

var outcomeNames = [...]string{"", "allow", "unauthorized", "deny", "error"}

// NewCorrelator builds a Correlator.
func NewCorrelator(cfg CorrelatorConfig) *Correlator {
	d := DefaultCorrelatorConfig()
	if cfg.MaxOpen <= 0 {
		cfg.MaxOpen = d.MaxOpen
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = d.MaxAge
	}
	if cfg.Shards <= 0 {
		cfg.Shards = d.Shards
	}
	n := 1
	for n < cfg.Shards {
		n <<= 1
	}
	if n > cfg.MaxOpen {
		n = 1
		for n*2 <= cfg.MaxOpen {
			n <<= 1
		}
	}
	if cfg.Now == nil {
		cfg.Now = func() int64 { return time.Now().UnixMilli() }
	}
	c := &Correlator{
		shards:   make([]corrShard, n),
		mask:     uint64(n - 1),
		maxAge:   cfg.MaxAge.Milliseconds(),
		now:      cfg.Now,
		seed:     maphash.MakeSeed(),
		perShard: cfg.MaxOpen / n, // n ≤ MaxOpen, so ≥ 1; total ≤ MaxOpen
	}
	for i := range c.shards {
		c.shards[i].byID = make(map[string]int32)
		c.shards[i].done = make(map[uint64]int64)
		c.shards[i].head, c.shards[i].tail = -1, -1
	}
	return c
}

// Stats returns counters and the number of open requests.
func (c *Correlator) Stats() CorrelatorStats {
	return CorrelatorStats{Open: int64(c.Len()), Completed: c.completed.Load(), Expired: c.expired.Load(),
		Evicted: c.evicted.Load(), Ignored: c.ignored.Load(), Late: c.late.Load(), Recent: int64(c.Recent())}
}

// Recent is the number of summarised requests whose ids are remembered.
func (c *Correlator) Recent() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += sh.recentLen
		sh.mu.Unlock()
	}
	return n
}

// Len is the number of open requests.
func (c *Correlator) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.byID)
		sh.mu.Unlock()
	}
	return n
}

// Observe folds one parsed execution record (Parser.Parse output; other
// kinds and records without http.request_id are ignored). It returns a
// summary when one is due: the request completed ("Method completed with
// status"), or — when this line opened a new request into a full shard — the
// partial summary of the evicted oldest request (check its
// apigateway.summary.reason). Lines that only ever follow completion (AWS
// Integration Endpoint RequestId, X-ray Tracing ID) never open a request:
// they are attached when the request is still open and ignored otherwise.
// A line of a request summarised less than MaxAge ago (completed, expired
// or evicted) opens no request either and makes no second summary: it
// came late, its batch overtaken by a later one. The summary owns its
// bytes (nothing aliases rec).
func (c *Correlator) Observe(rec *record.Record) (record.Record, bool) {
	if rec.Kind != record.KindExecution {
		return record.Record{}, false
	}
	var id []byte
	ev := EventUnknown
	for i := range rec.Attrs {
		a := &rec.Attrs[i]
		switch a.Key {
		case KeyRequestID:
			id = a.Str
		case KeyExecEvent:
			ev = eventOfValue(a.Str)
		}
	}
	if len(id) == 0 {
		return record.Record{}, false
	}
	h := maphash.Bytes(c.seed, id)
	sh := &c.shards[h&c.mask]
	sh.mu.Lock()
	idx, open := sh.byID[string(id)]
	if !open {
		if ev == EventIntegrationRequestID || ev == EventXRayTraceID {
			sh.mu.Unlock()
			c.ignored.Add(1)
			return record.Record{}, false
		}
		now := c.now()
		if at, ok := sh.done[h]; ok && at > now-c.maxAge {
			sh.mu.Unlock()
			c.late.Add(1)
			return record.Record{}, false
		}
		if ev == EventMethodCompleted {
			// completion of a request whose earlier lines we never saw
			// (yet: they are late if they come)
			sh.remember(h, now, c.perShard)
			sh.mu.Unlock()
			var e openReq
			e.reset(string(id), h, rec.Origin, now)
			e.fold(rec)
			c.completed.Add(1)
			return e.summary(ReasonCompleted), true
		}
		var out record.Record
		evicted := false
		if len(sh.byID) >= c.perShard && sh.head >= 0 {
			old := sh.head
			out = sh.entries[old].summary(ReasonEvicted)
			evicted = true
			sh.remember(sh.entries[old].hash, now, c.perShard)
			sh.remove(old)
			c.evicted.Add(1)
		}
		idx = sh.alloc()
		e := &sh.entries[idx]
		e.reset(string(id), h, rec.Origin, now)
		e.fold(rec)
		sh.byID[e.id] = idx
		sh.pushBack(idx)
		sh.mu.Unlock()
		return out, evicted
	}
	e := &sh.entries[idx]
	e.fold(rec)
	if ev != EventMethodCompleted {
		sh.mu.Unlock()
		return record.Record{}, false
	}
	out := e.summary(ReasonCompleted)
	sh.remember(e.hash, c.now(), c.perShard)
	sh.remove(idx)
	sh.mu.Unlock()
	c.completed.Add(1)
	return out, true
}

// Expire emits the summaries of requests opened more than MaxAge before now
// (on the Correlator's clock, ms) and forgets them, and forgets the ids of
// requests summarised more than MaxAge before now. Both are examined in
// order of age per shard, so the cost is proportional to what expires.
func (c *Correlator) Expire(now int64) []record.Record {
	var out []record.Record
	cutoff := now - c.maxAge
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for sh.recentLen > 0 && sh.recent[sh.recentHead].at <= cutoff {
			sh.forgetOldest()
		}
		for sh.head >= 0 && sh.entries[sh.head].opened <= cutoff {
			h := sh.head
			out = append(out, sh.entries[h].summary(ReasonExpired))
			sh.remember(sh.entries[h].hash, now, c.perShard)
			sh.remove(h)
			c.expired.Add(1)
		}
		sh.mu.Unlock()
	}
	return out
}

// Flush emits the summaries of every open request (for shutdown).
func (c *Correlator) Flush() []record.Record {
	var out []record.Record
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for sh.head >= 0 {
			h := sh.head
			out = append(out, sh.entries[h].summary(ReasonFlushed))
			sh.remove(h)
		}
		sh.mu.Unlock()
	}
	return out
}

func eventOfValue(v []byte) ExecEvent {
	// the common events first; the value is one of eventValues
	for i := range eventValues {
		if string(eventValues[i]) == string(v) {
			return ExecEvent(i)
		}
	}
	return EventUnknown
}

// remember records that the request hashed h was summarised at now. The
// oldest id is forgotten first when the shard remembers limit of them.
func (sh *corrShard) remember(h uint64, now int64, limit int) {
	if sh.recentLen >= limit {
		sh.forgetOldest()
	}
	if sh.recentLen == len(sh.recent) {
		// grow the ring (doubling, up to limit), oldest first again
		n := min(max(16, 2*len(sh.recent)), limit)
		r := make([]doneReq, n)
		for i := 0; i < sh.recentLen; i++ {
			r[i] = sh.recent[(sh.recentHead+i)%len(sh.recent)]
		}
		sh.recent, sh.recentHead = r, 0
	}
	sh.recent[(sh.recentHead+sh.recentLen)%len(sh.recent)] = doneReq{hash: h, at: now}
	sh.recentLen++
	sh.done[h] = now
}

func (sh *corrShard) forgetOldest() {
	d := sh.recent[sh.recentHead]
	// the id may have been remembered again since (a new request under it
	// after this one was forgotten by age): that later entry keeps it
	if sh.done[d.hash] == d.at {
		delete(sh.done, d.hash)
	}
	sh.recentHead = (sh.recentHead + 1) % len(sh.recent)
	sh.recentLen--
	if sh.recentLen == 0 && len(sh.recent) > 1024 {
		// drop the ring and the map after a burst so idle memory shrinks
		sh.recent, sh.recentHead = nil, 0
		sh.done = make(map[uint64]int64)
	}
}

func (sh *corrShard) alloc() int32 {
	if n := len(sh.free); n > 0 {
		i := sh.free[n-1]
		sh.free = sh.free[:n-1]
		return i
	}
	sh.entries = append(sh.entries, openReq{})
	return int32(len(sh.entries) - 1)
}

func (sh *corrShard) pushBack(i int32) {
	e := &sh.entries[i]
	e.prev, e.next = sh.tail, -1
	if sh.tail >= 0 {
		sh.entries[sh.tail].next = i
	} else {
		sh.head = i
	}
	sh.tail = i
}

func (sh *corrShard) remove(i int32) {
	e := &sh.entries[i]
	if e.prev >= 0 {
		sh.entries[e.prev].next = e.next
	} else {
		sh.head = e.next
	}
	if e.next >= 0 {
		sh.entries[e.next].prev = e.prev
	} else {
		sh.tail = e.prev
	}
	delete(sh.byID, e.id)
	*e = openReq{}
	sh.free = append(sh.free, i)
	if len(sh.byID) == 0 && len(sh.entries) > 1024 {
		// drop the slab and the map after a burst so idle memory shrinks
		sh.entries, sh.free = nil, nil
		sh.byID = make(map[string]int32)
		sh.head, sh.tail = -1, -1
	}
}

func (e *openReq) reset(id string, h uint64, o *record.Origin, now int64) {
	*e = openReq{id: id, hash: h, origin: o, opened: now, integLat: -1, prev: -1, next: -1}
}

func clip(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// fold merges one line's attributes into the open request.
func (e *openReq) fold(rec *record.Record) {
	e.lines++
	if ts := rec.Timestamp; ts != 0 {
		if e.first == 0 || ts < e.first {
			e.first = ts
		}
		if ts > e.last {
			e.last = ts
		}
	}
	for i := range rec.Attrs {
		a := &rec.Attrs[i]
		switch a.Key {
		case KeyMethod:
			keepFirst(&e.method, a.Str, 16)
		case KeyRoute:
			keepFirst(&e.route, a.Str, capRoute)
		case KeyPath:
			keepFirst(&e.path, a.Str, capRoute)
		case KeyStatusCode:
			e.status = int16(a.Int)
		case KeyIntegLatency:
			e.integLat = a.Int
		case KeyIntegStatus:
			e.integStatus = int16(a.Int)
		case KeyAuthorizerOutcome:
			o := outNone
			switch string(a.Str) {
			case "allow":
				o = outAllow
			case "unauthorized":
				o = outUnauthorized
			case "deny":
				o = outDeny
			case "error":
				o = outError
			}
			if o > e.outcome {
				e.outcome = o
			}
		case KeyExecThrottled:
			e.throttled = true
		case KeyExecQuota:
			e.quota = true
		case KeyExecTruncated:
			e.truncated = true
		case KeyCanary:
			e.canary = true
		case KeyErrorMessage:
			keepFirst(&e.errMsg, a.Str, capError)
		case KeyErrorKind:
			keepFirst(&e.errKind, a.Str, capShort)
		case "apigateway.apiId":
			keepFirst(&e.apiID, a.Str, capShort)
		case "apigateway.stage":
			keepFirst(&e.stage, a.Str, capShort)
		case "apigateway.extendedRequestId":
			keepFirst(&e.extID, a.Str, capShort)
		}
	}
}

// keepFirst sets *dst to v clipped to n bytes unless an earlier line set
// it: the first line that carries the value wins.
func keepFirst(dst *string, v []byte, n int) {
	if *dst == "" {
		*dst = clip(v, n)
	}
}

// refusalStatus is the status API Gateway answers a request it refused
// before its integration, by the line that says so: 401 or 403 for a
// Lambda authorizer's "Unauthorized request" or deny, else 429 for a
// usage plan's throttle or quota (the authorizer runs before the usage
// plan, so its refusal ends the request first). 0 when no such line came,
// or the authorizer failed (a 500 whose cause the lines do not tell).
// Only a summary that ends without a completion line, and that no line
// gave a status, uses it: API Gateway does log "Method completed with
// status: 429" after a throttle (a public log of 2019), but at logging
// level ERROR it writes error-level entries only, and AWS's guide to 429s
// finds the throttle and quota lines at that level.
func (e *openReq) refusalStatus() int16 {
	switch e.outcome {
	case outUnauthorized:
		return 401
	case outDeny:
		return 403
	case outError:
		return 0
	}
	if e.throttled || e.quota {
		return 429
	}
	return 0
}

// summary builds the summary record. All its bytes live in one buffer.
func (e *openReq) summary(reason string) record.Record {
	var buf []byte
	grow := len(e.id) + len(e.method) + len(e.route) + len(e.path) + len(e.apiID) + len(e.stage) +
		len(e.extID) + len(e.errMsg) + len(e.errKind) + len(reason) + 160
	buf = make([]byte, 0, grow)
	put := func(s string) []byte {
		st := len(buf)
		buf = append(buf, s...)
		return buf[st:len(buf):len(buf)]
	}
	attrs := make([]record.Attr, 0, 24)
	str := func(k, v string) {
		if v != "" {
			attrs = append(attrs, record.StringAttr(k, put(v)))
		}
	}
	str(KeyRequestID, e.id)
	str(KeyMethod, e.method)
	str(KeyRoute, e.route)
	str(KeyPath, e.path)
	lvl := record.LevelInfo
	status, inferred := e.status, false
	if (status < 100 || status > 599) && reason != ReasonCompleted {
		status = e.refusalStatus()
		inferred = status != 0
	}
	if status >= 100 && status <= 599 {
		attrs = append(attrs, record.IntAttr(KeyStatusCode, int64(status)))
		lvl = record.LevelForHTTPStatus(int(status))
		if inferred {
			attrs = append(attrs, record.BoolAttr(KeySummaryInferred, true))
		}
	} else if e.errMsg != "" {
		lvl = record.LevelError
	} else if e.throttled || e.quota || e.outcome >= outUnauthorized {
		lvl = record.LevelWarn
	}
	if e.integLat >= 0 {
		attrs = append(attrs, record.IntAttr(KeyIntegLatency, e.integLat))
		st := len(buf)
		buf = strconv.AppendInt(buf, e.integLat, 10)
		attrs = append(attrs, record.NumberAttr("apigateway.integrationLatency", buf[st:len(buf):len(buf)]))
	}
	if e.integStatus >= 100 && e.integStatus <= 599 {
		attrs = append(attrs, record.IntAttr(KeyIntegStatus, int64(e.integStatus)))
	}
	if e.outcome != outNone {
		str(KeyAuthorizerOutcome, outcomeNames[e.outcome])
	}
	if e.throttled {
		attrs = append(attrs, record.BoolAttr(KeyExecThrottled, true))
	}
	if e.quota {
		attrs = append(attrs, record.BoolAttr(KeyExecQuota, true))
	}
	str(KeyErrorMessage, e.errMsg)
	str(KeyErrorKind, e.errKind)
	str("apigateway.apiId", e.apiID)
	str("apigateway.stage", e.stage)
	str("apigateway.extendedRequestId", e.extID)
	if e.canary {
		attrs = append(attrs, record.BoolAttr(KeyCanary, true))
	}
	if e.truncated {
		attrs = append(attrs, record.BoolAttr(KeyExecTruncated, true))
	}
	if e.first != 0 {
		attrs = append(attrs, record.IntAttr(KeySummaryFirst, e.first), record.IntAttr(KeySummaryLast, e.last),
			record.IntAttr(KeySummaryElapsed, e.last-e.first))
	}
	attrs = append(attrs, record.IntAttr(KeySummaryLines, int64(e.lines)))
	str(KeySummaryReason, reason)
	attrs = append(attrs, record.BoolAttr(KeySummaryDone, reason == ReasonCompleted))

	// message: "(id) POST /route -> 200, integration 40 ms [completed]"
	msg := make([]byte, 0, 64+len(e.id)+len(e.route))
	msg = append(msg, '(')
	msg = append(msg, e.id...)
	msg = append(msg, ") request summary:"...)
	if e.method != "" {
		msg = append(msg, ' ')
		msg = append(msg, e.method...)
	}
	if r := e.route; r != "" || e.path != "" {
		if r == "" {
			r = e.path
		}
		msg = append(msg, ' ')
		msg = append(msg, r...)
	}
	if status != 0 {
		msg = append(msg, " -> "...)
		msg = strconv.AppendInt(msg, int64(status), 10)
		if inferred {
			msg = append(msg, " (inferred)"...)
		}
	}
	if e.integLat >= 0 {
		msg = append(msg, ", integration "...)
		msg = strconv.AppendInt(msg, e.integLat, 10)
		msg = append(msg, " ms"...)
	}
	if e.errMsg != "" {
		msg = append(msg, ", error: "...)
		msg = append(msg, e.errMsg...)
	}
	msg = append(msg, " ["...)
	msg = append(msg, reason...)
	msg = append(msg, ']')

	ts := e.first
	return record.Record{
		Origin:    e.origin,
		Timestamp: ts,
		Message:   msg,
		Kind:      record.KindSummary,
		Source:    SourceAPIGateway,
		Level:     lvl,
		Attrs:     attrs,
	}
}
