package metricstream

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// Format is a metric stream's output format.
type Format uint8

const (
	FormatNone Format = iota // not a metric-stream record
	FormatJSON               // newline-separated JSON objects
	FormatOTel               // size-delimited OpenTelemetry ExportMetricsServiceRequest messages (1.0.0; 0.7.0 read too)
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatOTel:
		return "opentelemetry"
	}
	return "none"
}

// BadPart is a part of a record that could not be decoded: a JSON line, or
// an OpenTelemetry frame (length prefix included, so that Data alone is a
// valid record to replay). Data aliases the bytes given to Decode.
type BadPart struct {
	Offset int // byte offset of the part in the record
	Line   int // JSON: 1-based line number; 0 for OpenTelemetry
	Frame  int // OpenTelemetry: 1-based frame number; 0 for JSON
	Data   []byte
	Err    error
}

func (p BadPart) String() string {
	switch {
	case p.Line > 0:
		return fmt.Sprintf("line %d (offset %d): %v", p.Line, p.Offset, p.Err)
	case p.Frame > 0:
		return fmt.Sprintf("frame %d (offset %d): %v", p.Frame, p.Offset, p.Err)
	}
	return fmt.Sprintf("offset %d: %v", p.Offset, p.Err)
}

// DecodeError lists the parts of a record that could not be decoded. The
// other parts were decoded and their points emitted: dead-letter the Parts
// and go on.
type DecodeError struct {
	Format Format
	Parts  []BadPart
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "metricstream: %s record: %d malformed part(s): ", e.Format, len(e.Parts))
	for i, p := range e.Parts {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Parts)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Decoder decodes metric-stream records into Datadog points. It is safe for
// concurrent use.
type Decoder struct {
	m *Mapper

	records, malformed atomic.Int64
}

// Stats are a Decoder's counters since it was made.
type Stats struct {
	Records   int64 // records decoded
	Malformed int64 // bad parts reported
	MapperStats
}

// NewDecoder returns a Decoder with its own Mapper.
func NewDecoder(cfg Config) (*Decoder, error) {
	m, err := NewMapper(cfg)
	if err != nil {
		return nil, err
	}
	return &Decoder{m: m}, nil
}

// NewDecoderWithMapper returns a Decoder that maps through m (shared, for
// instance, with a poller).
func NewDecoderWithMapper(m *Mapper) *Decoder { return &Decoder{m: m} }

// Mapper returns the Decoder's Mapper.
func (d *Decoder) Mapper() *Mapper { return d.m }

// Stats returns the Decoder's counters, its Mapper's included.
func (d *Decoder) Stats() Stats {
	return Stats{Records: d.records.Load(), Malformed: d.malformed.Load(), MapperStats: d.m.Stats()}
}

// Decode decodes one metric-stream record (one Firehose record, after base64
// and any gzip) and calls fn for every Datadog point, in order. The format
// is told as Detect tells it: an OpenTelemetry first frame, else JSON when
// the record starts with '{', else OpenTelemetry (whose framing errors are
// then reported). Call Detect first to know that data is a metric-stream
// record at all, or DecodeAs when the format is known.
//
// Decode never stops at a bad part: it returns the number of points emitted
// and, when some parts could not be decoded, a *DecodeError listing them.
// fn must not keep the Tags slice for writing: it is shared by every point
// of a series.
func (d *Decoder) Decode(data []byte, fn func(record.Metric)) (int, error) {
	f := FormatOTel
	if !probeOTel(data) && looksJSON(data) {
		f = FormatJSON
	}
	return d.DecodeAs(f, data, fn)
}

// DecodeAs decodes data in the format f (FormatJSON or FormatOTel): lines,
// or frames, as Decode does.
func (d *Decoder) DecodeAs(f Format, data []byte, fn func(record.Metric)) (int, error) {
	d.records.Add(1)
	sc := getScratch()
	defer putScratch(sc)
	var (
		n   int
		bad []BadPart
	)
	switch f {
	case FormatJSON:
		n, bad = d.decodeJSON(sc, data, fn)
	case FormatOTel:
		n, bad = d.decodeOTel(sc, data, fn)
	default:
		return 0, fmt.Errorf("metricstream: cannot decode format %s", f)
	}
	if len(bad) > 0 {
		d.malformed.Add(int64(len(bad)))
		return n, &DecodeError{Format: f, Parts: bad}
	}
	return n, nil
}

// looksJSON reports whether data starts, after JSON white space, with '{'.
// An OpenTelemetry frame never does: its length prefix is followed by the
// field tag 0x0A, and any white-space bytes before are lengths too short to
// be followed by '{' (0x7B, 123).
func looksJSON(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// scratch holds the buffers one Decode or Map call reuses.
type scratch struct {
	key    []byte
	str    []byte // unescaped JSON strings, percentile names
	dims   []rawDim
	pcts   []rawPct
	datums []rawDatum
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch returns sc to the pool, without references into the input
// (which would keep a request's buffers alive) and without buffers grown
// by an unusually large record.
func putScratch(sc *scratch) {
	const maxKeep = 1 << 20
	if cap(sc.str) > maxKeep || cap(sc.dims) > maxKeep/32 || cap(sc.datums) > maxKeep/128 {
		return
	}
	clear(sc.dims[:cap(sc.dims)])
	clear(sc.pcts[:cap(sc.pcts)])
	clear(sc.datums[:cap(sc.datums)])
	sc.key, sc.str, sc.dims, sc.pcts, sc.datums = sc.key[:0], sc.str[:0], sc.dims[:0], sc.pcts[:0], sc.datums[:0]
	scratchPool.Put(sc)
}
