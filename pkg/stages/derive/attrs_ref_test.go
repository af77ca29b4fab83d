package derive

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// readReference is the straightforward reading of a record that Reader.Read
// replaces: every attribute's key classified by its name, no memory of
// the keys seen. Reader.Read must give the same Request for every record,
// whatever records it read before (TestReadMatchesReference, FuzzRead).
func readReference(rec *record.Record, r *Request, cacheKeys []string) {
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
		id := classify(a.Key, cacheKeys)
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

// refKeys are the keys the differential tests draw attributes from: every
// key derive reads, a cache status key, and others.
var refKeys = []string{
	KeyMethod, KeyMethod2, KeyRoute, KeyRoute2, KeyRoute3, KeyStatus, KeyStatus2, KeyDuration, KeyResponseLatency,
	KeySummaryElapsed, KeySummaryComplete, KeyIntegLatency, KeyIntegLatency2, KeyIntegLatency3, KeyBytesWritten,
	KeyResponseLength, KeyDataProcessed, KeyEventType, KeyErrorKind, KeyResponseType, KeyExecThrottled, KeyExecQuota,
	KeyIntegStatus, KeyIntegStatus2, KeyIntegStatus3, KeyIntegStatus4, KeyIntegError, KeyIntegError2, KeyIntegError3,
	KeyAPIID, KeyStage, KeyAccountID, KeyStageAccessLogs, "apigateway.cache.status", "apigateway.cacheHit",
	"http.request_id", "network.client.ip", "http.useragent", "", "http.method ", "HTTP.METHOD",
	// Keys at the address of others, shorter.
	KeyIntegStatus2[:len("apigateway.integration")], KeyMethod[:4], KeyIntegLatency[:len(KeyIntegError)],
}

// refValues are the attribute values drawn: usable and unusable ones.
var refValues = []string{
	"", "-", "GET", "post", "/pets/{id}", "GET /orders", "$default", "200", "429", "502", "99", "600", "31", "27.5", "-3",
	"1e3", "0x10", "NaN", "1.", ".5", "12.345", "007", "123456789012345678901234", "MESSAGE", "CONNECT", "THROTTLED",
	"QUOTA_EXCEEDED", "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT", "Hit", "MISS", "true", "0", "1", "Lambda timed out",
}

// refRecords decodes data into records: each attribute is four bytes
// (key, kind, value, int). A key byte with its high bit set takes a copy
// of the key (another address for the same name, as a decoded batch has);
// a 0xff byte ends a record.
func refRecords(data []byte) []record.Record {
	var recs []record.Record
	cur := record.Record{Kind: record.KindAccess}
	for len(data) > 0 {
		if data[0] == 0xff {
			recs = append(recs, cur)
			kind := record.KindAccess
			if len(data) > 1 && data[1]&1 == 1 {
				kind = record.KindSummary
			}
			cur = record.Record{Kind: kind}
			data = data[min(2, len(data)):]
			continue
		}
		var b [4]byte
		n := copy(b[:], data)
		data = data[n:]
		key := refKeys[int(b[0]&0x7f)%len(refKeys)]
		if b[0]&0x80 != 0 {
			key = strings.Clone(key)
		}
		v := []byte(refValues[int(b[2])%len(refValues)])
		a := record.Attr{Key: key}
		switch b[1] % 6 {
		case 0:
			a.Kind, a.Str = record.String, v
		case 1:
			a.Kind, a.Str = record.Number, v
		case 2:
			a.Kind, a.Int = record.Int, int64(int8(b[3]))*int64(b[2])
		case 3:
			a.Kind, a.Int = record.Bool, int64(b[3]&1)
		case 4:
			a.Kind = record.Null
		default:
			a.Kind, a.Int = record.Int, int64(b[3])*1_000_000
		}
		cur.Attrs = append(cur.Attrs, a)
	}
	return append(recs, cur)
}

// checkReads reads recs in order with one Reader, and each with
// readReference.
func checkReads(t *testing.T, rd *Reader, recs []record.Record) {
	t.Helper()
	for i := range recs {
		var got, want Request
		rd.Read(&recs[i], &got)
		readReference(&recs[i], &want, rd.cacheKeys)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d %+v:\nReader.Read   %+v\nreadReference %+v", i, recs[i].Attrs, got, want)
		}
	}
}

// refSeeds are FuzzRead's seed corpus.
func refSeeds() [][]byte {
	seeds := [][]byte{
		nil,
		{0, 0, 2, 0, 2, 0, 4, 0, 5, 2, 8, 0},
		{0, 0, 2, 0, 0xff, 0, 0, 0, 3, 0, 0xff, 0, 0x80, 0, 2, 0},
	}
	// Every key with every value, as each kind; then the same keys
	// reordered and copied, in records of growing length.
	var all []byte
	for k := range refKeys {
		for v := range refValues {
			all = append(all, byte(k), byte(v), byte(v), byte(k*7))
		}
		all = append(all, 0xff, byte(k))
	}
	seeds = append(seeds, all)
	var shapes []byte
	for n := 1; n < 30; n++ {
		for j := 0; j < n; j++ {
			k := byte((j*5 + n) % len(refKeys))
			if n%3 == 0 {
				k |= 0x80
			}
			shapes = append(shapes, k, byte(j), byte(n+j), byte(j))
		}
		shapes = append(shapes, 0xff, byte(n))
	}
	seeds = append(seeds, shapes)
	// A key, then a shorter key at its address, at the same position.
	var prefixes []byte
	for i, k := range refKeys {
		for j, l := range refKeys {
			if i != j && len(l) > 0 && len(l) < len(k) && unsafe.StringData(l) == unsafe.StringData(k) {
				prefixes = append(prefixes, byte(j), 0, 2, 0, byte(i), 5, 7, 9, 0xff, 0, byte(i), 0, 2, 0, byte(j), 5, 7, 9, 0xff, 0,
					byte(j), 0, 2, 0, byte(i), 5, 7, 9)
			}
		}
	}
	if len(prefixes) == 0 {
		panic("no key at the address of another")
	}
	return append(seeds, prefixes)
}

func TestReadMatchesReference(t *testing.T) {
	t.Parallel()
	for i, seed := range refSeeds() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkReads(t, NewReader(DefaultCacheStatusKeys), refRecords(seed))
			checkReads(t, NewReader(nil), refRecords(seed))
		})
	}
	t.Run("more attributes than the shape holds", func(t *testing.T) {
		var data []byte
		for j := 0; j < 3*maxShape; j++ {
			data = append(data, byte(j*11%len(refKeys)), byte(j), byte(j*3), byte(j))
		}
		recs := refRecords(append(append(data, 0xff, 0), data[8:]...))
		checkReads(t, NewReader(DefaultCacheStatusKeys), append(recs, recs...))
	})
	t.Run("parsed access logs", func(t *testing.T) {
		p, err := apigw.New(apigw.Config{})
		if err != nil {
			t.Fatal(err)
		}
		lines := []string{
			`{"apiId":"a1","stage":"prod","requestId":"r1","httpMethod":"GET","resourcePath":"/pets","status":200,"responseLength":12,"responseLatency":5,"integrationLatency":3}`,
			`{"requestId":"r2","httpMethod":"POST","routeKey":"POST /items","status":"429","responseLength":"-","responseLatency":7.5,"integrationStatus":502}`,
			`{"requestId":"r3","eventType":"MESSAGE","routeKey":"sendmessage","status":200,"connectionId":"c","integrationLatency":9,"error.responseType":"THROTTLED"}`,
			`{"apiId":"a1","stage":"prod","requestId":"r4","httpMethod":"GET","resourcePath":"/pets","status":500,"responseLength":12,"responseLatency":5,"integrationLatency":3,"cacheStatus":"hit"}`,
			`203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET /pets/{id} HTTP/1.1" 200 512 c0475a28-8de8-11e7-8d3f-4183da788f0f Dt6vFHHzNjMFahw=`,
		}
		b := &record.Batch{}
		var recs []record.Record
		for i := 0; i < 40; i++ {
			rec := record.Record{Origin: &record.Origin{LogGroup: "/aws/api-gateway/x"}, Message: []byte(lines[(i*3)%len(lines)])}
			p.Parse(b, &rec)
			recs = append(recs, rec)
		}
		checkReads(t, NewReader(DefaultCacheStatusKeys), recs)
	})
}

func FuzzRead(f *testing.F) {
	for _, s := range refSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReads(t, NewReader(DefaultCacheStatusKeys), refRecords(data))
	})
}
