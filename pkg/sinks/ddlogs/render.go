package ddlogs

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// MaxLogBytes is the Datadog intake's limit for one log, and the default
// Config.MaxLogBytes. AppendLog never renders a longer log.
const MaxLogBytes = 1_000_000

// minLogBytes is the smallest per-log limit accepted: room for the skeleton
// of a truncated log plus a meaningful part of the message.
const minLogBytes = 1024

// ReservedPrefix is where attributes whose top-level name is reserved are
// moved (see AppendLog).
const ReservedPrefix = "apigateway."

// Defaults fills the top-level fields a record leaves empty.
type Defaults struct {
	Source string // ddsource when Record.Source is empty
	// Service is the service of a record of Source (API Gateway's logs)
	// that has none of its own; a record of another source without one
	// gets its source as service, as the Datadog Forwarder does.
	Service  string
	Hostname string // hostname when the record has no log group
	Tags     string // static ddtags, already joined "k:v,k2:v2" (see JoinTags); prepended to Record.Tags
}

// JoinTags joins "key:value" tags into a ddtags string, skipping empty ones.
func JoinTags(tags ...string) string {
	var b strings.Builder
	for _, t := range tags {
		t = strings.Trim(t, ",")
		if t == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t)
	}
	return b.String()
}

// isReserved reports whether key's top-level name is one of the fields the
// renderer writes itself, or one that Datadog's default JSON preprocessing
// would take in their place (host before hostname, @timestamp before
// timestamp, source as the reserved source attribute).
func isReserved(key string) bool {
	switch topName(key) {
	case "ddsource", "ddtags", "hostname", "host", "service", "status",
		"message", "timestamp", "@timestamp", "source":
		return true
	}
	return false
}

// topName is the first segment of a dotted key.
func topName(key string) string {
	if i := strings.IndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return key
}

// AppendLog appends rec rendered as one Datadog log JSON object:
//
//	{"ddsource":…,"service":…,"hostname":…,"ddtags":"k:v,…","timestamp":<ms>,
//	 "status":"info|warn|error","message":<original line>, …attributes…}
//
// The rules:
//
//   - ddsource: rec.Source, else d.Source; service: rec.Service, else
//     d.Service for a record of d.Source (API Gateway's), else its source
//     (the Datadog Forwarder's rule: an RDS log is never "apigateway");
//     hostname: rec.Origin.LogGroup, else d.Hostname; ddtags: d.Tags, then
//     rec.Tags, then "replay:true" for replayed records; status:
//     rec.Level.String(); id: rec.EventID, the CloudWatch event id. Each of
//     these is omitted when empty, and timestamp
//     is omitted when rec.Timestamp is 0 (the intake then uses the time of
//     reception). message is always there.
//   - Attributes are dotted paths rendered as nested objects, merged by
//     prefix and emitted in key order (segment-wise: "a" < "a.b" < "a-b"). A
//     later duplicate key wins. When a key is both a leaf and a prefix ("a"
//     and "a.b"), the object wins and the leaf is dropped. Empty keys are
//     skipped; no object ever holds a key twice.
//   - An attribute whose top-level name is reserved (ddsource, ddtags,
//     hostname, host, service, status, message, timestamp, @timestamp,
//     source; and id when the record has an event id) never replaces the log's own field: it is moved under
//     ReservedPrefix, so "status" becomes "apigateway.status" and
//     "host.name" becomes "apigateway.host.name".
//   - Number attributes are written verbatim only when they are valid JSON
//     numbers, otherwise as strings; unknown kinds are written as null.
//   - The renderer adds "aws":{"awslogs":{"logGroup","logStream","owner"}}
//     from rec.Origin and "gwpipe":{"parse_error":…} when rec.ParseError is
//     set; these win over attributes with the same keys.
//   - Strings are escaped so that the result is valid JSON and valid UTF-8
//     whatever the input: invalid bytes become U+FFFD, and so do invalid
//     bytes in keys, before duplicates are resolved.
//   - A log longer than MaxLogBytes is truncated, never dropped: the message
//     is cut at a UTF-8 boundary, attributes are dropped when needed (first
//     those over 512 bytes, then all but aws and gwpipe, then everything but
//     a skeleton of ddsource, service, timestamp, status and message), and
//     "gwpipe":{"truncated":true} is added. The message keeps its full length
//     or at least half of the limit.
func AppendLog(dst []byte, rec *record.Record, d Defaults) []byte {
	r := getRenderer(d, MaxLogBytes)
	dst, _ = r.appendLog(dst, rec)
	putRenderer(r)
	return dst
}

var rendererPool = sync.Pool{New: func() any { return new(renderer) }}

func getRenderer(d Defaults, maxBytes int) *renderer {
	r := rendererPool.Get().(*renderer)
	r.d = d
	r.max = max(maxBytes, minLogBytes)
	return r
}

func putRenderer(r *renderer) {
	r.d, r.perr = Defaults{}, ""
	if cap(r.tail) > 64<<10 {
		r.tail = nil
	}
	if cap(r.hdr.b) > 64<<10 {
		r.hdr = headerCache{}
	}
	rendererPool.Put(r)
}

// The structure of the attributes — which keys nest where, which duplicate
// wins, where the synthetic attributes go — depends only on the sequence of
// attribute keys and on which synthetic attributes are present. A plan is that
// structure compiled once: the literal JSON between values ("frag"), where
// each value goes ("cuts") and where it comes from ("srcs"). Records of one
// format carry the same keys in the same order, so each renderer keeps a few
// plans and rendering a record is then: check its keys against a plan, copy
// fragments, escape values.

// Synthetic attributes the renderer adds.
const (
	synLogGroup = iota
	synLogStream
	synOwner
	synParseError
	synTruncated
	numSyn
)

var synKeys = [numSyn]string{
	"aws.awslogs.logGroup",
	"aws.awslogs.logStream",
	"aws.awslogs.owner",
	"gwpipe.parse_error",
	"gwpipe.truncated",
}

// maxParseErrorBytes bounds gwpipe.parse_error in a truncated log.
const maxParseErrorBytes = 1024

// bigAttrBytes: in a truncated log, attributes larger than this go first.
const bigAttrBytes = 512

// plansPerRenderer is how many attribute layouts a renderer remembers
// (execution-log lines of different kinds each have their own).
const plansPerRenderer = 16

// entry is one attribute to place: its final key and its source, an index in
// Record.Attrs (>= 0) or ^synIndex (< 0).
type entry struct {
	key string
	src int32
}

type plan struct {
	keys []string // Record.Attrs keys, in record order: the cache key
	mask uint8    // synthetic attributes present (1 << syn index)
	frag []byte
	cuts []int32 // value j is written at frag[cuts[j]]
	srcs []int32
}

func (p *plan) matches(attrs []record.Attr, mask uint8) bool {
	if p.mask != mask || len(p.keys) != len(attrs) || p.frag == nil {
		return false
	}
	for i := range attrs {
		if attrs[i].Key != p.keys[i] {
			return false
		}
	}
	return true
}

// renderer holds plans and scratch space; not safe for concurrent use.
type renderer struct {
	d       Defaults
	max     int
	plans   [plansPerRenderer]plan
	next    int // plan slot to replace next
	last    int // plan slot used last: tried first
	tmp     plan
	entries []entry
	kept    []entry
	tail    []byte
	perr    string // gwpipe.parse_error value being rendered
	hdr     headerCache
}

// appendLog renders rec and reports whether it had to be truncated.
func (r *renderer) appendLog(dst []byte, rec *record.Record) ([]byte, bool) {
	start := len(dst)
	mask := synMask(rec)
	var p *plan
	if r.plans[r.last].matches(rec.Attrs, mask) {
		p = &r.plans[r.last]
	} else {
		for i := range r.plans {
			if r.plans[i].matches(rec.Attrs, mask) {
				p, r.last = &r.plans[i], i
				break
			}
		}
	}
	if p == nil {
		p, r.last = &r.plans[r.next], r.next
		r.next = (r.next + 1) % plansPerRenderer
		p.keys = p.keys[:0]
		for i := range rec.Attrs {
			p.keys = append(p.keys, rec.Attrs[i].Key)
		}
		p.mask = mask
		r.compile(p, r.buildEntries(rec, mask))
	}
	r.perr = rec.ParseError
	dst = r.appendHeader(dst, rec, true)
	dst = append(dst, `,"message":`...)
	dst = jsonstr.AppendQuoted(dst, str(rec.Message))
	dst = r.exec(dst, p, rec)
	dst = append(dst, '}')
	if len(dst)-start <= r.max {
		return dst, false
	}
	dst = r.appendTruncated(dst[:start], rec, mask)
	clear(r.entries)
	clear(r.kept)
	return dst, true
}

func synMask(rec *record.Record) uint8 {
	var m uint8
	if o := rec.Origin; o != nil {
		if o.LogGroup != "" {
			m |= 1 << synLogGroup
		}
		if o.LogStream != "" {
			m |= 1 << synLogStream
		}
		if o.Account != "" {
			m |= 1 << synOwner
		}
	}
	if rec.ParseError != "" {
		m |= 1 << synParseError
	}
	if rec.EventID != "" {
		m |= maskEventID // an attribute named id moves aside: another plan
	}
	return m
}

// maskEventID marks plans of records with an event id; it is above the
// synthetic attributes' bits.
const maskEventID = 1 << 7

// cmpKey orders keys segment by segment: it is byte order with the end of a
// string below '.', and '.' below every other byte. Keys sharing a prefix
// path are therefore contiguous, leaves before the objects they collide with.
func cmpKey(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		switch {
		case len(a) < len(b):
			return -1
		case len(a) > len(b):
			return 1
		}
		return 0
	}
	switch ca, cb := a[i], b[i]; {
	case ca == '.':
		return -1
	case cb == '.':
		return 1
	case ca < cb:
		return -1
	}
	return 1
}

// buildEntries returns the attributes to place: empty keys skipped, invalid
// UTF-8 in keys replaced (as the escaper would, so that two keys never
// collide after escaping), reserved keys moved under ReservedPrefix, sorted
// stably by key, with the synthetic attributes of mask inserted after any
// equal key so that they win.
func (r *renderer) buildEntries(rec *record.Record, mask uint8) []entry {
	es := r.entries[:0]
	sorted := true
	for i := range rec.Attrs {
		k := rec.Attrs[i].Key
		if k == "" {
			continue
		}
		if !utf8.ValidString(k) {
			k = sanitizeKey(k)
		}
		if isReserved(k) || (rec.EventID != "" && topName(k) == "id") {
			k = ReservedPrefix + k
		}
		if sorted && len(es) > 0 && cmpKey(es[len(es)-1].key, k) > 0 {
			sorted = false
		}
		es = append(es, entry{key: k, src: int32(i)})
	}
	if !sorted {
		sortEntries(es)
	}
	for i := range numSyn {
		if mask&(1<<i) != 0 {
			es = insertEntry(es, entry{key: synKeys[i], src: ^int32(i)})
		}
	}
	r.entries = es
	return es
}

// sanitizeKey replaces each invalid byte with U+FFFD, as the escaper does.
func sanitizeKey(k string) string {
	var b []byte
	for i := 0; i < len(k); {
		r, size := utf8.DecodeRuneInString(k[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, k[i:i+size]...)
		}
		i += size
	}
	return string(b)
}

func sortEntries(es []entry) {
	if len(es) <= 32 {
		for i := 1; i < len(es); i++ { // stable insertion sort
			e := es[i]
			j := i
			for j > 0 && cmpKey(es[j-1].key, e.key) > 0 {
				es[j] = es[j-1]
				j--
			}
			es[j] = e
		}
		return
	}
	slices.SortStableFunc(es, func(a, b entry) int { return cmpKey(a.key, b.key) })
}

// insertEntry inserts e after every entry with a key <= e.key.
func insertEntry(es []entry, e entry) []entry {
	i := len(es)
	for i > 0 && cmpKey(es[i-1].key, e.key) > 0 {
		i--
	}
	return slices.Insert(es, i, e)
}

// compile fills p's structure from sorted entries.
func (r *renderer) compile(p *plan, es []entry) {
	p.frag, p.cuts, p.srcs = p.frag[:0], p.cuts[:0], p.srcs[:0]
	p.compileMembers(es, 0, false)
	if p.frag == nil {
		p.frag = []byte{} // non-nil marks the plan valid
	}
}

// compileMembers lays out the members of one object from es, all of which
// share the same path up to byte off; first says whether no member precedes.
func (p *plan) compileMembers(es []entry, off int, first bool) {
	for i := 0; i < len(es); {
		k := es[i].key
		segEnd := len(k)
		if j := strings.IndexByte(k[off:], '.'); j >= 0 {
			segEnd = off + j
		}
		seg := k[off:segEnd]
		// The run shares seg; its leaves (keys ending at segEnd) sort first.
		leaves := i
		for leaves < len(es) && es[leaves].key == k[:segEnd] {
			leaves++
		}
		j := leaves
		for j < len(es) && len(es[j].key) > segEnd && es[j].key[segEnd] == '.' && es[j].key[off:segEnd] == seg {
			j++
		}
		if !first {
			p.frag = append(p.frag, ',')
		}
		first = false
		p.frag = jsonstr.AppendQuoted(p.frag, seg)
		p.frag = append(p.frag, ':')
		if j > leaves {
			// An object: it wins over any leaf of the same name.
			p.frag = append(p.frag, '{')
			p.compileMembers(es[leaves:j], segEnd+1, true)
			p.frag = append(p.frag, '}')
		} else {
			// Only leaves: the last (latest) duplicate wins.
			p.cuts = append(p.cuts, int32(len(p.frag)))
			p.srcs = append(p.srcs, es[leaves-1].src)
		}
		i = j
	}
}

// exec writes the attributes of rec laid out by p.
func (r *renderer) exec(dst []byte, p *plan, rec *record.Record) []byte {
	prev := int32(0)
	for j, cut := range p.cuts {
		dst = append(dst, p.frag[prev:cut]...)
		prev = cut
		if src := p.srcs[j]; src >= 0 {
			dst = appendValue(dst, &rec.Attrs[src])
		} else {
			dst = r.appendSyn(dst, rec, ^src)
		}
	}
	return append(dst, p.frag[prev:]...)
}

func (r *renderer) appendSyn(dst []byte, rec *record.Record, i int32) []byte {
	switch i {
	case synLogGroup:
		return jsonstr.AppendQuoted(dst, rec.Origin.LogGroup)
	case synLogStream:
		return jsonstr.AppendQuoted(dst, rec.Origin.LogStream)
	case synOwner:
		return jsonstr.AppendQuoted(dst, rec.Origin.Account)
	case synParseError:
		return jsonstr.AppendQuoted(dst, r.perr)
	}
	return append(dst, "true"...) // synTruncated
}

func appendValue(dst []byte, a *record.Attr) []byte {
	switch a.Kind {
	case record.String:
		return jsonstr.AppendQuoted(dst, str(a.Str))
	case record.Int:
		return strconv.AppendInt(dst, a.Int, 10)
	case record.Number:
		if validNumber(a.Str) {
			return append(dst, a.Str...)
		}
		return jsonstr.AppendQuoted(dst, str(a.Str))
	case record.Bool:
		if a.Int != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

// appendHeader writes '{' and the top-level fields up to status. A short
// header (full=false) keeps only small ddsource/service, timestamp and status.
func (r *renderer) appendHeader(dst []byte, rec *record.Record, full bool) []byte {
	dst = append(dst, '{')
	open := len(dst)
	if full {
		dst = append(dst, r.fixedFields(rec)...)
	} else {
		source, service := r.sourceService(rec)
		if jsonstr.EscapedLen(source)+jsonstr.EscapedLen(service) <= 256 {
			dst = appendFixedFields(dst, source, service, "", "", nil, false)
		}
	}
	if len(dst) > open {
		dst = append(dst, ',')
	}
	if rec.Timestamp != 0 {
		dst = append(dst, `"timestamp":`...)
		dst = strconv.AppendInt(dst, rec.Timestamp, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"status":"`...)
	dst = append(dst, rec.Level.String()...)
	dst = append(dst, '"')
	if rec.EventID != "" {
		// The CloudWatch event id, as the Datadog Forwarder sends it: the
		// key to recognise a log delivered twice.
		dst = append(dst, `,"id":`...)
		dst = jsonstr.AppendQuoted(dst, rec.EventID)
	}
	return dst
}

func (r *renderer) sourceService(rec *record.Record) (string, string) {
	source, service := rec.Source, rec.Service
	if source == "" {
		source = r.d.Source
	}
	if service == "" {
		service = source
		if source == r.d.Source {
			service = r.d.Service
		}
	}
	return source, service
}

// headerCache remembers the rendered ddsource, service, hostname and ddtags,
// which records of one origin share.
type headerCache struct {
	valid                        bool
	replay                       bool
	source, service, host, dtags string
	tags                         []string // a copy: strings are immutable, slices are not
	b                            []byte
}

// fixedFields returns the rendered ddsource, service, hostname and ddtags
// fields of rec (without surrounding commas), from the cache when it can.
func (r *renderer) fixedFields(rec *record.Record) []byte {
	source, service := r.sourceService(rec)
	host, replay := r.d.Hostname, false
	if o := rec.Origin; o != nil {
		if o.LogGroup != "" {
			host = o.LogGroup
		}
		replay = o.Replay
	}
	h := &r.hdr
	if h.valid && h.source == source && h.service == service && h.host == host &&
		h.replay == replay && h.dtags == r.d.Tags && slices.Equal(h.tags, rec.Tags) {
		return h.b
	}
	h.valid, h.source, h.service, h.host, h.replay, h.dtags = true, source, service, host, replay, r.d.Tags
	h.tags = append(h.tags[:0], rec.Tags...)
	h.b = appendFixedFields(h.b[:0], source, service, host, r.d.Tags, rec.Tags, replay)
	return h.b
}

func appendFixedFields(dst []byte, source, service, host, dtags string, tags []string, replay bool) []byte {
	open := len(dst)
	sep := func(dst []byte) []byte {
		if len(dst) > open {
			dst = append(dst, ',')
		}
		return dst
	}
	if source != "" {
		dst = append(dst, `"ddsource":`...)
		dst = jsonstr.AppendQuoted(dst, source)
	}
	if service != "" {
		dst = append(sep(dst), `"service":`...)
		dst = jsonstr.AppendQuoted(dst, service)
	}
	if host != "" {
		dst = append(sep(dst), `"hostname":`...)
		dst = jsonstr.AppendQuoted(dst, host)
	}
	mark := len(dst)
	dst = append(sep(dst), `"ddtags":"`...)
	n := 0
	if dtags != "" {
		dst = jsonstr.AppendEscaped(dst, dtags)
		n++
	}
	for _, t := range tags {
		if t == "" {
			continue
		}
		if replay && t == "replay:true" {
			replay = false // already there
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = jsonstr.AppendEscaped(dst, t)
		n++
	}
	if replay {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, "replay:true"...)
		n++
	}
	if n == 0 {
		return dst[:mark]
	}
	return append(dst, '"')
}

// Truncation modes, tried in order until the log fits.
const (
	keepAll   = iota // all attributes, message cut
	keepSmall        // attributes larger than bigAttrBytes dropped
	keepNone         // only aws.awslogs and gwpipe
	skeleton         // short header, message and gwpipe.truncated only
)

// appendTruncated renders rec within r.max bytes. The message keeps either
// its full length or at least half of the limit; attributes give way first.
func (r *renderer) appendTruncated(dst []byte, rec *record.Record, mask uint8) []byte {
	start := len(dst)
	if pe := rec.ParseError; len(pe) > maxParseErrorBytes {
		cut := maxParseErrorBytes
		for cut > 0 && !utf8.RuneStart(pe[cut]) {
			cut--
		}
		r.perr = pe[:cut]
	}
	all := r.buildEntries(rec, mask|1<<synTruncated)
	msg := str(rec.Message)
	msgLen := -1
	for mode := keepAll; mode <= skeleton; mode++ {
		r.compile(&r.tmp, r.filter(all, rec, mode))
		r.tail = r.exec(r.tail[:0], &r.tmp, rec)
		r.tail = append(r.tail, '}')
		dst = r.appendHeader(dst[:start], rec, mode != skeleton)
		dst = append(dst, `,"message":"`...)
		budget := r.max - (len(dst) - start) - 1 - len(r.tail) // 1: closing quote
		if budget < 0 {
			continue
		}
		if msgLen < 0 {
			msgLen = jsonstr.EscapedLen(msg)
		}
		if budget >= msgLen || budget >= r.max/2 || mode == skeleton {
			dst, _ = jsonstr.AppendEscapedLimit(dst, msg, budget)
			dst = append(dst, '"')
			return append(dst, r.tail...)
		}
	}
	// Unreachable with r.max >= minLogBytes; keep the promise anyway.
	return append(dst[:start], `{"message":"","gwpipe":{"truncated":true}}`...)
}

// filter returns the entries to render in a truncation mode.
func (r *renderer) filter(es []entry, rec *record.Record, mode int) []entry {
	if mode == keepAll {
		return es
	}
	kept := r.kept[:0]
	for i := 0; i < len(es); {
		// Decide per run of equal keys, by its winner (the last one), so that
		// dropping a winner never resurrects an older duplicate.
		j := i + 1
		for j < len(es) && es[j].key == es[i].key {
			j++
		}
		w := es[j-1]
		switch {
		case w.src < 0:
			if mode != skeleton || w.src == ^int32(synTruncated) {
				kept = append(kept, w)
			}
		case mode == keepSmall && len(w.key)+len(rec.Attrs[w.src].Str) <= bigAttrBytes:
			kept = append(kept, w)
		}
		i = j
	}
	r.kept = kept
	return kept
}
