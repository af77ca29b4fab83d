package loadgen

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Firehose header names (docs/wire-formats.md#firehose-request).
const (
	HeaderProtocolVersion = "X-Amz-Firehose-Protocol-Version"
	HeaderRequestID       = "X-Amz-Firehose-Request-Id"
	HeaderSourceARN       = "X-Amz-Firehose-Source-Arn"
	HeaderAccessKey       = "X-Amz-Firehose-Access-Key"
)

// ControlMessage is the message of the single event of a CONTROL_MESSAGE.
const ControlMessage = "CWL CONTROL MESSAGE: Checking health of destination Firehose."

const (
	maxEnvelopeBytes = 1000000  // stop adding events to an envelope beyond this (uncompressed)
	maxBodyBytes     = 60 << 20 // stop adding records to a request beyond this (Firehose: 64 MiB)
)

// Request is one Firehose HTTP endpoint delivery request.
type Request struct {
	ID        string      // requestId of the body = X-Amz-Firehose-Request-Id
	Timestamp int64       // body timestamp, ms
	Header    http.Header // Firehose headers, Content-Type and Content-Encoding
	Body      []byte      // as sent on the wire (gzipped when Config.GzipBody)
	RawSize   int         // size of the JSON body before Content-Encoding
	Records   int         // Firehose records, CONTROL_MESSAGE records included
	Controls  int         // CONTROL_MESSAGE records
	Events    []Event     // the real events carried, in wire order

	Account   string // AWS account of the delivery stream
	Region    string
	Stream    string // delivery stream name
	SourceARN string
}

// Generator produces deterministic Firehose requests: for a given Config
// (Seed included) and sequence of clock readings it always produces the same
// requests byte for byte. A Generator is not safe for concurrent use.
type Generator struct {
	cfg      Config
	u        *universe
	r        *rand.Rand
	clock    func() time.Time
	idMiddle [25]byte // 20 digits of seed, 5 of instance
	counter  uint64
	kinds    []Kind
	kindCum  []float64
	acctCum  []float64
	maxPer   int
	evCap    int

	h        hit
	arena    []byte // strings of the request being built
	hitSpans []hitSpan
	events   []Event // events of the request being built
	fixes    []fix   // msg.a < 0: event already has its strings
	group    string  // log group and stream of the record being built
	stream   string

	env, tmp, body []byte
	sink           sliceWriter
	zw             *gzip.Writer
}

// NewGenerator returns a generator for cfg (defaults applied).
func NewGenerator(cfg Config) (*Generator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:    cfg,
		u:      newUniverse(cfg),
		r:      rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Instance)<<32|0x5851f42d)),
		clock:  cfg.Clock,
		maxPer: cfg.maxEventsPerRequest(),
	}
	if g.clock == nil {
		g.clock = time.Now
	}
	mid := appendUint(nil, uint64(cfg.Seed), 20)
	mid = appendUint(mid, uint64(cfg.Instance), 5)
	copy(g.idMiddle[:], mid)
	for _, kw := range []struct {
		k Kind
		w int
	}{{AccessJSON, cfg.Mix.JSON}, {AccessCLF, cfg.Mix.CLF}, {Execution, cfg.Mix.Exec}} {
		if kw.w > 0 && !(cfg.Direct && kw.k == Execution) {
			g.kinds = append(g.kinds, kw.k)
			g.kindCum = append(g.kindCum, float64(kw.w))
		}
	}
	g.kindCum = cumulative(g.kindCum)
	w := make([]float64, len(g.u.accounts))
	for i, a := range g.u.accounts {
		w[i] = float64(len(a.apis))
	}
	g.acctCum = cumulative(w)
	g.evCap = min(g.maxPer, 4096)
	return g, nil
}

// Config returns the generator's configuration, defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// NextRequest builds the next request, carrying at most
// RecordsPerRequest × EventsPerRecord events (RecordsPerRequest in direct mode).
func (g *Generator) NextRequest() (*Request, error) { return g.next(g.maxPer) }

// next builds a request carrying at most limit (>= 1) events.
func (g *Generator) next(limit int) (*Request, error) {
	if limit <= 0 || limit > g.maxPer {
		limit = g.maxPer
	}
	cfg := &g.cfg
	r := g.r
	nowMs := g.clock().UnixMilli()
	g.arena = g.arena[:0]
	g.hitSpans = g.hitSpans[:0]
	g.fixes = g.fixes[:0]
	// Room for one request's execution lines beyond the limit: they are
	// rendered before the overflow is moved to its stream's pending lines.
	g.events = make([]Event, 0, min(limit, g.evCap)+32)

	acct := g.u.accounts[pick(r, g.acctCum)]
	req := &Request{Timestamp: nowMs, Account: acct.id, Region: acct.region, Stream: cfg.StreamName, SourceARN: acct.arn}
	var directAPI *api
	var directStage *stage
	if cfg.Direct {
		directAPI = g.u.apis[acct.apis[pick(r, acct.apiWeights)]]
		directStage = directAPI.stages[pick(r, directAPI.stageW)]
		req.Stream, req.SourceARN = directStage.directStream, directStage.directARN
	}
	g.tmp = appendUUID(g.tmp[:0], r.Uint64(), r.Uint64())
	req.ID = string(g.tmp)

	body := append(g.body[:0], `{"requestId":"`...)
	body = append(body, req.ID...)
	body = append(body, `","timestamp":`...)
	body = appendInt(body, nowMs)
	body = append(body, `,"records":[`...)
	g.body = body

	control := !cfg.Direct && cfg.ControlRate > 0 && r.Float64() < cfg.ControlRate
	controlAt := 0
	if control {
		controlAt = r.IntN(cfg.RecordsPerRequest)
	}
	budget := limit
	for req.Records < cfg.RecordsPerRequest && budget > 0 && len(g.body) < maxBodyBytes {
		if control && req.Records == controlAt {
			g.controlRecord(req, nowMs)
			control = false
			continue
		}
		if cfg.Direct {
			budget -= g.directRecord(req, directAPI, directStage, nowMs)
		} else {
			budget -= g.cwlRecord(req, acct, min(budget, g.recordTarget()), nowMs)
		}
	}
	if control {
		g.controlRecord(req, nowMs)
	}
	g.body = append(g.body, "]}"...)

	// All strings of fresh events live in the arena: one allocation for all.
	s := string(g.arena)
	for i := range g.events {
		if f := g.fixes[i]; f.msg.a >= 0 {
			resolve(&g.events[i], f, g.hitSpans, s, 0)
		}
	}
	req.Events = g.events
	g.events = nil
	g.evCap = max(g.evCap, len(req.Events))

	req.RawSize = len(g.body)
	if cfg.GzipBody {
		g.sink.b = g.sink.b[:0]
		g.gzip(g.body)
		req.Body = bytes.Clone(g.sink.b)
	} else {
		req.Body = bytes.Clone(g.body)
	}
	req.Header = firehoseHeader(req, cfg.AccessKey)
	if cfg.GzipBody {
		req.Header["Content-Encoding"] = []string{"gzip"}
	}
	return req, nil
}

// firehoseHeader is what Firehose sends with a request.
func firehoseHeader(req *Request, accessKey string) http.Header {
	h := http.Header{
		HeaderProtocolVersion: {"1.0"},
		HeaderRequestID:       {req.ID},
		HeaderSourceARN:       {req.SourceARN},
		"Content-Type":        {"application/json"},
	}
	if accessKey != "" {
		h[HeaderAccessKey] = []string{accessKey}
	}
	return h
}

// recordTarget is the number of events of the next envelope: between half
// and all of EventsPerRecord.
func (g *Generator) recordTarget() int {
	e := g.cfg.EventsPerRecord
	lo := (e + 1) / 2
	return lo + g.r.IntN(e-lo+1)
}

func (g *Generator) pickKind() Kind { return g.kinds[pick(g.r, g.kindCum)] }

// endTime returns the completion time of the first request of a record:
// CloudWatch Logs delivers with a lag of a second or a few.
func (g *Generator) endTime(nowMs int64) int64 {
	return nowMs - 500 - int64(min(g.r.ExpFloat64()*1000, 10000))
}

// cwlRecord appends one CloudWatch envelope record of up to n events.
func (g *Generator) cwlRecord(req *Request, acct *account, n int, nowMs int64) int {
	r := g.r
	kind := g.pickKind()
	a := g.u.apis[acct.apis[pick(r, acct.apiWeights)]]
	st := a.stages[pick(r, a.stageW)]
	group, ls := st.accessGroup, st.accessStreams[r.IntN(len(st.accessStreams))]
	if kind == Execution {
		group, ls = st.execGroup, st.execStreams[r.IntN(len(st.execStreams))]
	}

	env := append(g.env[:0], `{"messageType":"DATA_MESSAGE","owner":"`...)
	env = append(env, acct.id...)
	env = append(env, `","logGroup":"`...)
	env = appendJSONString(env, group)
	env = append(env, `","logStream":"`...)
	env = append(env, ls.name...)
	env = append(env, `","subscriptionFilters":["`...)
	env = appendJSONString(env, g.cfg.FilterName)
	env = append(env, `"],"logEvents":[`...)

	count := 0
	// Lines left over from a request that did not fit the previous envelope.
	for count < n && len(ls.pending) > 0 {
		ev := ls.pending[0]
		ls.pending = ls.pending[1:]
		env = appendLogEvent(env, count, ev.ID, ev.Timestamp, ev.Message, false)
		g.events = append(g.events, ev)
		g.fixes = append(g.fixes, fix{msg: span{-1, -1}})
		count++
	}
	if len(ls.pending) == 0 {
		ls.pending = nil
	}
	end := g.endTime(nowMs)
	g.group, g.stream = group, ls.name
	for count < n && len(env) < maxEnvelopeBytes {
		hitStart, first := len(g.arena), len(g.events)
		h := g.newHit(a, st, end)
		switch kind {
		case AccessJSON:
			g.renderJSON(h)
		case AccessCLF:
			g.renderCLF(h)
		default:
			g.renderExec(h)
		}
		k := first
		for ; k < len(g.events) && count < n; k++ {
			ev, f := &g.events[k], g.fixes[k]
			env = appendLogEvent(env, count, g.arena[f.id.a:f.id.b], ev.Timestamp, g.arena[f.msg.a:f.msg.b], kind == Execution)
			count++
		}
		if k < len(g.events) {
			// The rest of this request's lines go into a later envelope of
			// the same stream, as CloudWatch Logs may split them.
			s := string(g.arena[hitStart:])
			for i := k; i < len(g.events); i++ {
				ev := g.events[i]
				resolve(&ev, g.fixes[i], g.hitSpans, s, hitStart)
				ls.pending = append(ls.pending, ev)
			}
			g.events, g.fixes = g.events[:k], g.fixes[:k]
		}
		end = min(nowMs, end+int64(r.IntN(4)))
	}
	g.group, g.stream = "", ""
	if acct.accountPol {
		env = append(env, `],"policyLevel":"ACCOUNT_LEVEL_POLICY"}`...)
	} else {
		env = append(env, "]}"...)
	}
	g.env = env
	g.appendRecord(env)
	req.Records++
	return count
}

// appendLogEvent appends the i-th element of logEvents. Long messages with
// few characters to escape (execution logs) are escaped a word at a time.
func appendLogEvent[S ~string | ~[]byte](env []byte, i int, id S, ts int64, msg S, long bool) []byte {
	if i > 0 {
		env = append(env, ',')
	}
	env = append(env, `{"id":"`...)
	env = append(env, id...)
	env = append(env, `","timestamp":`...)
	env = appendInt(env, ts)
	env = append(env, `,"message":"`...)
	if b, ok := any(msg).([]byte); ok && long {
		env = appendJSONBytes(env, b)
	} else {
		env = appendJSONString(env, msg)
	}
	return append(env, `"}`...)
}

// directRecord appends one record holding one access-log line (API Gateway
// writing to Firehose directly: no envelope, no per-record gzip).
func (g *Generator) directRecord(req *Request, a *api, st *stage, nowMs int64) int {
	kind := g.pickKind()
	h := g.newHit(a, st, g.endTime(nowMs))
	if kind == AccessCLF {
		g.renderCLF(h)
	} else {
		g.renderJSON(h)
	}
	f := g.fixes[len(g.fixes)-1]
	g.tmp = append(g.tmp[:0], g.arena[f.msg.a:f.msg.b]...)
	g.tmp = append(g.tmp, '\n')
	g.openRecord()
	g.body = base64.StdEncoding.AppendEncode(g.body, g.tmp)
	g.body = append(g.body, `"}`...)
	req.Records++
	return 1
}

// controlRecord appends a CONTROL_MESSAGE record (no real events).
func (g *Generator) controlRecord(req *Request, nowMs int64) {
	env := append(g.env[:0], `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":`...)
	env = appendInt(env, nowMs)
	env = append(env, `,"message":"`+ControlMessage+`"}]}`...)
	g.env = env
	g.appendRecord(env)
	req.Records++
	req.Controls++
}

func (g *Generator) openRecord() {
	if g.body[len(g.body)-1] != '[' {
		g.body = append(g.body, ',')
	}
	g.body = append(g.body, `{"data":"`...)
}

// appendRecord appends {"data":"base64(gzip(doc))"} to the body.
func (g *Generator) appendRecord(doc []byte) {
	g.sink.b = g.sink.b[:0]
	g.gzip(doc)
	g.openRecord()
	g.body = base64.StdEncoding.AppendEncode(g.body, g.sink.b)
	g.body = append(g.body, `"}`...)
}

// gzip compresses p onto g.sink.
func (g *Generator) gzip(p []byte) {
	if g.zw == nil {
		g.zw = getGzipWriter(g.cfg.GzipLevel)
	}
	g.zw.Reset(&g.sink)
	// Writes to a sliceWriter cannot fail.
	if _, err := g.zw.Write(p); err != nil {
		panic(fmt.Sprintf("loadgen: gzip to memory: %v", err))
	}
	if err := g.zw.Close(); err != nil {
		panic(fmt.Sprintf("loadgen: gzip to memory: %v", err))
	}
}

// Close returns pooled resources; the generator must not be used afterwards.
func (g *Generator) Close() {
	if g.zw != nil {
		putGzipWriter(g.cfg.GzipLevel, g.zw)
		g.zw = nil
	}
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Gzip writers are expensive to allocate; keep them per level.
var gzipPools [gzip.BestCompression - gzip.HuffmanOnly + 1]sync.Pool

func getGzipWriter(level int) *gzip.Writer {
	if zw, ok := gzipPools[level-gzip.HuffmanOnly].Get().(*gzip.Writer); ok {
		return zw
	}
	zw, err := gzip.NewWriterLevel(nil, level)
	if err != nil {
		panic(fmt.Sprintf("loadgen: gzip level %d: %v", level, err)) // levels are validated
	}
	return zw
}

func putGzipWriter(level int, zw *gzip.Writer) { gzipPools[level-gzip.HuffmanOnly].Put(zw) }
