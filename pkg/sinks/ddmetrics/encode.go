package ddmetrics

import (
	"fmt"
	"math"
	"strconv"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// part is one metric's share of a payload: the whole point for a series,
// the values [lo,hi) of a distribution point.
type part struct {
	idx    int
	lo, hi int
}

// payload is one request: series or distribution points.
type payload struct {
	dist  bool
	parts []part
	body  []byte // uncompressed JSON, {"series":[…]}
}

const (
	payloadOpen  = `{"series":[`
	payloadClose = `]}`
	distFooter   = `]]]}`
)

// seriesType maps a metric kind to the v2 intake type.
func seriesType(k record.MetricKind) int {
	switch k {
	case record.MetricCount:
		return 1
	case record.MetricRate:
		return 2
	case record.MetricGauge:
		return 3
	}
	return 0
}

// appendSeries appends one v2 MetricSeries with a single point.
func appendSeries(dst []byte, m *record.Metric) []byte {
	dst = append(dst, `{"metric":`...)
	dst = jsonstr.AppendQuoted(dst, m.Name)
	dst = append(dst, `,"type":`...)
	dst = strconv.AppendInt(dst, int64(seriesType(m.Kind)), 10)
	if m.Interval > 0 && m.Kind != record.MetricGauge {
		dst = append(dst, `,"interval":`...)
		dst = strconv.AppendInt(dst, m.Interval, 10)
	}
	dst = append(dst, `,"points":[{"timestamp":`...)
	dst = strconv.AppendInt(dst, m.Timestamp, 10)
	dst = append(dst, `,"value":`...)
	dst = appendNumber(dst, m.Value)
	dst = append(dst, `}]`...)
	if m.Host != "" {
		dst = append(dst, `,"resources":[{"name":`...)
		dst = jsonstr.AppendQuoted(dst, m.Host)
		dst = append(dst, `,"type":"host"}]`...)
	}
	if len(m.Tags) > 0 {
		dst = appendTags(dst, m.Tags)
	}
	if m.Unit != "" {
		dst = append(dst, `,"unit":`...)
		dst = jsonstr.AppendQuoted(dst, m.Unit)
	}
	return append(dst, '}')
}

// appendDistHeader appends a v1 distribution series up to its first value.
func appendDistHeader(dst []byte, m *record.Metric) []byte {
	dst = append(dst, `{"metric":`...)
	dst = jsonstr.AppendQuoted(dst, m.Name)
	if m.Host != "" {
		dst = append(dst, `,"host":`...)
		dst = jsonstr.AppendQuoted(dst, m.Host)
	}
	if len(m.Tags) > 0 {
		dst = appendTags(dst, m.Tags)
	}
	dst = append(dst, `,"type":"distribution","points":[[`...)
	dst = strconv.AppendInt(dst, m.Timestamp, 10)
	return append(dst, `,[`...)
}

func appendTags(dst []byte, tags []string) []byte {
	dst = append(dst, `,"tags":[`...)
	for i, t := range tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonstr.AppendQuoted(dst, t)
	}
	return append(dst, ']')
}

// appendNumber appends a finite float as a JSON number: integers without a
// fraction or exponent, others in the shortest form that round-trips.
func appendNumber(dst []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// planner packs metrics into payloads within a byte cap on the uncompressed
// body, rejecting what can never fit.
type planner struct {
	ms      []record.Metric
	cap     int
	out     []*payload
	cur     *payload
	reject  func(p part, reason string)
	scratch []byte
}

func (pl *planner) open(dist bool) {
	pl.cur = &payload{dist: dist, body: append(make([]byte, 0, min(pl.cap, 64<<10)), payloadOpen...)}
}

func (pl *planner) seal() {
	if pl.cur != nil && len(pl.cur.parts) > 0 {
		pl.cur.body = append(pl.cur.body, payloadClose...)
		pl.out = append(pl.out, pl.cur)
	}
	pl.cur = nil
}

// room is what an item may add to the current body: the closing bracket
// is reserved.
func (pl *planner) room() int { return pl.cap - len(pl.cur.body) - len(payloadClose) }

func (pl *planner) addSeries(i int) {
	item := appendSeries(pl.scratch[:0], &pl.ms[i])
	pl.scratch = item
	if len(item)+len(payloadOpen)+len(payloadClose) > pl.cap {
		pl.reject(part{idx: i}, fmt.Sprintf("series of %d bytes exceeds the %d-byte payload cap", len(item), pl.cap))
		return
	}
	if pl.cur == nil {
		pl.open(false)
	}
	sep := 0
	if len(pl.cur.parts) > 0 {
		sep = 1
	}
	if sep+len(item) > pl.room() {
		pl.seal()
		pl.open(false)
		sep = 0
	}
	if sep == 1 {
		pl.cur.body = append(pl.cur.body, ',')
	}
	pl.cur.body = append(pl.cur.body, item...)
	pl.cur.parts = append(pl.cur.parts, part{idx: i})
}

// addDist adds a distribution point's finite values, splitting them into
// several points of the same timestamp when they do not fit one payload.
func (pl *planner) addDist(i int) {
	m := &pl.ms[i]
	header := appendDistHeader(pl.scratch[:0], m)
	pl.scratch = header
	minItem := len(header) + 1 + len(distFooter) // one short value
	if minItem+len(payloadOpen)+len(payloadClose) > pl.cap {
		pl.reject(part{idx: i, lo: 0, hi: len(m.Values)}, fmt.Sprintf("distribution series header of %d bytes exceeds the %d-byte payload cap", len(header), pl.cap))
		return
	}
	var num [32]byte
	lo := 0
	for lo < len(m.Values) {
		if pl.cur == nil {
			pl.open(true)
		}
		sep := 0
		if len(pl.cur.parts) > 0 {
			sep = 1
		}
		if sep+minItem > pl.room() {
			pl.seal()
			continue
		}
		mark := len(pl.cur.body)
		if sep == 1 {
			pl.cur.body = append(pl.cur.body, ',')
		}
		pl.cur.body = append(pl.cur.body, header...)
		n, hi := 0, lo
		for ; hi < len(m.Values); hi++ {
			v := m.Values[hi]
			if !finite(v) {
				continue
			}
			b := appendNumber(num[:0], v)
			need := len(b)
			if n > 0 {
				need++
			}
			if need+len(distFooter) > pl.room() {
				break
			}
			if n > 0 {
				pl.cur.body = append(pl.cur.body, ',')
			}
			pl.cur.body = append(pl.cur.body, b...)
			n++
		}
		if n == 0 {
			pl.cur.body = pl.cur.body[:mark]
			if hi == len(m.Values) { // only non-finite values were left
				if lo == 0 {
					pl.reject(part{idx: i, lo: 0, hi: len(m.Values)}, "distribution has no finite value")
				}
				return
			}
			if sep == 0 { // not even one value fits an empty payload
				pl.reject(part{idx: i, lo: lo, hi: len(m.Values)}, fmt.Sprintf("distribution series does not fit the %d-byte payload cap", pl.cap))
				return
			}
			pl.seal() // the next value did not fit: start a new payload
			continue
		}
		pl.cur.body = append(pl.cur.body, distFooter...)
		pl.cur.parts = append(pl.cur.parts, part{idx: i, lo: lo, hi: hi})
		lo = hi
		if lo < len(m.Values) {
			pl.seal()
		}
	}
}

// encode rebuilds the body of a payload from its parts.
func encode(ms []record.Metric, p *payload, dst []byte) []byte {
	dst = append(dst[:0], payloadOpen...)
	var num [32]byte
	for j, pt := range p.parts {
		if j > 0 {
			dst = append(dst, ',')
		}
		m := &ms[pt.idx]
		if !p.dist {
			dst = appendSeries(dst, m)
			continue
		}
		dst = appendDistHeader(dst, m)
		n := 0
		for _, v := range m.Values[pt.lo:pt.hi] {
			if !finite(v) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, appendNumber(num[:0], v)...)
			n++
		}
		dst = append(dst, distFooter...)
	}
	return append(dst, payloadClose...)
}

// halves splits a payload's parts in two; a single distribution part is
// split by its values. ok is false when the payload cannot be split.
func halves(p *payload) (a, b *payload, ok bool) {
	if len(p.parts) > 1 {
		mid := len(p.parts) / 2
		return &payload{dist: p.dist, parts: p.parts[:mid:mid]}, &payload{dist: p.dist, parts: p.parts[mid:]}, true
	}
	if pt := p.parts[0]; p.dist && pt.hi-pt.lo > 1 {
		mid := pt.lo + (pt.hi-pt.lo)/2
		return &payload{dist: true, parts: []part{{idx: pt.idx, lo: pt.lo, hi: mid}}},
			&payload{dist: true, parts: []part{{idx: pt.idx, lo: mid, hi: pt.hi}}}, true
	}
	return nil, nil, false
}

// splittable reports whether halves can split p.
func splittable(p *payload) bool {
	return len(p.parts) > 1 || p.dist && p.parts[0].hi-p.parts[0].lo > 1
}

// points is the number of metric points (series points or distribution
// values) a payload carries.
func (p *payload) points() int {
	if !p.dist {
		return len(p.parts)
	}
	n := 0
	for _, pt := range p.parts {
		n += pt.hi - pt.lo
	}
	return n
}
