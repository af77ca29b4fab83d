// Package decode is the decode stage: it turns raw source records (base64,
// gzip, CloudWatch subscription envelopes, or plain access-log lines) into
// one record per log event. A record that cannot be decoded is dead-lettered
// with its raw bytes and the reason; its neighbours go on.
package decode

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stage"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// Config bounds the work one record may cause.
type Config struct {
	MaxRecordBytes       int // a decoded record, before gunzip (Firehose: 1,024,000)
	MaxDecompressedBytes int // a record after gunzip
	MaxEventsPerBatch    int // events per output batch
}

// Stage decodes raw batches.
type Stage struct {
	cfg     Config
	parsers fastjson.ParserPool
	bufs    sync.Pool

	control *telemetry.Counter
	empty   *telemetry.Counter
	stats   *telemetry.StageStats

	metrics MetricDecoder // nil: metric-stream records are not recognised
}

// MetricDecoder reads CloudWatch metric-stream records (package
// metricstream), which may arrive on the same Firehose endpoint as logs.
type MetricDecoder interface {
	// Detect tells a metric-stream record from a log record by content.
	Detect(data []byte) bool
	// Decode emits the record's points; an error lists the parts that
	// could not be read (the others were emitted).
	Decode(data []byte, fn func(record.Metric)) (int, []BadPart)
}

// BadPart is a part of a metric-stream record that could not be read.
type BadPart struct {
	Data   []byte
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
		cfg:     cfg,
		control: metrics.Counter("decode.control_messages"),
		empty:   metrics.Counter("decode.empty_records"),
		stats:   metrics.Stage("decode"),
	}
}

type scratch struct{ b64, gz []byte }

// Handle implements stage.Handler.
func (s *Stage) Handle(ctx context.Context, in *record.Batch, out stage.Output) error {
	res := s.Decode(in)
	for _, b := range res.Batches {
		if err := out.Emit(ctx, b); err != nil {
			return err
		}
	}
	if res.Dead != nil {
		if err := out.DeadLetter(ctx, res.Dead); err != nil {
			return err
		}
	}
	return nil
}

// Result is what one raw batch decodes to.
type Result struct {
	Batches []*record.Batch // log events, at most MaxEventsPerBatch each
	Dead    *record.Batch   // records that could not be decoded, or nil
}

// Decode decodes a raw batch. It never fails as a whole: a bad record is
// put in Dead with its reason.
func (s *Stage) Decode(in *record.Batch) Result {
	sc, _ := s.bufs.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer s.bufs.Put(sc)
	p := s.parsers.Get()
	defer s.parsers.Put(p)

	arena := &record.Batch{}
	var res Result
	var points []record.Metric
	cur := in.Derive(min(s.cfg.MaxEventsPerBatch, 4*len(in.Records)))
	add := func(r record.Record) {
		if len(cur.Records) == s.cfg.MaxEventsPerBatch {
			res.Batches = append(res.Batches, cur)
			cur = in.Derive(s.cfg.MaxEventsPerBatch)
		}
		cur.Records = append(cur.Records, r)
	}
	keepString := func(p []byte) string {
		k := arena.Keep(p)
		if len(k) == 0 {
			return ""
		}
		return unsafe.String(&k[0], len(k)) // the arena is never written again
	}

	for i := range in.Records {
		raw := &in.Records[i]
		mark := len(cur.Records)
		markBatches := len(res.Batches)
		var bad []BadPart
		err := s.decodeOne(sc, p, raw, arena, keepString, add, &points, &bad)
		if len(bad) > 0 {
			if res.Dead == nil {
				res.Dead = in.Derive(len(bad))
				res.Dead.Stage = "decode"
			}
			for _, b := range bad {
				res.Dead.Records = append(res.Dead.Records, record.Record{Origin: raw.Origin, Timestamp: raw.Timestamp,
					Kind: record.KindLine, Message: b.Data, Reason: "metric stream: " + b.Reason})
			}
		}
		if err == nil {
			continue
		}
		// Take back what this record already produced: it goes to the
		// dead-letter archive whole, so a replay does not duplicate it.
		if len(res.Batches) > markBatches {
			cur = res.Batches[markBatches]
			res.Batches = res.Batches[:markBatches]
		}
		cur.Records = cur.Records[:mark]
		if res.Dead == nil {
			res.Dead = in.Derive(1)
			res.Dead.Stage = "decode"
		}
		d := *raw
		d.Reason = err.Error()
		res.Dead.Records = append(res.Dead.Records, d)
	}
	if len(cur.Records) > 0 {
		res.Batches = append(res.Batches, cur)
	}
	if len(points) > 0 {
		mb := in.Derive(0)
		mb.Metrics = points
		res.Batches = append(res.Batches, mb)
	}
	return res
}

func (s *Stage) decodeOne(sc *scratch, p *fastjson.Parser, raw *record.Record, arena *record.Batch,
	keepString func([]byte) string, add func(record.Record), points *[]record.Metric, bad *[]BadPart) error {
	data := raw.Message
	if len(data) == 0 {
		s.empty.Inc() // Firehose permits empty records
		return nil
	}
	if raw.Kind == record.KindRaw {
		if n := base64.StdEncoding.DecodedLen(len(data)); n > s.cfg.MaxRecordBytes+3 {
			return fmt.Errorf("record of about %d bytes exceeds the %d-byte limit", n, s.cfg.MaxRecordBytes)
		}
		sc.b64 = grow(sc.b64, base64.StdEncoding.DecodedLen(len(data)))
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
		out, err := cwlogs.Gunzip(sc.gz, data, s.cfg.MaxDecompressedBytes)
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		if cap(out) <= 4<<20 { // do not pin a bomb-sized buffer in the pool
			sc.gz = out[:0]
		}
		data = out
	}
	if s.metrics != nil && !cwlogs.LooksLikeEnvelope(data) && s.metrics.Detect(data) {
		// A CloudWatch metric-stream record on the same endpoint.
		_, parts := s.metrics.Decode(data, func(m record.Metric) { *points = append(*points, m) })
		for _, b := range parts {
			b.Data = bytes.Clone(b.Data) // it aliases the scratch buffers
			*bad = append(*bad, b)
		}
		return nil
	}
	if cwlogs.LooksLikeEnvelope(data) {
		var origin *record.Origin
		err := cwlogs.Parse(p, data, func(env *cwlogs.Envelope) error {
			if env.MessageType != cwlogs.Data {
				s.control.Inc()
				s.stats.Dropped.Inc()
				return nil
			}
			origin = raw.Origin.WithLogGroup(env.Owner, env.LogGroup, env.LogStream)
			return nil
		}, func(_ *cwlogs.Envelope, ev *cwlogs.Event) error {
			o := origin
			if (len(ev.Account) > 0 && string(ev.Account) != o.Account) || (len(ev.Region) > 0 && string(ev.Region) != o.Region) {
				c := *o
				if len(ev.Account) > 0 {
					c.Account = string(ev.Account)
				}
				if len(ev.Region) > 0 {
					c.Region = string(ev.Region)
				}
				o = &c
			}
			add(record.Record{
				Origin: o, EventID: keepString(ev.ID), Timestamp: ev.Timestamp,
				Message: arena.Keep(ev.Message), Kind: record.KindLine,
			})
			return nil
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, cwlogs.ErrNotEnvelope) {
			return fmt.Errorf("CloudWatch envelope: %w", err)
		}
		// A JSON object that is not an envelope: an access-log line as a
		// Firehose stream named amazon-apigateway-* delivers it.
	}
	// Plain lines, one event each.
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		add(record.Record{Origin: raw.Origin, Timestamp: raw.Timestamp, Message: arena.Keep(line), Kind: record.KindLine})
	}
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
