package apigw

import (
	"math"
	"math/bits"
	"sync"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// Attribute keys produced by the mapping (see doc.go for the table).
const (
	KeyMethod            = "http.method"
	KeyStatusCode        = "http.status_code"
	KeyPath              = "http.url_details.path"
	KeyHost              = "http.url_details.host"
	KeyRoute             = "http.route"
	KeyClientIP          = "network.client.ip"
	KeyUserAgent         = "http.useragent"
	KeyRequestID         = "http.request_id"
	KeyDuration          = "duration"
	KeyBytesWritten      = "network.bytes_written"
	KeyHTTPVersion       = "http.version"
	KeyErrorMessage      = "error.message"
	KeyErrorKind         = "error.kind"
	KeyUserID            = "usr.id"
	KeyIntegLatency      = "http.integration.latency_ms"
	KeyIntegStatus       = "http.integration.status_code"
	KeyIntegRequestID    = "http.integration.request_id"
	KeyIntegError        = "http.integration.error"
	KeyAuthStatus        = "http.auth.status_code"
	KeyAuthLatency       = "http.auth.latency_ms"
	KeyAuthError         = "http.auth.error"
	KeyWAFAction         = "http.waf.action"
	KeyWAFStatus         = "http.waf.status_code"
	KeyWAFLatency        = "http.waf.latency_ms"
	KeyWAFError          = "http.waf.error"
	KeyWAFACL            = "http.waf.acl_arn"
	KeyCanary            = "apigateway.canary"
	KeyExecEvent         = "apigateway.execution.event"
	KeyExecTruncated     = "apigateway.execution.truncated"
	KeyExecThrottled     = "apigateway.execution.throttled"
	KeyExecQuota         = "apigateway.execution.quota_exceeded"
	KeyAuthorizerOutcome = "apigateway.authorizer.outcome"
)

// scratch is the per-Parse working state, pooled so the common path does not
// allocate. It also owns a slab from which records' attribute slices are
// carved (one allocation per ~slabSize attributes instead of one per record).
type scratch struct {
	// attrs is the destination of the record being parsed: the record's own
	// slice when it has room, else a chunk of slab.
	attrs []record.Attr
	// inSlab says attrs was carved from slab at slabAt with capacity slabChunk.
	inSlab bool
	slabAt int
	roles  [numRoles][]byte
	set    uint64 // bit per role
	seen   [maxSeenID / 64]uint64
	pos    [maxSeenID]uint16
	spans  []span
	path   []byte
	tmp    []byte
	b      *record.Batch
	slab   []record.Attr
	own    []record.Attr // destination for helpers that do not fill a record
	// ownDst says attrs is own (not a record's)
	ownDst bool
	// execLevel is the level of the execution line being classified.
	execLevel record.Level
}

type span struct{ start, end int }

const (
	slabSize  = 4096 // attributes per slab
	slabChunk = 64   // capacity carved per record; unused capacity is returned
)

var scratchPool = sync.Pool{New: func() any {
	return &scratch{spans: make([]span, 0, 32), path: make([]byte, 0, 128)}
}}

// getScratch returns a scratch writing into rec's attributes (rec may be
// nil for helpers that only classify).
func getScratch(b *record.Batch) *scratch {
	s := scratchPool.Get().(*scratch)
	s.b = b
	return s
}

// begin points the destination at rec.Attrs (reusing its capacity) or at a
// fresh chunk of the slab.
func (s *scratch) begin(rec *record.Record) {
	if cap(rec.Attrs) > 0 {
		s.attrs = rec.Attrs[:0]
		s.inSlab = false
		return
	}
	if cap(s.slab)-len(s.slab) < slabChunk {
		s.slab = make([]record.Attr, 0, slabSize)
	}
	l := len(s.slab)
	s.attrs = s.slab[l : l : l+slabChunk]
	s.inSlab, s.slabAt = true, l
}

// beginOwn points the destination at scratch-owned storage.
func (s *scratch) beginOwn() {
	s.attrs = s.own[:0]
	s.inSlab = false
	s.ownDst = true
}

func putScratch(s *scratch) {
	if s.ownDst {
		s.own = s.attrs[:0] // keep what append grew
		s.ownDst = false
	}
	s.reset()
	s.attrs = nil
	s.inSlab = false
	s.b = nil
	scratchPool.Put(s)
}

func (s *scratch) reset() {
	for m := s.set; m != 0; m &= m - 1 {
		s.roles[bits.TrailingZeros64(m)] = nil
	}
	s.set = 0
	s.attrs = s.attrs[:0]
	s.seen = [maxSeenID / 64]uint64{}
}

// keep copies p into the batch arena (or the heap without a batch).
func (s *scratch) keep(p []byte) []byte {
	if s.b != nil {
		return s.b.Keep(p)
	}
	return append([]byte(nil), p...)
}

// setVar records one variable's value: apigateway.<name> (last value wins on
// duplicates) and the role slot used for the standard attributes. Unset values
// ("-" or empty) are skipped. esc means val holds JSON escapes to decode.
func (s *scratch) setVar(v *varInfo, val []byte, esc bool) {
	if len(val) == 0 || (len(val) == 1 && val[0] == '-') {
		return
	}
	if esc {
		s.tmp, _ = jsonstr.Append(s.tmp[:0], val)
		val = s.keep(s.tmp)
		if len(val) == 0 {
			return
		}
	}
	kind := record.String
	if v.typ != typeString && record.ValidNumber(val) {
		kind = record.Number
	}
	idx := -1
	if uint(v.id) < maxSeenID {
		w, bit := v.id>>6, uint64(1)<<(v.id&63)
		if s.seen[w]&bit != 0 {
			idx = int(s.pos[v.id])
		} else {
			s.seen[w] |= bit
			s.pos[v.id] = uint16(len(s.attrs))
		}
	} else {
		for i := range s.attrs {
			if s.attrs[i].Key == v.key {
				idx = i
				break
			}
		}
	}
	if idx < 0 {
		s.attrs = append(s.attrs, record.Attr{Key: v.key, Kind: kind, Str: val})
	} else {
		a := &s.attrs[idx]
		a.Kind, a.Str = kind, val
	}
	if v.role != roleNone {
		s.roles[v.role] = val
		s.set |= 1 << v.role
	}
}

func (s *scratch) has(r role) bool { return s.set&(1<<r) != 0 }

func (s *scratch) add(a record.Attr) { s.attrs = append(s.attrs, a) }

func (s *scratch) str(key string, v []byte) {
	s.attrs = append(s.attrs, record.Attr{Key: key, Kind: record.String, Str: v})
}

func (s *scratch) int(key string, v int64) {
	s.attrs = append(s.attrs, record.Attr{Key: key, Kind: record.Int, Int: v})
}

func (s *scratch) bool(key string) {
	s.attrs = append(s.attrs, record.Attr{Key: key, Kind: record.Bool, Int: 1})
}

// intRole parses a role's value as an integer (decimal part truncated).
func (s *scratch) intRole(r role) (int64, bool) {
	if !s.has(r) {
		return 0, false
	}
	return parseIntLoose(s.roles[r])
}

// strRole adds key with the role's value when the role is set.
func (s *scratch) strRole(r role, key string) bool {
	if !s.has(r) {
		return false
	}
	s.str(key, s.roles[r])
	return true
}

// intRange is the range of integers an attribute accepts.
type intRange struct{ lo, hi int64 }

var (
	anyInt          = intRange{math.MinInt64, math.MaxInt64}
	nonNegative     = intRange{0, math.MaxInt64}
	httpStatusRange = intRange{100, 599}
)

// intRoleIn adds key with the role's value as an integer (see intRole) when
// the role is set and the integer lies in lim.
func (s *scratch) intRoleIn(r role, key string, lim intRange) bool {
	n, ok := s.intRole(r)
	if !ok || n < lim.lo || n > lim.hi {
		return false
	}
	s.int(key, n)
	return true
}

// finishAccess derives the standard Datadog attributes, level and timestamp
// from the role slots filled by setVar.
func (s *scratch) finishAccess(rec *record.Record) {
	rec.Level = record.LevelInfo
	if s.has(roleMethod) {
		s.str(KeyMethod, s.roles[roleMethod])
	} else if s.has(roleRouteKey) {
		if m := methodOfRouteKey(s.roles[roleRouteKey]); m != nil {
			s.str(KeyMethod, m)
		}
	}
	if n, ok := s.intRole(roleStatus); ok && n >= 100 && n <= 599 {
		s.int(KeyStatusCode, n)
		rec.Level = record.LevelForHTTPStatus(int(n))
	}
	s.strRole(rolePath, KeyPath)
	if s.has(roleResourcePath) {
		s.str(KeyRoute, s.roles[roleResourcePath])
	} else if s.has(roleRouteKey) {
		s.str(KeyRoute, RouteFromKey(s.roles[roleRouteKey]))
	}
	s.strRole(roleDomainName, KeyHost)
	s.strRole(roleSourceIP, KeyClientIP)
	s.strRole(roleUserAgent, KeyUserAgent)
	if !s.strRole(roleRequestID, KeyRequestID) {
		s.strRole(roleExtRequestID, KeyRequestID)
	}
	if s.has(roleResponseLatency) {
		if ns, ok := msToNanos(s.roles[roleResponseLatency]); ok {
			s.int(KeyDuration, ns)
		}
	}
	if !s.intRoleIn(roleResponseLength, KeyBytesWritten, nonNegative) {
		s.intRoleIn(roleDataProcessed, KeyBytesWritten, nonNegative)
	}
	if s.has(roleProtocol) {
		s.str(KeyHTTPVersion, httpVersion(s.roles[roleProtocol]))
	}
	s.strRole(roleErrorMessage, KeyErrorMessage)
	s.strRole(roleErrorType, KeyErrorKind)
	// integration
	if !s.intRoleIn(roleIntegrationLatency, KeyIntegLatency, anyInt) {
		s.intRoleIn(roleIntegrationLatency2, KeyIntegLatency, anyInt)
	}
	if !s.intRoleIn(roleIntegrationStatus, KeyIntegStatus, httpStatusRange) {
		s.intRoleIn(roleIntegrationStatus2, KeyIntegStatus, httpStatusRange)
	}
	s.strRole(roleIntegrationRequestID, KeyIntegRequestID)
	s.strRole(roleIntegrationError, KeyIntegError)
	// authorizer
	s.strRole(rolePrincipalID, KeyUserID)
	s.intRoleIn(roleAuthStatus, KeyAuthStatus, httpStatusRange)
	s.intRoleIn(roleAuthLatency, KeyAuthLatency, anyInt)
	s.strRole(roleAuthError, KeyAuthError)
	// WAF
	s.strRole(roleWAFResponseCode, KeyWAFAction)
	s.intRoleIn(roleWAFStatus, KeyWAFStatus, httpStatusRange)
	s.intRoleIn(roleWAFLatency, KeyWAFLatency, anyInt)
	s.strRole(roleWAFError, KeyWAFError)
	s.strRole(roleWebACL, KeyWAFACL)
	// timestamp
	if ms, ok := s.timestamp(); ok && !rec.TimeFixed {
		rec.Timestamp = ms
	}
}

func (s *scratch) timestamp() (int64, bool) {
	if s.has(roleRequestTimeEpoch) {
		if ms, ok := epochMillis(s.roles[roleRequestTimeEpoch]); ok {
			return ms, true
		}
	}
	if s.has(roleRequestTime) {
		v := s.roles[roleRequestTime]
		if ms, ok := epochMillis(v); ok {
			return ms, true
		}
		if ms, ok := parseCLFTime(v); ok {
			return ms, true
		}
	}
	return 0, false
}

// commit hands the collected attributes to rec. A slab chunk keeps only
// what was used (capped so later appends by other stages reallocate).
func (s *scratch) commit(rec *record.Record) {
	n := len(s.attrs)
	if !s.inSlab {
		if s.attrs == nil {
			rec.Attrs = rec.Attrs[:0]
			return
		}
		rec.Attrs = s.attrs
		return
	}
	if n == 0 {
		rec.Attrs = nil
		return
	}
	if cap(s.attrs) == slabChunk && len(s.slab) == s.slabAt && &s.slab[:s.slabAt+1][s.slabAt] == &s.attrs[0] {
		s.slab = s.slab[:s.slabAt+n]
	}
	rec.Attrs = s.attrs[:n:n]
}

// RouteFromKey turns an HTTP/WebSocket routeKey into a route: "GET /pets/{id}"
// → "/pets/{id}"; "$default", "$connect" and custom keys stay as they are
// (a key is "METHOD /path" only with an upper-case method, as API Gateway
// writes it). Derive reads routes with it too, so that a metric's route
// tag is the route of the log it counts.
func RouteFromKey(k []byte) []byte {
	for i := 0; i < len(k) && i < 8; i++ {
		c := k[i]
		if c == ' ' {
			if i > 0 && i+1 < len(k) && k[i+1] == '/' {
				return k[i+1:]
			}
			return k
		}
		if c < 'A' || c > 'Z' {
			return k
		}
	}
	return k
}

// methodOfRouteKey returns the HTTP method of a routeKey "GET /pets", or nil
// ("ANY /pets", "$default", WebSocket routes).
func methodOfRouteKey(k []byte) []byte {
	i := 0
	for i < len(k) && i < 8 && k[i] >= 'A' && k[i] <= 'Z' {
		i++
	}
	if i == 0 || i+1 >= len(k) || k[i] != ' ' || k[i+1] != '/' || string(k[:i]) == "ANY" {
		return nil
	}
	return k[:i]
}

// httpVersion turns "HTTP/1.1" into "1.1".
func httpVersion(p []byte) []byte {
	if len(p) > 5 && (p[0] == 'H' || p[0] == 'h') && (p[4] == '/') {
		return p[5:]
	}
	return p
}
