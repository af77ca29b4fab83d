package s3obj

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/formats/textrule"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
)

// MetricStreamsOff is why metric-stream data is dead-lettered by a Reader
// without a metric decoder (Config.Metrics).
const MetricStreamsOff = decode.MetricStreamsOff

// stepItems reads one item of an object of Firehose records and decides
// what it is on its own, as the decode stage decides for the items of a
// record (package decode): a CloudWatch envelope (its events; a control
// message is dropped; a broken one, or one of an unknown messageType, is
// dead-lettered alone), a metric-stream datum (its points), a log line, or
// a line that is not text (dead-lettered). What the object starts with
// decides nothing about the rest.
func (r *Reader) stepItems() error {
	it, err := r.sc.nextItem()
	if err != nil {
		return err
	}
	r.readItem(it)
	return nil
}

func (r *Reader) readItem(it item) {
	if it.truncated {
		r.dead(nil, fmt.Sprintf("%s: longer than %d bytes; skipped", it.where(), r.cfg.MaxItemBytes))
		return
	}
	if bytes.HasPrefix(it.data, utf8BOM) {
		// A byte-order mark that starts a line is no part of it: Firehose
		// concatenates records, and the decode stage drops the mark at a
		// record's start, so that a datum is a datum here too.
		it.data, it.offset = it.data[len(utf8BOM):], it.offset+int64(len(utf8BOM))
		if len(bytes.TrimLeft(it.data, " \t\r\n")) == 0 {
			return
		}
	}
	b := it.data
	if j := skipSpace(b); j < len(b) && b[j] == '{' {
		if cwlogs.ClaimsEnvelope(b) && r.envelopeItem(it) {
			return
		}
		if metricstream.Detect(b) == metricstream.FormatJSON {
			r.datumItem(it)
			return
		}
	}
	if why := textrule.NotText(b); why != "" {
		r.addToRun(runNotText, it, why)
		return
	}
	r.addEvent(r.base, nil, r.objTime, b)
}

func (it item) where() string {
	if it.line > 0 {
		return fmt.Sprintf("line %d (decompressed offset %d)", it.line, it.offset)
	}
	return fmt.Sprintf("decompressed offset %d", it.offset)
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// envelopeItem reads an item that claims to be a CloudWatch envelope. It
// reports false, having done nothing, when the item is JSON that is not an
// envelope after all (the key was nested): a log line.
func (r *Reader) envelopeItem(it item) bool {
	var origin *record.Origin
	control := false
	onEnvelope := func(env *cwlogs.Envelope) error {
		control = env.MessageType == cwlogs.Control
		if !control {
			origin = r.envelopeOrigin(env)
		}
		return nil
	}
	onEvent := func(_ *cwlogs.Envelope, ev *cwlogs.Event) error {
		// The document was checked whole before the first event: a
		// malformed one produces nothing.
		r.addEvent(origin.WithAccountRegion(ev.Account, ev.Region), ev.ID, ev.Timestamp, ev.Message)
		return nil
	}
	var err error
	if !it.unclosed && r.scan.Scan(it.data) {
		// The usual data message, read in one pass (the hot path of a
		// replay); anything else takes the general parser.
		err = r.scan.Emit(onEnvelope, onEvent)
	} else {
		err = cwlogs.ParseDocument(&r.parser, it.data, onEnvelope, onEvent)
	}
	switch {
	case err == nil:
		if control {
			r.stats.Control++
		}
		return true
	case errors.Is(err, cwlogs.ErrNotEnvelope):
		return false
	}
	if errors.Is(err, cwlogs.ErrUnknownMessageType) {
		r.stats.Unknown++
	}
	if it.unclosed {
		err = cwlogs.ErrTruncated
	}
	r.deadRecord(record.Record{Origin: origin, Timestamp: r.objTime, Kind: record.KindRaw, Message: base64Of(it.data),
		Reason: fmt.Sprintf("%s: CloudWatch envelope: %v", it.where(), err)})
	return true
}

// datumItem reads a metric-stream datum (JSON output).
func (r *Reader) datumItem(it item) {
	if r.cfg.Metrics == nil {
		r.addToRun(runMetricLines, it, "")
		return
	}
	r.flushRun()
	_, bad := r.cfg.Metrics.DecodeLines(it.data, r.addPoint)
	for _, b := range bad {
		r.deadBytes(b.Data, fmt.Sprintf("%s: metric stream: %s", it.where(), b.Reason))
	}
}

// stepFrames reads one frame of an object of binary metric-stream data
// (OpenTelemetry output, length-delimited frames).
func (r *Reader) stepFrames() error {
	it, err := r.sc.nextFrame()
	if err != nil {
		return err
	}
	if it.unterminated {
		r.deadBytes(it.data, fmt.Sprintf("metric-stream frame at decompressed offset %d is cut short by the end of the object", it.offset))
		return nil
	}
	if r.cfg.Metrics == nil {
		r.addToRun(runMetricFrames, it, "")
		return nil
	}
	r.flushRun()
	_, bad := r.cfg.Metrics.DecodeFrames(it.data, r.addPoint)
	for _, b := range bad {
		r.deadBytes(b.Data, fmt.Sprintf("metric stream at decompressed offset %d: %s", it.offset+int64(b.Offset), b.Reason))
	}
	return nil
}

// finishItems ends what an item left open at the end of the object.
func (r *Reader) finishItems() {
	r.finishExport()
	r.flushRun()
}

// A run is consecutive items dead-lettered for the same reason, gathered
// into one dead letter of at most Decode.MaxRecordBytes (which a replay
// reads again as one record): a binary stretch of an object, or an object
// of metric-stream data when metric streams are not read, is a few dead
// letters rather than one per line.
type runKind uint8

const (
	runNone         runKind = iota
	runNotText              // lines that are not text
	runMetricLines          // metric-stream datums, not read
	runMetricFrames         // metric-stream frames, not read
)

type deadRun struct {
	kind        runKind
	data        []byte // the items, lines joined by '\n', frames back to back
	n           int
	first, last item // data unused: where the run starts and ends
	why         string
}

func (r *Reader) addToRun(kind runKind, it item, why string) {
	sep := 0
	if kind != runMetricFrames {
		sep = 1
	}
	if r.run.kind != kind || len(r.run.data)+sep+len(it.data) > r.cfg.Decode.MaxRecordBytes {
		r.flushRun()
	}
	if r.run.kind == runNone {
		r.run = deadRun{kind: kind, data: r.run.data[:0], first: item{line: it.line, offset: it.offset}, why: why}
	} else if sep == 1 {
		r.run.data = append(r.run.data, '\n')
	}
	r.run.data = append(r.run.data, it.data...)
	r.run.n++
	r.run.last = item{line: it.line, offset: it.offset}
}

func (r *Reader) flushRun() {
	run := r.run
	if run.kind == runNone {
		return
	}
	r.run = deadRun{data: run.data[:0]}
	if cap(run.data) > 1<<20 {
		r.run.data = nil // do not pin one large run's buffer
	}
	where := run.first.where()
	if run.n > 1 && run.kind == runMetricFrames {
		where = fmt.Sprintf("%d frames from decompressed offset %d", run.n, run.first.offset)
	} else if run.n > 1 {
		where = fmt.Sprintf("lines %d to %d (%d items from decompressed offset %d)", run.first.line, run.last.line, run.n, run.first.offset)
	}
	var reason string
	switch run.kind {
	case runNotText:
		reason = fmt.Sprintf("%s: not text: %s", where, run.why)
		if run.n > 1 {
			reason = fmt.Sprintf("%s: not text (line %d: %s)", where, run.first.line, run.why)
		}
	default:
		reason = where + ": " + MetricStreamsOff
	}
	r.deadBytes(run.data, reason)
}
