package derive

import (
	"bytes"
	"strconv"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// Attribute keys read from records. Each quantity has a preferred key (set
// by the parser's standard-attribute mapping) and fallbacks (the raw
// $context variables, for formats or producers that skip the mapping). The
// first key present with a usable value wins; a missing or unusable value
// ("-", empty, not a number) is simply absent.
const (
	KeyMethod  = "http.method" // String: GET, POST, …
	KeyMethod2 = "apigateway.httpMethod"
	KeyRoute   = "http.route" // String: resourcePath (REST) or routeKey without its method (HTTP/WebSocket)
	KeyRoute2  = "apigateway.resourcePath"
	KeyRoute3  = "apigateway.routeKey" // "GET /pets" → "/pets"; "$default" stays
	KeyStatus  = "http.status_code"    // Int
	KeyStatus2 = "apigateway.status"   // Number or String
	// Latency, ms. duration is in nanoseconds.
	KeyDuration        = "duration"
	KeyResponseLatency = "apigateway.responseLatency"
	KeySummaryElapsed  = "apigateway.summary.elapsed_ms" // summaries only, when complete: first to last execution line
	KeySummaryComplete = "apigateway.summary.complete"   // Bool
	KeyIntegLatency    = "http.integration.latency_ms"
	KeyIntegLatency2   = "apigateway.integrationLatency"
	KeyIntegLatency3   = "apigateway.integration.latency"
	KeyBytesWritten    = "network.bytes_written" // Int
	KeyResponseLength  = "apigateway.responseLength"
	KeyDataProcessed   = "apigateway.dataProcessed"
	KeyEventType       = "apigateway.eventType" // CONNECT, MESSAGE, DISCONNECT
	KeyErrorKind       = "error.kind"           // the parser's copy of $context.error.responseType
	KeyResponseType    = "apigateway.error.responseType"
	KeyExecThrottled   = "apigateway.execution.throttled"      // Bool, from "exceeded throttle limit" lines
	KeyExecQuota       = "apigateway.execution.quota_exceeded" // Bool, from "exceeded quota limit" lines
	KeyIntegStatus     = "http.integration.status_code"        // Int
	KeyIntegStatus2    = "apigateway.integration.status"
	KeyIntegStatus3    = "apigateway.integrationStatus"
	KeyIntegStatus4    = "apigateway.integration.integrationStatus"
	KeyIntegError      = "http.integration.error"
	KeyIntegError2     = "apigateway.integrationErrorMessage"
	KeyIntegError3     = "apigateway.integration.error"
	KeyAPIID           = "apigateway.apiId"             // fallback of the apiid tag
	KeyStage           = "apigateway.stage"             // fallback of the stage tag
	KeyAccountID       = "apigateway.accountId"         // fallback of the aws_account tag
	KeyStageAccessLogs = "gwpipe.stage_has_access_logs" // Bool, optional: set by enrichment from the stage's accessLogSettings
)

// Request is what derive reads from one record. Byte slices alias the
// record's attributes: valid only as long as the record.
type Request struct {
	Method    []byte
	Route     []byte
	Status    int // 0 when unknown
	EventType []byte

	LatencyMS       float64
	HasLatency      bool
	IntegLatencyMS  float64
	HasIntegLatency bool
	ResponseBytes   float64
	HasResponseSize bool

	Throttled        bool
	IntegrationError bool
	Cache            CacheStatus

	// Fallbacks for the API tags when rec.Tags lacks them.
	APIID, Stage, Account []byte
	// StageAccessLogs is +1 or -1 when the record says whether its stage
	// writes access logs, 0 when it does not say.
	StageAccessLogs int8
}

// CacheStatus is a request's cache outcome, when the log format carries it.
type CacheStatus uint8

const (
	CacheUnknown CacheStatus = iota
	CacheHit
	CacheMiss
)

// Field ids: what an attribute key means to derive.
const (
	fNone uint8 = iota
	fMethod
	fMethod2
	fRoute
	fRoute2
	fRoute3
	fStatus
	fStatus2
	fDuration
	fResponseLatency
	fSummaryElapsed
	fSummaryComplete
	fIntegLatency
	fIntegLatency2
	fIntegLatency3
	fBytesWritten
	fResponseLength
	fDataProcessed
	fEventType
	fErrorKind
	fExecThrottled
	fIntegStatus
	fIntegStatus2
	fIntegStatus3
	fIntegStatus4
	fIntegError
	fAPIID
	fStage
	fAccount
	fStageAccessLogs
	fCache
)

// classify maps an attribute key to its field id.
func classify(key string, cacheKeys []string) uint8 {
	switch key {
	case KeyMethod:
		return fMethod
	case KeyMethod2:
		return fMethod2
	case KeyRoute:
		return fRoute
	case KeyRoute2:
		return fRoute2
	case KeyRoute3:
		return fRoute3
	case KeyStatus:
		return fStatus
	case KeyStatus2:
		return fStatus2
	case KeyDuration:
		return fDuration
	case KeyResponseLatency:
		return fResponseLatency
	case KeySummaryElapsed:
		return fSummaryElapsed
	case KeySummaryComplete:
		return fSummaryComplete
	case KeyIntegLatency:
		return fIntegLatency
	case KeyIntegLatency2:
		return fIntegLatency2
	case KeyIntegLatency3:
		return fIntegLatency3
	case KeyBytesWritten:
		return fBytesWritten
	case KeyResponseLength:
		return fResponseLength
	case KeyDataProcessed:
		return fDataProcessed
	case KeyEventType:
		return fEventType
	case KeyErrorKind, KeyResponseType:
		return fErrorKind
	case KeyExecThrottled, KeyExecQuota:
		return fExecThrottled
	case KeyIntegStatus:
		return fIntegStatus
	case KeyIntegStatus2:
		return fIntegStatus2
	case KeyIntegStatus3:
		return fIntegStatus3
	case KeyIntegStatus4:
		return fIntegStatus4
	case KeyIntegError, KeyIntegError2, KeyIntegError3:
		return fIntegError
	case KeyAPIID:
		return fAPIID
	case KeyStage:
		return fStage
	case KeyAccountID:
		return fAccount
	case KeyStageAccessLogs:
		return fStageAccessLogs
	}
	for _, k := range cacheKeys {
		if key == k {
			return fCache
		}
	}
	return fNone
}

// Reader reads Requests from records. It remembers which attribute keys it
// has seen (keys are mostly the parser's constant strings, so a key's
// address identifies it), which makes a record's pass cost one comparison
// per attribute instead of a string switch: records of one format have
// their attributes in one order, so each attribute's key is first compared
// with the previous record's key at its position (shape), then looked up
// in a table of the keys seen (slots). Not safe for concurrent use.
type Reader struct {
	cacheKeys []string
	shape     [maxShape]keySlot
	slots     [512]keySlot
}

// maxShape is how many leading attributes of a record the shape holds.
const maxShape = 64

type keySlot struct {
	p  *byte
	n  int
	id uint8
}

// NewReader returns a Reader; cacheKeys are the attributes holding a cache
// status (Config.CacheStatusKeys).
func NewReader(cacheKeys []string) *Reader { return &Reader{cacheKeys: cacheKeys} }

// lookup is the field id of the key of the record's i-th attribute when it
// differs from the previous record's: from the table of keys seen, else
// classified and remembered.
func (rd *Reader) lookup(i int, key string) uint8 {
	p := unsafe.StringData(key)
	if p == nil {
		return classify(key, rd.cacheKeys)
	}
	s := &rd.slots[(uintptr(unsafe.Pointer(p))>>3^uintptr(len(key)))&(uintptr(len(rd.slots))-1)]
	if s.p != p || s.n != len(key) {
		*s = keySlot{p: p, n: len(key), id: classify(key, rd.cacheKeys)}
	}
	if i < maxShape {
		rd.shape[i] = *s
	}
	return s.id
}

// ReadRequest fills r from rec's attributes in one pass over them. It never
// fails: what is missing or unusable is left absent. cacheKeys are the
// attributes holding a cache status (Config.CacheStatusKeys). A Reader does
// the same faster when called for many records.
func ReadRequest(rec *record.Record, cacheKeys []string, r *Request) {
	read(rec, r, nil, cacheKeys)
}

// Read fills r from rec's attributes, as ReadRequest.
func (rd *Reader) Read(rec *record.Record, r *Request) { read(rec, r, rd, rd.cacheKeys) }

func read(rec *record.Record, r *Request, rd *Reader, cacheKeys []string) {
	*r = Request{}
	// Candidates by precedence: index 0 is the preferred key. Numbers are
	// read only for the candidates that decide (last, by field id: the
	// last attribute of each key, as reading each in turn would leave
	// it), so that a fallback the preferred key shadows (apigateway.status
	// beside http.status_code, …) is not parsed.
	var (
		method, route                  [2][]byte
		last                           [fCache + 1]*record.Attr
		latency                        float64
		hasLat, complete               bool
		integErr                       bool
		throttledKind, integFailedKind bool
	)
	for i := range rec.Attrs {
		a := &rec.Attrs[i]
		var id uint8
		if rd == nil {
			id = classify(a.Key, cacheKeys)
		} else if s := &rd.shape[i&(maxShape-1)]; i < maxShape && s.p == unsafe.StringData(a.Key) && s.n == len(a.Key) && s.p != nil {
			id = s.id
		} else {
			id = rd.lookup(i, a.Key)
		}
		switch id {
		case fNone:
		case fMethod:
			method[0] = strVal(a)
		case fMethod2:
			method[1] = strVal(a)
		case fRoute:
			route[0] = strVal(a)
		case fRoute2:
			route[1] = strVal(a)
		case fRoute3, fStatus, fStatus2, fResponseLatency, fSummaryElapsed, fIntegLatency, fIntegLatency2, fIntegLatency3,
			fBytesWritten, fResponseLength, fDataProcessed, fEventType, fIntegStatus, fIntegStatus2, fIntegStatus3, fIntegStatus4,
			fAPIID, fStage, fAccount:
			last[id] = a
		case fDuration:
			// The last usable one: an unusable one does not clear it.
			if v, ok := numVal(a); ok && v >= 0 {
				latency, hasLat = v/1e6, true
			}
		case fSummaryComplete:
			complete = a.Kind == record.Bool && a.Int != 0
		case fErrorKind:
			switch string(strVal(a)) {
			case "THROTTLED", "QUOTA_EXCEEDED":
				throttledKind = true
			case "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT":
				integFailedKind = true
			}
		case fExecThrottled:
			if a.Kind == record.Bool && a.Int != 0 {
				r.Throttled = true
			}
		case fIntegError:
			if len(strVal(a)) > 0 {
				integErr = true
			}
		case fStageAccessLogs:
			if a.Kind == record.Bool {
				r.StageAccessLogs = -1
				if a.Int != 0 {
					r.StageAccessLogs = 1
				}
			}
		case fCache:
			if c := cacheVal(a); c != CacheUnknown {
				r.Cache = c
			}
		}
	}
	r.Method = firstBytes(method[:])
	if r.Route = firstBytes(route[:]); r.Route == nil && last[fRoute3] != nil {
		if rk := apigw.RouteFromKey(strVal(last[fRoute3])); len(rk) > 0 {
			r.Route = rk
		}
	}
	r.EventType = lastStr(last[fEventType])
	r.APIID, r.Stage, r.Account = lastStr(last[fAPIID]), lastStr(last[fStage]), lastStr(last[fAccount])
	r.Status = firstStatus(last[fStatus], last[fStatus2], nil, nil)
	if hasLat {
		r.LatencyMS, r.HasLatency = latency, true
	} else if v, ok := firstNonNeg(last[fResponseLatency], nil, nil); ok {
		r.LatencyMS, r.HasLatency = v, true
	} else if rec.Kind == record.KindSummary && complete {
		r.LatencyMS, r.HasLatency = firstNonNeg(last[fSummaryElapsed], nil, nil)
	}
	r.IntegLatencyMS, r.HasIntegLatency = firstNonNeg(last[fIntegLatency], last[fIntegLatency2], last[fIntegLatency3])
	r.ResponseBytes, r.HasResponseSize = firstNonNeg(last[fBytesWritten], last[fResponseLength], last[fDataProcessed])
	if r.Status == 429 || throttledKind {
		r.Throttled = true
	}
	if integErr || integFailedKind || firstStatus(last[fIntegStatus], last[fIntegStatus2], last[fIntegStatus3], last[fIntegStatus4]) >= 400 {
		r.IntegrationError = true
	}
}

// lastStr is strVal of a candidate, nil when there is none.
func lastStr(a *record.Attr) []byte {
	if a == nil {
		return nil
	}
	return strVal(a)
}

// firstStatus is the first usable HTTP status of candidates in precedence
// order (nil: none), or 0.
func firstStatus(a, b, c, d *record.Attr) int {
	for _, x := range [...]*record.Attr{a, b, c, d} {
		if x != nil {
			if v := httpStatus(x); v != 0 {
				return v
			}
		}
	}
	return 0
}

// firstNonNeg is the first usable non-negative number of candidates in
// precedence order (nil: none).
func firstNonNeg(a, b, c *record.Attr) (float64, bool) {
	for _, x := range [...]*record.Attr{a, b, c} {
		if x != nil {
			if v, ok := nonNeg(x); ok {
				return v, true
			}
		}
	}
	return 0, false
}

func firstBytes(c [][]byte) []byte {
	for _, b := range c {
		if len(b) > 0 {
			return b
		}
	}
	return nil
}

// strVal is a string attribute's value, or nil when it is empty, "-" (an
// unset $context variable) or not a string.
func strVal(a *record.Attr) []byte {
	if a.Kind != record.String && a.Kind != record.Number {
		return nil
	}
	if len(a.Str) == 0 || (len(a.Str) == 1 && a.Str[0] == '-') {
		return nil
	}
	return a.Str
}

// numVal reads a number from an Int, Number, Bool or numeric String
// attribute.
func numVal(a *record.Attr) (float64, bool) {
	switch a.Kind {
	case record.Int:
		return float64(a.Int), true
	case record.Number, record.String:
		return parseNum(a.Str)
	}
	return 0, false
}

func nonNeg(a *record.Attr) (float64, bool) {
	v, ok := numVal(a)
	if !ok || v < 0 {
		return 0, false
	}
	return v, true
}

// httpStatus reads an HTTP status (100-599), or 0.
func httpStatus(a *record.Attr) int {
	v, ok := numVal(a)
	if !ok || v < 100 || v > 599 {
		return 0
	}
	return int(v)
}

// parseNum parses a decimal number without allocating; the common shapes
// ("31", "27.5") take the fast path.
func parseNum(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 32 {
		return 0, false
	}
	var n uint64
	i := 0
	neg := false
	if b[0] == '-' {
		neg = true
		i = 1
		if len(b) == 1 {
			return 0, false
		}
	}
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 18; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	if i == len(b) && i > start {
		v := float64(n)
		if neg {
			v = -v
		}
		return v, true
	}
	if i < len(b) && b[i] == '.' && i > start {
		frac, scale := uint64(0), 1.0
		j := i + 1
		for ; j < len(b) && b[j] >= '0' && b[j] <= '9' && j-i <= 15; j++ {
			frac = frac*10 + uint64(b[j]-'0')
			scale *= 10
		}
		if j == len(b) && j > i+1 {
			v := float64(n) + float64(frac)/scale
			if neg {
				v = -v
			}
			return v, true
		}
	}
	// Exponents and long numbers: the standard parser (rare).
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || v != v || v > 1e300 || v < -1e300 {
		return 0, false
	}
	return v, true
}

func cacheVal(a *record.Attr) CacheStatus {
	if a.Kind == record.Bool {
		if a.Int != 0 {
			return CacheHit
		}
		return CacheMiss
	}
	v := strVal(a)
	switch {
	case bytes.EqualFold(v, []byte("hit")), bytes.EqualFold(v, []byte("true")), bytes.Equal(v, []byte("1")):
		return CacheHit
	case bytes.EqualFold(v, []byte("miss")), bytes.EqualFold(v, []byte("false")), bytes.Equal(v, []byte("0")):
		return CacheMiss
	}
	return CacheUnknown
}
