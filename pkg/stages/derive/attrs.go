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
// address identifies it), which makes a record's pass cost one table probe
// per attribute instead of a string switch. Not safe for concurrent use.
type Reader struct {
	cacheKeys []string
	slots     [512]keySlot
}

type keySlot struct {
	p  *byte
	n  int
	id uint8
}

// NewReader returns a Reader; cacheKeys are the attributes holding a cache
// status (Config.CacheStatusKeys).
func NewReader(cacheKeys []string) *Reader { return &Reader{cacheKeys: cacheKeys} }

// learn classifies a key missing from the table and remembers it.
func (rd *Reader) learn(s *keySlot, key string) uint8 {
	id := classify(key, rd.cacheKeys)
	*s = keySlot{p: unsafe.StringData(key), n: len(key), id: id}
	return id
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
	// Candidates by precedence: index 0 is the preferred key.
	var (
		method, route                  [3][]byte
		status, integStatus            [4]int
		latency, integLat, size        [3]float64
		hasLat, hasInteg, hasSize      [3]bool
		elapsed                        float64
		hasElapsed, complete           bool
		integErr                       bool
		throttledKind, integFailedKind bool
	)
	for i := range rec.Attrs {
		a := &rec.Attrs[i]
		var id uint8
		if rd == nil {
			id = classify(a.Key, cacheKeys)
		} else if p := unsafe.StringData(a.Key); p != nil {
			s := &rd.slots[(uintptr(unsafe.Pointer(p))>>3^uintptr(len(a.Key)))&(uintptr(len(rd.slots))-1)]
			if s.p == p && s.n == len(a.Key) {
				id = s.id
			} else {
				id = rd.learn(s, a.Key)
			}
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
		case fRoute3:
			route[2] = apigw.RouteFromKey(strVal(a))
		case fStatus:
			status[0] = httpStatus(a)
		case fStatus2:
			status[1] = httpStatus(a)
		case fDuration:
			if v, ok := numVal(a); ok && v >= 0 {
				latency[0], hasLat[0] = v/1e6, true
			}
		case fResponseLatency:
			latency[1], hasLat[1] = nonNeg(a)
		case fSummaryElapsed:
			elapsed, hasElapsed = nonNeg(a)
		case fSummaryComplete:
			complete = a.Kind == record.Bool && a.Int != 0
		case fIntegLatency:
			integLat[0], hasInteg[0] = nonNeg(a)
		case fIntegLatency2:
			integLat[1], hasInteg[1] = nonNeg(a)
		case fIntegLatency3:
			integLat[2], hasInteg[2] = nonNeg(a)
		case fBytesWritten:
			size[0], hasSize[0] = nonNeg(a)
		case fResponseLength:
			size[1], hasSize[1] = nonNeg(a)
		case fDataProcessed:
			size[2], hasSize[2] = nonNeg(a)
		case fEventType:
			r.EventType = strVal(a)
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
		case fIntegStatus:
			integStatus[0] = httpStatus(a)
		case fIntegStatus2:
			integStatus[1] = httpStatus(a)
		case fIntegStatus3:
			integStatus[2] = httpStatus(a)
		case fIntegStatus4:
			integStatus[3] = httpStatus(a)
		case fIntegError:
			if len(strVal(a)) > 0 {
				integErr = true
			}
		case fAPIID:
			r.APIID = strVal(a)
		case fStage:
			r.Stage = strVal(a)
		case fAccount:
			r.Account = strVal(a)
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
	r.Route = firstBytes(route[:])
	r.Status = firstInt(status[:])
	if v, ok := firstNum(latency[:], hasLat[:]); ok {
		r.LatencyMS, r.HasLatency = v, true
	} else if rec.Kind == record.KindSummary && complete && hasElapsed {
		r.LatencyMS, r.HasLatency = elapsed, true
	}
	r.IntegLatencyMS, r.HasIntegLatency = firstNum(integLat[:], hasInteg[:])
	r.ResponseBytes, r.HasResponseSize = firstNum(size[:], hasSize[:])
	if r.Status == 429 || throttledKind {
		r.Throttled = true
	}
	if is := firstInt(integStatus[:]); is >= 400 || integErr || integFailedKind {
		r.IntegrationError = true
	}
}

func firstBytes(c [][]byte) []byte {
	for _, b := range c {
		if len(b) > 0 {
			return b
		}
	}
	return nil
}

func firstInt(c []int) int {
	for _, v := range c {
		if v != 0 {
			return v
		}
	}
	return 0
}

func firstNum(v []float64, has []bool) (float64, bool) {
	for i := range v {
		if has[i] {
			return v[i], true
		}
	}
	return 0, false
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
