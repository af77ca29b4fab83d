package metricstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// The OpenTelemetry output is read straight off the wire with protowire
// rather than unmarshalled into the generated go.opentelemetry.io/proto/otlp
// types: those allocate a struct per attribute, value and data point, about
// ten per CloudWatch datum, and a metric stream is all data points. The
// tests build their records with the generated types, and the fuzz target
// checks this reader against proto.Unmarshal.
//
// Field numbers (opentelemetry-proto v1.0.0; 0.7.0 where it differs):
//
//	ExportMetricsServiceRequest  1 resource_metrics
//	ResourceMetrics              1 resource, 2 scope_metrics (0.7.0: instrumentation_library_metrics),
//	                             1000 instrumentation_library_metrics (deprecated, 0.x)
//	Resource                     1 attributes (KeyValue)
//	ScopeMetrics                 2 metrics
//	Metric                       1 name, 3 unit, 5 gauge, 7 sum, 9 histogram, 10 exponential_histogram,
//	                             11 summary (0.7.0: double_summary; 4, 6, 8 int_* kinds)
//	Summary                      1 data_points
//	SummaryDataPoint             7 attributes (KeyValue) (0.7.0: 1 labels, StringKeyValue), 2 start_time_unix_nano,
//	                             3 time_unix_nano, 4 count, 5 sum, 6 quantile_values, 8 flags
//	ValueAtQuantile              1 quantile, 2 value
//	KeyValue                     1 key, 2 value (AnyValue); StringKeyValue 1 key, 2 value (string)
//	AnyValue                     1 string_value, 6 kvlist_value (KeyValueList: 1 values)
const (
	fRequestResourceMetrics = 1

	fResourceMetricsResource   = 1
	fResourceMetricsScope      = 2
	fResourceMetricsDeprecated = 1000

	fResourceAttributes = 1
	fScopeMetrics       = 2

	fMetricName    = 1
	fMetricUnit    = 3
	fMetricSummary = 11

	fSummaryDataPoints = 1

	fPointLabels    = 1
	fPointStart     = 2
	fPointTime      = 3
	fPointCount     = 4
	fPointSum       = 5
	fPointQuantiles = 6
	fPointAttrs     = 7
	fPointFlags     = 8

	fQuantile      = 1
	fQuantileValue = 2

	fKVKey   = 1
	fKVValue = 2

	fAnyString = 1
	fAnyKVList = 6

	fKVListValues = 1

	flagNoRecordedValue = 1
)

// metricNamePrefix starts the name CloudWatch gives each OpenTelemetry
// metric: amazonaws.com/<namespace>/<metric name>.
const metricNamePrefix = "amazonaws.com/"

// decodeOTel decodes a record of size-delimited ExportMetricsServiceRequest
// frames. A frame is decoded in full before any of its points are emitted,
// so that a corrupt frame emits nothing; the frames after it still decode
// as long as the length prefixes hold.
func (d *Decoder) decodeOTel(sc *scratch, data []byte, fn func(record.Metric)) (n int, bad []BadPart) {
	frame := 0
	for off := 0; off < len(data); {
		frame++
		size, k := protowire.ConsumeVarint(data[off:])
		if k < 0 {
			return n, append(bad, BadPart{Offset: off, Frame: frame, Data: data[off:],
				Err: fmt.Errorf("frame length: %w", protowire.ParseError(k))})
		}
		if size > uint64(len(data)-off-k) {
			return n, append(bad, BadPart{Offset: off, Frame: frame, Data: data[off:],
				Err: fmt.Errorf("frame of %d bytes overruns the record (%d left)", size, len(data)-off-k)})
		}
		end := off + k + int(size)
		cnt, err := d.decodeFrame(sc, data[off+k:end], fn)
		n += cnt
		if err != nil {
			bad = append(bad, BadPart{Offset: off, Frame: frame, Data: data[off:end:end], Err: err})
		}
		off = end
	}
	return n, bad
}

// decodeFrame decodes one ExportMetricsServiceRequest.
func (d *Decoder) decodeFrame(sc *scratch, frame []byte, fn func(record.Metric)) (int, error) {
	p := otelParser{sc: sc, frame: frame}
	sc.str, sc.dims, sc.pcts, sc.datums = sc.str[:0], sc.dims[:0], sc.pcts[:0], sc.datums[:0]
	if err := p.request(frame); err != nil {
		return 0, err
	}
	n, refused := 0, 0
	var first error
	for i := range sc.datums {
		k, err := d.m.mapRaw(sc, &sc.datums[i], fn)
		n += k
		if err != nil {
			refused++
			if first == nil {
				first = fmt.Errorf("data point %d (%s/%s): %w", i+1, sc.datums[i].namespace, sc.datums[i].metric, err)
			}
		}
	}
	for _, e := range p.refused {
		refused++
		if first == nil {
			first = e
		}
	}
	if refused > 0 {
		return n, fmt.Errorf("%d of %d data points refused, first: %w", refused, len(sc.datums)+len(p.refused), first)
	}
	if p.points == 0 && len(p.refused) == 0 && len(frame) > 0 {
		// A frame of CloudWatch's holds data points: this one is other
		// protobuf, which must not vanish unnoticed.
		return 0, errors.New("no data points in the frame")
	}
	return n, nil
}

// otelParser collects a frame's data points into sc.datums.
type otelParser struct {
	sc    *scratch
	frame []byte
	// per ResourceMetrics
	account, region []byte
	// data points (or metrics of another kind) that cannot be mapped
	refused []error
	// points counts the summary data points read, with a value or not.
	points int
}

// at returns the offset of b, a sub-slice of the frame, in the frame.
func (p *otelParser) at(b []byte) int { return cap(p.frame) - cap(b) }

func (p *otelParser) errAt(b []byte, format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.at(b), fmt.Sprintf(format, args...))
}

// iter walks the fields of one protobuf message. It is written for the
// common case (one-byte tags and lengths) and leaves the rest to
// protowire.
type iter struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	val []byte // BytesType
	u   uint64 // VarintType, Fixed32Type, Fixed64Type
	err error
	at  []byte // where the failing field starts
}

// next reads the next field; false at the end of the message or on error.
func (it *iter) next() bool {
	b := it.b
	if len(b) == 0 || it.err != nil {
		return false
	}
	var tag uint64
	n := 1
	if b[0] < 0x80 {
		tag = uint64(b[0])
	} else if tag, n = protowire.ConsumeVarint(b); n < 0 {
		return it.fail(b, protowire.ParseError(n))
	}
	it.num, it.typ = protowire.Number(tag>>3), protowire.Type(tag&7)
	if !it.num.IsValid() {
		return it.fail(b, errInvalidField)
	}
	rest := b[n:]
	switch it.typ {
	case protowire.BytesType:
		var l uint64
		m := 1
		if len(rest) > 0 && rest[0] < 0x80 {
			l = uint64(rest[0])
		} else if l, m = protowire.ConsumeVarint(rest); m < 0 {
			return it.fail(b, protowire.ParseError(m))
		}
		if l > uint64(len(rest)-m) {
			return it.fail(b, errTruncated)
		}
		it.val, it.b = rest[m:m+int(l):m+int(l)], rest[m+int(l):]
	case protowire.Fixed64Type:
		if len(rest) < 8 {
			return it.fail(b, errTruncated)
		}
		it.u, it.b = binary.LittleEndian.Uint64(rest), rest[8:]
	default:
		m := protowire.ConsumeFieldValue(it.num, it.typ, rest)
		if m < 0 {
			return it.fail(b, protowire.ParseError(m))
		}
		switch it.typ {
		case protowire.VarintType:
			it.u, _ = protowire.ConsumeVarint(rest)
		case protowire.Fixed32Type:
			v, _ := protowire.ConsumeFixed32(rest)
			it.u = uint64(v)
		}
		it.b = rest[m:]
	}
	return true
}

func (it *iter) fail(at []byte, err error) bool {
	it.err, it.at = err, at
	return false
}

var (
	errInvalidField = errors.New("invalid field number")
	errTruncated    = errors.New("unexpected EOF")
)

// check returns the iterator's error, placed in the frame.
func (p *otelParser) check(it *iter) error {
	if it.err == nil {
		return nil
	}
	return fmt.Errorf("offset %d: %w", p.at(it.at), it.err)
}

func (p *otelParser) request(b []byte) error {
	it := iter{b: b}
	for it.next() {
		if it.num == fRequestResourceMetrics && it.typ == protowire.BytesType {
			if err := p.resourceMetrics(it.val); err != nil {
				return err
			}
		}
	}
	return p.check(&it)
}

func (p *otelParser) resourceMetrics(b []byte) error {
	p.account, p.region = nil, nil
	// The resource comes first on the wire, but a message may order its
	// fields freely: read it before the metrics that need its account.
	it := iter{b: b}
	for it.next() {
		if it.num == fResourceMetricsResource && it.typ == protowire.BytesType {
			if err := p.resource(it.val); err != nil {
				return err
			}
		}
	}
	if err := p.check(&it); err != nil {
		return err
	}
	it = iter{b: b}
	for it.next() {
		if (it.num != fResourceMetricsScope && it.num != fResourceMetricsDeprecated) || it.typ != protowire.BytesType {
			continue
		}
		scope := iter{b: it.val}
		for scope.next() {
			if scope.num == fScopeMetrics && scope.typ == protowire.BytesType {
				if err := p.metric(scope.val); err != nil {
					return err
				}
			}
		}
		if err := p.check(&scope); err != nil {
			return err
		}
	}
	return p.check(&it)
}

func (p *otelParser) resource(b []byte) error {
	it := iter{b: b}
	for it.next() {
		if it.num != fResourceAttributes || it.typ != protowire.BytesType {
			continue
		}
		key, val, kind, err := p.keyValue(it.val)
		if err != nil {
			return err
		}
		if kind != anyString {
			continue
		}
		switch string(key) {
		case "cloud.account.id":
			p.account = val
		case "cloud.region":
			p.region = val
		}
	}
	return p.check(&it)
}

// anyValue kinds.
const (
	anyNone   = iota // no value set: read as ""
	anyString        // string_value
	anyKVList        // kvlist_value
	anyOther         // bool, int, double, array or bytes
)

// keyValue reads a KeyValue: its key, and its value's string_value or
// kvlist_value (the list's bytes).
func (p *otelParser) keyValue(b []byte) (key, val []byte, kind int, err error) {
	it := iter{b: b}
	for it.next() {
		if it.typ != protowire.BytesType {
			continue
		}
		switch it.num {
		case fKVKey:
			key = it.val
		case fKVValue:
			val, kind = nil, anyNone
			v := iter{b: it.val}
			for v.next() {
				switch {
				case v.num == fAnyString && v.typ == protowire.BytesType:
					val, kind = v.val, anyString
				case v.num == fAnyKVList && v.typ == protowire.BytesType:
					val, kind = v.val, anyKVList
				case v.num >= 2 && v.num <= 7:
					val, kind = nil, anyOther
				}
			}
			if err := p.check(&v); err != nil {
				return nil, nil, 0, err
			}
		}
	}
	return key, val, kind, p.check(&it)
}

func (p *otelParser) metric(b []byte) error {
	var name, unit []byte
	kinds := 0
	it := iter{b: b}
	for it.next() {
		if it.typ != protowire.BytesType {
			continue
		}
		switch it.num {
		case fMetricName:
			name = it.val
		case fMetricUnit:
			unit = it.val
		case 4, 5, 6, 7, 8, 9, 10: // gauges, sums, histograms (1.0.0 and 0.7.0 numbers)
			kinds++
		}
	}
	if err := p.check(&it); err != nil {
		return err
	}
	if kinds > 0 {
		// CloudWatch writes summaries only; anything else is not from a
		// metric stream and would be lost if skipped quietly.
		p.refused = append(p.refused, p.errAt(b, "metric %q: not a summary", name))
	}
	ns, metric := splitMetricName(name)
	it = iter{b: b}
	for it.next() {
		if it.num != fMetricSummary || it.typ != protowire.BytesType {
			continue
		}
		sum := iter{b: it.val}
		for sum.next() {
			if sum.num == fSummaryDataPoints && sum.typ == protowire.BytesType {
				if err := p.point(sum.val, ns, metric, unit); err != nil {
					return err
				}
			}
		}
		if err := p.check(&sum); err != nil {
			return err
		}
	}
	return p.check(&it)
}

// splitMetricName reads amazonaws.com/<namespace>/<metric>; the namespace
// may itself hold '/' (AWS/ApiGateway).
func splitMetricName(name []byte) (ns, metric []byte) {
	rest, ok := bytes.CutPrefix(name, []byte(metricNamePrefix))
	if !ok {
		return nil, nil
	}
	i := bytes.LastIndexByte(rest, '/')
	if i <= 0 {
		return nil, nil
	}
	return rest[:i], rest[i+1:]
}

func (p *otelParser) point(b []byte, ns, metric, unit []byte) error {
	p.points++
	sc := p.sc
	dims0, pcts0 := len(sc.dims), len(sc.pcts)
	rd := rawDatum{account: p.account, region: p.region, unit: unit, has: HasCount | HasSum}
	var start, end, flags uint64
	var refused error
	it := iter{b: b}
	for it.next() {
		switch it.num {
		case fPointAttrs:
			if it.typ != protowire.BytesType {
				continue
			}
			key, val, kind, err := p.keyValue(it.val)
			if err != nil {
				return err
			}
			switch string(key) {
			case "Namespace":
				if kind == anyString {
					rd.namespace = val
				}
			case "MetricName":
				if kind == anyString {
					rd.metric = val
				}
			case "Dimensions":
				if kind != anyKVList {
					continue
				}
				list := iter{b: val}
				for list.next() {
					if list.num != fKVListValues || list.typ != protowire.BytesType {
						continue
					}
					name, value, kind, err := p.keyValue(list.val)
					if err != nil {
						return err
					}
					if kind != anyString && kind != anyNone && refused == nil {
						refused = p.errAt(list.val, "dimension %q: not a string", name)
					}
					sc.dims = append(sc.dims, rawDim{name: name, value: value})
				}
				if err := p.check(&list); err != nil {
					return err
				}
			}
		case fPointLabels: // 0.7.0: flat StringKeyValue labels
			if it.typ != protowire.BytesType {
				continue
			}
			var key, value []byte
			kv := iter{b: it.val}
			for kv.next() {
				if kv.typ == protowire.BytesType {
					switch kv.num {
					case fKVKey:
						key = kv.val
					case fKVValue:
						value = kv.val
					}
				}
			}
			if err := p.check(&kv); err != nil {
				return err
			}
			switch string(key) {
			case "Namespace":
				rd.namespace = value
			case "MetricName":
				rd.metric = value
			default:
				sc.dims = append(sc.dims, rawDim{name: key, value: value})
			}
		case fPointStart:
			if it.typ == protowire.Fixed64Type {
				start = it.u
			}
		case fPointTime:
			if it.typ == protowire.Fixed64Type {
				end = it.u
			}
		case fPointCount:
			if it.typ == protowire.Fixed64Type {
				rd.count = float64(it.u)
			}
		case fPointSum:
			if it.typ == protowire.Fixed64Type {
				rd.sum = math.Float64frombits(it.u)
			}
		case fPointQuantiles:
			if it.typ != protowire.BytesType {
				continue
			}
			var q, v float64
			qv := iter{b: it.val}
			for qv.next() {
				if qv.typ == protowire.Fixed64Type {
					switch qv.num {
					case fQuantile:
						q = math.Float64frombits(qv.u)
					case fQuantileValue:
						v = math.Float64frombits(qv.u)
					}
				}
			}
			if err := p.check(&qv); err != nil {
				return err
			}
			switch {
			case q == 0:
				rd.min = v
				rd.has |= HasMin
			case q == 1:
				rd.max = v
				rd.has |= HasMax
			case q > 0 && q < 1:
				sc.pcts = append(sc.pcts, rawPct{stat: p.percentileStat(q), value: v})
			}
		case fPointFlags:
			if it.typ == protowire.VarintType {
				flags = it.u
			}
		}
	}
	if err := p.check(&it); err != nil {
		return err
	}
	if flags&flagNoRecordedValue != 0 {
		sc.dims, sc.pcts = sc.dims[:dims0], sc.pcts[:pcts0]
		return nil
	}
	if refused != nil {
		p.refused = append(p.refused, refused)
		sc.dims, sc.pcts = sc.dims[:dims0], sc.pcts[:pcts0]
		return nil
	}
	if len(rd.namespace) == 0 && len(rd.metric) == 0 {
		rd.namespace, rd.metric = ns, metric
	}
	// startTimeUnixNano is CloudWatch's period start, the timestamp of the
	// JSON output; the difference to timeUnixNano is the period.
	ts := start
	if ts == 0 {
		ts = end
	}
	rd.ts = int64(ts / 1e9)
	if end > start && start > 0 {
		if period := int64((end - start) / 1e9); period >= 1 && period <= 86400 {
			rd.period = period
		}
	}
	rd.dims, rd.pcts = sc.dims[dims0:len(sc.dims):len(sc.dims)], sc.pcts[pcts0:len(sc.pcts):len(sc.pcts)]
	if len(rd.dims) == 0 {
		rd.dims = nil
	}
	sc.datums = append(sc.datums, rd)
	return nil
}

// percentileStat names a quantile as CloudWatch names the statistic:
// 0.99 is p99, 0.999 p99.9.
func (p *otelParser) percentileStat(q float64) []byte {
	switch q {
	case 0.5:
		return statP50
	case 0.9:
		return statP90
	case 0.95:
		return statP95
	case 0.99:
		return statP99
	}
	sc := p.sc
	at := len(sc.str)
	sc.str = append(sc.str, 'p')
	sc.str = strconv.AppendFloat(sc.str, math.Round(q*1e8)/1e6, 'f', -1, 64)
	return sc.str[at:len(sc.str):len(sc.str)]
}

var (
	statP50 = []byte("p50")
	statP90 = []byte("p90")
	statP95 = []byte("p95")
	statP99 = []byte("p99")
)
