package decode

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Stage decodes raw batches.
type Stage struct {
	cfg     Config
	parsers fastjson.ParserPool
	bufs    sync.Pool

	control     *telemetry.Counter // CONTROL_MESSAGE documents dropped
	empty       *telemetry.Counter // records with nothing but white space
	unknownType *telemetry.Counter // envelopes dead-lettered for their messageType
	binary      *telemetry.Counter // records dead-lettered whole as unrecognised binary
	nonText     *telemetry.Counter // lines dead-lettered alone for not being text
	badTime     *telemetry.Counter // events whose timestamp could not be read
	stats       *telemetry.StageStats

	metrics MetricDecoder // nil: metric-stream records are not recognised

	// trace, in tests, is told what each part of a decoded record became.
	trace func(data []byte, p part)
	// slowSplit, in tests, turns off the one-pass path (see decodeText),
	// the reference it is compared with.
	slowSplit bool

	memory *membudget.Budget // nil: none
	large  chan struct{}     // the slot of the one large record decoded at a time
}

// MetricDecoder reads CloudWatch metric-stream records (package
// metricstream), which may arrive on the same Firehose endpoint as logs.
type MetricDecoder interface {
	// IsFrames tells whether a whole decoded record is binary metric-stream
	// output (OpenTelemetry: length-delimited protobuf frames).
	IsFrames(data []byte) bool
	// IsLine tells whether one JSON object (one line) is a metric-stream
	// datum (JSON output: newline-delimited objects).
	IsLine(line []byte) bool
	// DecodeFrames decodes a record IsFrames accepted, DecodeLines lines
	// IsLine accepted. Both emit the points and list the parts that could
	// not be read (the others were emitted).
	DecodeFrames(data []byte, fn func(record.Metric)) (int, []BadPart)
	DecodeLines(data []byte, fn func(record.Metric)) (int, []BadPart)
}

// BadPart is a part of metric-stream data that could not be read.
type BadPart struct {
	Offset int    // of Data in the data given to the decoder
	Data   []byte // aliases that data
	Reason string
}

// WithMetricStreams makes the stage recognise metric-stream records; their
// points travel in the decoded batch's Metrics.
func (s *Stage) WithMetricStreams(d MetricDecoder) *Stage {
	s.metrics = d
	return s
}

// New returns the decode stage.
func New(cfg Config, metrics *telemetry.Registry) *Stage {
	if metrics == nil {
		metrics = telemetry.NewRegistry()
	}
	return &Stage{
		cfg:         cfg,
		control:     metrics.Counter("decode.control_messages", "CloudWatch CONTROL_MESSAGE documents dropped."),
		empty:       metrics.Counter("decode.empty_records", "Records holding nothing but white space (Firehose permits them), dropped: nothing to deliver, no dead letter."),
		unknownType: metrics.Counter("decode.unknown_message_types", "CloudWatch envelopes dead-lettered for their messageType."),
		binary:      metrics.Counter("decode.binary_records", "Records dead-lettered whole as unrecognised binary data."),
		nonText:     metrics.Counter("decode.non_text_lines", "Lines dead-lettered alone for not being text."),
		badTime: metrics.Counter("decode.unreadable_timestamps",
			"CloudWatch events whose timestamp is missing or not a positive whole number of milliseconds: dated by their Firehose request (or SQS message) and tagged gwpipe.timestamp_error."),
		stats: metrics.Stage("decode"),
		large: make(chan struct{}, 1),
	}
}

type scratch struct {
	b64, gz []byte
	items   []item
	dead    []deadPart
	bad     []item
	work    work // the current record's
	scan    cwlogs.Scanner
}

// run decodes a raw batch. Events leave through emit in pieces, each as
// soon as the record that completes it is decoded; dead letters leave
// through dead. It fails only when emit or dead does.
func (s *Stage) run(ctx context.Context, in *record.Batch, emit, dead func(*record.Batch) error) (err error) {
	sc, _ := s.bufs.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer s.bufs.Put(sc)
	p := s.parsers.Get()
	defer s.parsers.Put(p)

	unit := in.Unit
	if unit == nil {
		unit = new(record.Unit) // all this process sees of its unit
	}
	sc.work = work{ctx: ctx, unit: unit}
	var used int64 // of the unit's allowance, by the records that went on
	defer func() {
		s.endRecord(&sc.work, err != nil)
		if err != nil {
			unit.Unreserve(used) // the batch will be decoded again
		}
		sc.work = work{}
	}()

	arena := &record.Batch{}
	var (
		pieces    []*record.Batch // complete, not yet emitted
		deadB     *record.Batch
		deadBytes int
		points    []record.Metric
	)
	cur := in.Derive(min(s.cfg.MaxEventsPerBatch, 4*len(in.Records)))
	curBytes := 0
	add := func(r record.Record) {
		cur.Records = append(cur.Records, r)
		curBytes += len(r.Message) + len(r.EventID)
		if len(cur.Records) == s.cfg.MaxEventsPerBatch || curBytes >= maxPieceBytes {
			pieces = append(pieces, cur)
			cur, curBytes = in.Derive(s.cfg.MaxEventsPerBatch), 0
			arena.Arena = nil // a piece's bytes are its own: they go when it goes
		}
	}
	// reserve makes room for an envelope of n events in the current
	// piece, and for as many in each record still to decode: the records
	// of one delivery are usually alike, and a piece grown envelope by
	// envelope copies its events again at every step (the piece's own
	// bound caps a wrong guess).
	left := len(in.Records)
	reserve := func(n int) {
		if want := min(s.cfg.MaxEventsPerBatch, len(cur.Records)+n*left); want > cap(cur.Records) {
			cur.Records = slices.Grow(cur.Records, want-len(cur.Records))
		}
	}
	keepString := func(p []byte) string {
		k := arena.Keep(p)
		if len(k) == 0 {
			return ""
		}
		return unsafe.String(&k[0], len(k)) // the arena is never written again
	}
	addDead := func(r record.Record) {
		if deadB == nil {
			deadB = in.Derive(1)
			deadB.Stage = "decode"
		}
		deadB.Records = append(deadB.Records, r)
		deadBytes += len(r.Message)
	}
	emitPoints := func() error {
		mb := in.Derive(0)
		mb.Metrics, points = points, nil
		return emit(mb)
	}

	e := &emitter{arena: arena, keepString: keepString, add: add, reserve: reserve, points: &points}
	for i := range in.Records {
		raw := &in.Records[i]
		left = len(in.Records) - i
		mark, markPieces, markBytes := len(cur.Records), len(pieces), curBytes
		markPoints := len(points)
		sc.dead = sc.dead[:0]
		err := s.decodeOne(sc, p, raw, e)
		// A large record's strings are not kept in the pooled scratch,
		// any more than its decompressed bytes are (see gunzip).
		sc.scan.Trim(largeRecord)
		if err == nil {
			for _, b := range sc.dead {
				// A part goes to the archive as raw data that a replay
				// decodes again: base64 of its decoded bytes.
				o := b.origin
				if o == nil {
					o = raw.Origin
				}
				addDead(record.Record{Origin: o, Timestamp: raw.Timestamp, Kind: record.KindRaw,
					Message: base64Of(b.data), Reason: b.reason})
			}
		} else {
			// Take back what this record already produced: it goes to the
			// dead-letter archive whole, so a replay does not duplicate it.
			s.traced(nil, part{class: partWhole})
			if len(pieces) > markPieces {
				cur = pieces[markPieces]
				pieces = pieces[:markPieces]
			}
			cur.Records, curBytes = cur.Records[:mark], markBytes
			points = points[:markPoints]
			d := *raw
			if d.Kind != record.KindRaw {
				// Bytes a source handed over already decoded (gzip from SQS):
				// archived as raw data, so that a replay decodes them again
				// instead of taking them for a log line.
				d.Kind, d.Message = record.KindRaw, base64Of(raw.Message)
			}
			d.Reason = err.Error()
			addDead(d)
		}
		// The record's complete pieces go now, while its buffers still
		// count: emitting may wait for the memory budget.
		for _, b := range pieces {
			if err := emit(b); err != nil {
				return err
			}
		}
		pieces = pieces[:0]
		if len(points) >= s.cfg.MaxEventsPerBatch {
			if err := emitPoints(); err != nil {
				return err
			}
		}
		if deadBytes >= maxPieceBytes {
			if err := dead(deadB); err != nil {
				return err
			}
			deadB, deadBytes = nil, 0
		}
		if err == nil {
			used += sc.work.reserved
		}
		s.endRecord(&sc.work, err != nil)
	}
	if len(cur.Records) > 0 {
		if err := emit(cur); err != nil {
			return err
		}
	}
	if len(points) > 0 {
		if err := emitPoints(); err != nil {
			return err
		}
	}
	if deadB != nil {
		return dead(deadB)
	}
	return nil
}

func base64Of(p []byte) []byte {
	b := make([]byte, base64.StdEncoding.EncodedLen(len(p)))
	base64.StdEncoding.Encode(b, p)
	return b
}

// emitter is where decodeOne puts what a record holds.
type emitter struct {
	arena      *record.Batch
	keepString func([]byte) string
	add        func(record.Record)
	reserve    func(n int) // room for n more events
	points     *[]record.Metric
}

// deadPart is a part of a record dead-lettered alone. data aliases the
// decoded record.
type deadPart struct {
	data   []byte
	reason string
	origin *record.Origin // nil: the record's
}

// decodeOne decodes one record: it emits the record's events, lines and
// metric points and puts the parts that cannot go on in sc.dead, or fails,
// having emitted nothing that the caller does not take back, when the
// record must be dead-lettered whole.
func (s *Stage) decodeOne(sc *scratch, p *fastjson.Parser, raw *record.Record, e *emitter) error {
	data := raw.Message
	if raw.Kind == record.KindRaw && len(data) > 0 {
		if n := base64.StdEncoding.DecodedLen(len(data)); n > s.cfg.MaxRecordBytes+3 {
			return fmt.Errorf("record of about %d bytes exceeds the %d-byte limit", n, s.cfg.MaxRecordBytes)
		}
		// Sized for unpadded input too: decoding "000" with padding writes
		// two bytes before it fails, where padded DecodedLen says none.
		sc.b64 = grow(sc.b64, base64.RawStdEncoding.DecodedLen(len(data)))
		n, err := base64.StdEncoding.Decode(sc.b64, data)
		if err != nil {
			// Some producers drop the padding.
			n, err = base64.RawStdEncoding.Decode(sc.b64, bytes.TrimRight(data, "="))
			if err != nil {
				return fmt.Errorf("invalid base64: %w", err)
			}
		}
		data = sc.b64[:n]
	}
	if cwlogs.IsGzip(data) {
		out, err := s.gunzip(sc, data)
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		if cap(out) <= 4<<20 { // do not pin a bomb-sized buffer in the pool
			sc.gz = out[:0]
		}
		data = out
	}
	if s.metrics != nil && s.metrics.IsFrames(data) {
		// Binary CloudWatch metric-stream output on the same endpoint.
		n, bad := s.metrics.DecodeFrames(data, func(m record.Metric) { *e.points = append(*e.points, m) })
		s.traced(data, part{end: len(data), class: partMetric})
		for _, b := range bad {
			sc.dead = append(sc.dead, deadPart{data: b.Data, reason: "metric stream: " + b.Reason})
			s.traced(data, part{start: b.Offset, end: b.Offset + len(b.Data), class: partDead, sub: true})
		}
		if n == 0 {
			return wholeIfAllDead(sc.dead)
		}
		return nil
	}
	return s.decodeText(sc, p, raw, data, e)
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
