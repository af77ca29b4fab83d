package decode

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/formats/textrule"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// partClass is what a part of a decoded record became.
type partClass uint8

const (
	partEvents  partClass = iota + 1 // a DATA_MESSAGE envelope: its events were emitted
	partControl                      // a CONTROL_MESSAGE: dropped and counted
	partLine                         // a line: emitted as one log
	partMetric                       // metric-stream data: given to the metric decoder
	partDead                         // dead-lettered alone, with its reason
	partEmpty                        // a record with nothing but white space
	partWhole                        // the record was dead-lettered whole
)

// part is a span of a decoded record and what it became; Stage.trace
// reports them to tests, which check that every byte is accounted for.
type part struct {
	start, end int
	class      partClass
	events     int  // partEvents: how many
	sub        bool // partDead inside a partMetric span (a bad metric line or frame)
}

func (s *Stage) traced(data []byte, p part) {
	if s.trace != nil {
		s.trace(data, p)
	}
}

// errBinary fails a record that is neither text nor a known binary format.
type errBinary struct {
	percent, line int
	why           string
}

func (e errBinary) Error() string {
	return fmt.Sprintf("binary record (not text, gzip or a metric stream): %d%% of its bytes are in lines that are not text, the first at line %d: %s",
		e.percent, e.line, e.why)
}

// decodeText reads a decoded record item by item (see splitter): each item
// is a CloudWatch envelope, a metric-stream line, or a log line, on its own,
// so that one bad item costs only itself. Lines that are not text are
// dead-lettered alone, unless they hold half the record's bytes or more:
// then the record is binary and fails whole.
func (s *Stage) decodeText(sc *scratch, p *fastjson.Parser, raw *record.Record, data []byte, e *emitter) error {
	var sp splitter
	sp.reset(data, sc.items)
	defer func() { sc.items = sp.queue[:0] }()
	// The usual record is one envelope alone on its line: parsed once here,
	// where the splitter needs to know that it is one object, and read from
	// that parse. Any other line takes the scan, as if this were not here.
	// The document of the last item marked parsed: read by the scanner
	// (the usual data message), or else parsed.
	var parsed *fastjson.Value
	scanned := false
	if !s.slowSplit {
		sp.whole = func(line []byte) bool {
			if !cwlogs.ClaimsEnvelope(line) {
				return false
			}
			if sc.scan.Scan(line) {
				parsed, scanned = nil, true
				return true
			}
			v, err := p.ParseBytes(line)
			if err != nil || v.Type() != fastjson.TypeObject {
				return false
			}
			parsed, scanned = v, false
			return true
		}
	}
	sc.bad = sc.bad[:0]
	var (
		total, badBytes int
		good            int // items that went on: events, control messages, lines, points
		tally           envelopeTally
		run             metricRun
	)
	for it, ok := sp.next(); ok; it, ok = sp.next() {
		if it.start == 0 && bytes.HasPrefix(data, utf8BOM) {
			// A byte-order mark is no part of the record's first item (the
			// S3 reader drops it at an object's start alike): with it, a
			// metric-stream datum or an envelope would be a log line.
			it.start = len(utf8BOM)
			if len(bytes.TrimLeft(data[it.start:it.end], " \t\r\n")) == 0 {
				continue
			}
		}
		b := data[it.start:it.end]
		total += len(b)
		if j := skipSpace(b); j < len(b) && b[j] == '{' {
			if it.parsed || cwlogs.ClaimsEnvelope(b) {
				var v *fastjson.Value
				if it.parsed {
					v = parsed
				}
				good += s.flushMetrics(sc, data, &run, e)
				if ok, handled := s.envelope(sc, p, v, it.parsed && scanned, raw, data, it, e, &tally); handled {
					if ok {
						good++
					}
					continue
				}
			}
			if s.metrics != nil && s.metrics.IsLine(b) {
				run.add(it)
				s.traced(data, part{start: it.start, end: it.end, class: partMetric})
				continue
			}
		}
		good += s.flushMetrics(sc, data, &run, e)
		if textrule.NotText(b) != "" {
			sc.bad = append(sc.bad, it)
			badBytes += len(b)
			continue
		}
		e.add(record.Record{Origin: raw.Origin, Timestamp: raw.Timestamp, Message: e.arena.Keep(b), Kind: record.KindLine})
		good++
		s.traced(data, part{start: it.start, end: it.end, class: partLine})
	}
	good += s.flushMetrics(sc, data, &run, e)

	if total == 0 {
		s.empty.Inc() // Firehose permits empty records
		s.traced(data, part{class: partEmpty})
		return nil
	}
	if badBytes > 0 && 2*badBytes >= total {
		first := sc.bad[0]
		s.binary.Inc()
		return errBinary{percent: badBytes * 100 / total, line: first.line, why: textrule.NotText(data[first.start:first.end])}
	}
	for _, it := range sc.bad {
		b := data[it.start:it.end]
		sc.dead = append(sc.dead, deadPart{data: b, reason: fmt.Sprintf("line %d: not text: %s", it.line, textrule.NotText(b))})
		s.traced(data, part{start: it.start, end: it.end, class: partDead})
	}
	s.nonText.Add(int64(len(sc.bad)))
	s.control.Add(tally.control)
	s.stats.Dropped.Add(tally.control)
	s.unknownType.Add(tally.unknown)
	s.badTime.Add(tally.badTime)
	if good == 0 {
		return wholeIfAllDead(sc.dead)
	}
	return nil
}

// wholeIfAllDead fails a record from which only dead parts came, so that
// it is dead-lettered whole, exactly as the source delivered it.
func wholeIfAllDead(dead []deadPart) error {
	switch len(dead) {
	case 0:
		return nil
	case 1:
		return errors.New(dead[0].reason)
	}
	return fmt.Errorf("%s (and %d more parts that could not be read)", dead[0].reason, len(dead)-1)
}

// envelopeTally counts envelopes of a record, added to the stage's
// counters once the record is known not to be binary (whose envelopes, if
// any, were not read as such: the record is dead-lettered whole).
type envelopeTally struct{ control, unknown, badTime int64 }

// TimestampErrorTag is the tag of a log whose CloudWatch event timestamp
// could not be read, its value the reason (cwlogs.Timestamp*): the log is
// dated by its Firehose request (or SQS message) instead.
const TimestampErrorTag = "gwpipe.timestamp_error"

// timestampTags are the tags of each reason, shared by the records (full
// slices: whoever adds a tag copies).
var timestampTags = map[string][]string{}

func init() {
	for _, r := range []string{cwlogs.TimestampMissing, cwlogs.TimestampNotANumber, cwlogs.TimestampNotWholeMS, cwlogs.TimestampNotPositive} {
		t := []string{TimestampErrorTag + ":" + r}
		timestampTags[r] = t[:1:1]
	}
}

// envelope reads an item that claims to be a CloudWatch envelope: ok when
// it went on (events or a control message), else it was dead-lettered. It
// reports handled false, having done nothing, when the item is a JSON
// object that is not an envelope after all. v is the item parsed, or nil
// when it is still to be; scanned, that sc.scan holds it read.
func (s *Stage) envelope(sc *scratch, p *fastjson.Parser, v *fastjson.Value, scanned bool, raw *record.Record, data []byte, it item, e *emitter, tally *envelopeTally) (ok, handled bool) {
	b := data[it.start:it.end]
	var origin *record.Origin
	var control bool
	n := 0
	// left bounds what the envelope's events still to come keep: each
	// event makes room for all of them when its arena has less (the first
	// event, and the first after a piece was cut), so that they take one
	// allocation of their size.
	left := len(b) // unescaped strings are no longer than the document
	onEnvelope := func(env *cwlogs.Envelope) error {
		control = env.MessageType == cwlogs.Control
		if !control {
			origin = raw.Origin.WithLogGroup(env.Owner, env.LogGroup, env.LogStream)
		}
		return nil
	}
	onEvent := func(env *cwlogs.Envelope, ev *cwlogs.Event) error {
		if n == 0 {
			e.reserve(env.Events)
		}
		o := origin.WithAccountRegion(ev.Account, ev.Region)
		e.arena.Reserve(left)
		left -= len(ev.ID) + len(ev.Message)
		rec := record.Record{
			Origin: o, EventID: e.keepString(ev.ID), Timestamp: ev.Timestamp,
			Message: e.arena.Keep(ev.Message), Kind: record.KindLine,
		}
		if ev.TimestampError != "" {
			// Never silently undated: the request's time, and the tag
			// saying why.
			rec.Timestamp = raw.Timestamp
			rec.Tags = timestampTags[ev.TimestampError]
			tally.badTime++
		}
		e.add(rec)
		n++
		return nil
	}
	var err error
	switch {
	case scanned || v == nil && !s.slowSplit && sc.scan.Scan(b):
		left = sc.scan.Size()
		err = sc.scan.Emit(onEnvelope, onEvent)
	case v != nil:
		err = cwlogs.ParseValue(v, onEnvelope, onEvent)
	default:
		err = cwlogs.ParseDocument(p, b, onEnvelope, onEvent)
	}
	switch {
	case err == nil && control:
		tally.control++
		s.traced(data, part{start: it.start, end: it.end, class: partControl})
		return true, true
	case err == nil:
		s.traced(data, part{start: it.start, end: it.end, class: partEvents, events: n})
		return true, true
	case errors.Is(err, cwlogs.ErrNotEnvelope):
		return false, false
	default:
		if errors.Is(err, cwlogs.ErrUnknownMessageType) {
			tally.unknown++
		}
		if it.unclosed {
			err = cwlogs.ErrTruncated
		}
		sc.dead = append(sc.dead, deadPart{data: b, origin: origin, reason: fmt.Sprintf("line %d: CloudWatch envelope: %v", it.line, err)})
		s.traced(data, part{start: it.start, end: it.end, class: partDead})
		return false, true
	}
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// utf8BOM is the UTF-8 byte-order mark.
var utf8BOM = []byte("\xef\xbb\xbf")

// metricRun is a span of consecutive metric-stream items, decoded in one
// call.
type metricRun struct {
	start, end int
	line       int // of start
	on         bool
}

func (r *metricRun) add(it item) {
	if !r.on {
		r.start, r.line, r.on = it.start, it.line, true
	}
	r.end = it.end
}

// flushMetrics decodes the run, if any, and returns 1 when it gave points.
func (s *Stage) flushMetrics(sc *scratch, data []byte, r *metricRun, e *emitter) int {
	if !r.on {
		return 0
	}
	r.on = false
	n, bad := s.metrics.DecodeLines(data[r.start:r.end], func(m record.Metric) { *e.points = append(*e.points, m) })
	lc := lineCounter{data: data, pos: r.start, line: r.line}
	for _, b := range bad {
		off := r.start + b.Offset
		sc.dead = append(sc.dead, deadPart{data: b.Data, reason: fmt.Sprintf("line %d: metric stream: %s", lc.at(off), b.Reason)})
		s.traced(data, part{start: off, end: off + len(b.Data), class: partDead, sub: true})
	}
	return min(n, 1)
}

// lineCounter numbers the lines of offsets asked in increasing order, in
// one pass over the data.
type lineCounter struct {
	data      []byte
	pos, line int
}

func (c *lineCounter) at(off int) int {
	c.line += bytes.Count(c.data[c.pos:off], []byte{'\n'})
	c.pos = off
	return c.line
}
