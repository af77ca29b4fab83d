// Package s3obj streams the log objects gwpipe finds in S3 (or in local
// files) into batches of log events, metric points and dead letters, with
// memory that does not depend on the object's size: an object is read as a
// stream, one item at a time, and handed on in bounded batches that the
// caller emits before it asks for the next one, so that a saturated
// pipeline stops the reading instead of filling memory.
//
// # Objects of Firehose records
//
// Firehose concatenates records, so one object may hold CloudWatch Logs
// subscription envelopes (gzip members or plain, newline-delimited or back
// to back), access-log lines API Gateway wrote directly, metric-stream
// datums and whatever else a producer put on the stream
// (docs/wire-formats.md#cloudwatch-framings and
// docs/wire-formats.md#firehose-retries-and-backup).
// Such an object is read item by item with the decode stage's rules
// (package decode): each line, and each JSON object written back to back
// with others, is decided on its own, whatever the object starts with
// (Layout only names what it starts with):
//
//   - a CloudWatch envelope (cwlogs.ClaimsEnvelope, then
//     cwlogs.ParseDocument, which checks it whole): its events; a control
//     message is dropped and counted; an unknown messageType or a malformed
//     envelope is dead-lettered alone, never a log;
//   - a metric-stream datum (JSON output): its points, with Config.Metrics;
//     without, it is dead-lettered (MetricStreamsOff), never a log;
//   - a JSON document that is not an envelope, and any other text: one log
//     line, exactly as it came;
//   - a line that is not text (textrule.NotText): dead-lettered.
//
// Consecutive dead lines of one kind (not text, datums not read) share a
// dead letter of at most Decode.MaxRecordBytes, which a replay reads again
// as one record. The decode stage sees a whole record before it cuts it;
// the reader holds at most MaxItemBytes, so it decides objects written back
// to back as they close (see scanner.nextItem).
//
// # Other objects
//
// Their writers never mix them with anything, so their content (and the
// key, for what the content cannot tell) names them: a metric stream's
// OpenTelemetry output (length-delimited frames, read frame by frame);
// CloudWatch Logs export-task objects ("<timestamp> <message>" lines, group
// and stream taken from the key; never under a key Firehose named);
// Firehose error-backup records (the original records in rawData, through
// the decode stage); gwpipe's own dead-letter archive (package dlq); and
// binary objects (half their first bytes not text), dead-lettered by name.
//
// Compression is recognised by its magic bytes (gzip, zstd, nested layers),
// never by the key's extension. What cannot be read is returned as dead
// letters with the reason, as raw data a replay decodes again; failures to
// read the object itself are errors (ErrSource), so that the caller can
// retry the object rather than lose it.
package s3obj

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/formats/textrule"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
)

// ErrSource marks a failure to read the object's bytes (network, S3,
// file system), as opposed to bytes that were read but are not logs. The
// object can be read again later; nothing about it was dead-lettered.
var ErrSource = errors.New("reading the object failed")

// DeadStage is the stage name the Reader's dead letters carry.
const DeadStage = "s3-read"

// Config bounds the Reader's work. Zero values take the defaults.
type Config struct {
	// Layout forces a layout; LayoutAuto detects it.
	Layout Layout
	// EventsPerBatch and BatchBytes bound one batch: whichever is reached
	// first ends it (defaults 1000 events, 4 MiB of messages).
	EventsPerBatch int
	BatchBytes     int
	// MaxItemBytes bounds one JSON document or line after decompression
	// (default 32 MiB). Longer ones are dead-lettered, not read into memory.
	MaxItemBytes int
	// Decode bounds the raw records found in error backups and dead
	// letters, which go through the decode stage's own code. Its
	// MaxRecordBytes also bounds a dead letter that gathers consecutive
	// lines (not text, metric-stream data not read), so that a replay can
	// read it again.
	Decode decode.Config
	// SkipItem, for gwpipe's dead-letter archive, is asked about every
	// entry (Chunk.Items numbers them) before it is read: an entry it
	// returns true for is passed over and counted in Stats.Skipped. A
	// replay skips so the letters its ledger says were settled.
	SkipItem func(item int64) bool
	// Metrics reads CloudWatch metric-stream data found in objects (JSON
	// datums among the lines, objects of OpenTelemetry frames, and in raw
	// records) into points, as the decode stage does. Nil dead-letters it
	// with the reason: metric-stream data is never delivered as logs.
	Metrics decode.MetricDecoder
	// CountedStages, for gwpipe's dead-letter archive, names the stages
	// that read the derive stage's input beside it (deliver-logs): derive
	// counted the records they dead-letter when it took them in, so their
	// events are read with Origin.Counted, and a replay delivers their logs
	// without counting their requests a second time.
	CountedStages []string
}

func (c Config) withDefaults() Config {
	if c.EventsPerBatch <= 0 {
		c.EventsPerBatch = 1000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 4 << 20
	}
	if c.MaxItemBytes <= 0 {
		c.MaxItemBytes = 32 << 20
	}
	if c.Decode.MaxRecordBytes <= 0 {
		c.Decode.MaxRecordBytes = 1_024_000
	}
	if c.Decode.MaxDecompressedBytes <= 0 {
		c.Decode.MaxDecompressedBytes = 32 << 20
	}
	if c.Decode.MaxEventsPerBatch <= 0 {
		c.Decode.MaxEventsPerBatch = c.EventsPerBatch
	}
	return c
}

// Chunk is one batch read from an object. Items (events and dead letters)
// are numbered from 0 in the order the object holds them; the numbering is
// the same every time the same object is read with the same layout and
// metric-stream reader, which is what lets a replay skip what it already
// delivered.
type Chunk struct {
	First int64 // number of the batch's first record or point; they are numbered consecutively
	// Batch holds KindLine events, or metric points (Batch.Metrics, from
	// metric-stream data), or dead letters when Dead; never a mix.
	Batch *record.Batch
	Dead  bool // the records could not be read; each has its Reason
	// Items, for gwpipe's dead-letter archive, is the entry each record
	// (or point) came from (parallel to Batch.Records, or Batch.Metrics):
	// entries are numbered from 0 in the object, partial lines not
	// counted, so that the numbers do not depend on what an entry decodes
	// to (a raw letter may decode into more events once decode limits are
	// raised). -1 marks a record about the object rather than an entry.
	// Nil for the other layouts.
	Items []int64
}

// Stats describe what a Reader has read so far.
type Stats struct {
	Layout      Layout
	Compression string // "none", "gzip", "zstd", or layers such as "gzip+gzip"
	Events      int64  // events returned
	Points      int64  // metric points returned
	DeadLetters int64  // records returned as dead letters
	Control     int64  // CONTROL_MESSAGE documents dropped
	Unknown     int64  // envelopes dead-lettered for their messageType
	Empty       int64  // dead-letter entries without data (nothing to replay)
	// Partial counts dead-letter entries cut short by a write that failed
	// (a full disk, a crash): a last line without its newline. They are
	// skipped, and numbered as if absent: their batch was refused and sent
	// again, so they are not letters.
	Partial int64
	// Skipped counts dead-letter entries Config.SkipItem passed over.
	Skipped  int64
	BytesIn  int64 // bytes read from the source, as stored
	BytesOut int64 // bytes after decompression
}

// Reader reads one object. It is not safe for concurrent use.
type Reader struct {
	cfg  Config
	obj  Object
	src  *countingReader
	out  *countingReader
	sc   *scanner
	base *record.Origin
	step func() error

	closers []func()
	opened  bool
	done    bool
	err     error // sticky source error

	pending  []Chunk
	cur      *record.Batch // events being gathered
	curFirst int64
	// dead-letter entries: items numbers the records (LayoutDLQ only)
	items    bool
	item     int64   // number of the next entry
	curItem  int64   // entry being read
	curItems []int64 // items of cur's records
	curBytes int
	points   *record.Batch // metric points being gathered (never beside cur)
	// pointItems are the entries of points' points (LayoutDLQ only)
	pointItems []int64
	run        deadRun
	avgEvent   int // bytes per event in the last batch, to size the next
	ordinal    int64
	stats      Stats

	parser fastjson.Parser
	scan   cwlogs.Scanner
	dec    *decode.Stage

	// cache of the last origin derived from an envelope or dead letter
	lastOwner, lastGroup, lastStream string
	lastOrigin                       *record.Origin
	lastDLQ                          dlq.Origin
	lastDLQCounted                   bool
	lastDLQOrigin                    *record.Origin

	// export-task state: the event being assembled (continuation lines)
	exportGroup, exportStream string
	exportOrigin              *record.Origin
	expMsg                    []byte
	expTS                     int64
	expOpen                   bool
	expTrunc                  bool
	objTime                   int64
}

// NewReader returns a Reader of src, which holds obj. Nothing is read
// until the first call to Next.
func NewReader(src io.Reader, obj Object, cfg Config) *Reader {
	cfg = cfg.withDefaults()
	if obj.Source == "" {
		obj.Source = "s3"
	}
	r := &Reader{cfg: cfg, obj: obj, src: &countingReader{r: src}, base: obj.origin(), objTime: obj.time()}
	return r
}

// origin is what every record read from the object inherits.
func (o Object) origin() *record.Origin {
	if o.Source == "" {
		o.Source = "s3"
	}
	base := &record.Origin{
		Source: o.Source, RequestID: o.Name(), Stream: DeliveryStream(o.Key),
		Account: o.Account, Region: o.Region, Replay: o.Replay,
	}
	if o.Bucket != "" {
		base.SourceARN = "arn:aws:s3:::" + o.Bucket
	}
	return base
}

// time is the timestamp of records that carry none of their own (dead
// letters): when the object was written, or now when that is not known.
func (o Object) time() int64 {
	if !o.LastModified.IsZero() {
		return o.LastModified.UnixMilli()
	}
	return time.Now().UnixMilli()
}

// Unreadable is the dead letter of an object that could not be read at
// all, or not past some point: one record naming it (its origin is the
// one a Reader gives), with reason, and no data: the object stays where
// it is, and a replay of its key reads it if it can be read by then.
func Unreadable(obj Object, reason string) *record.Batch {
	base := obj.origin()
	return &record.Batch{ID: base.RequestID + "#unreadable", Origin: base, Stage: DeadStage,
		Records: []record.Record{{Origin: base, Timestamp: obj.time(), Kind: record.KindRaw, Reason: reason}}}
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats {
	s := r.stats
	s.BytesIn = r.src.n
	if r.out != nil {
		s.BytesOut = r.out.n
	}
	return s
}

// Layout is the detected layout (LayoutAuto before the first Next).
func (r *Reader) Layout() Layout { return r.stats.Layout }

// Close releases the decompressors. It does not close the source.
func (r *Reader) Close() error {
	for _, c := range r.closers {
		c()
	}
	r.closers = nil
	return nil
}

// Next returns the next chunk; io.EOF after the last. An error wrapping
// ErrSource means the object could not be read from its source; the chunks
// already returned stay valid and the object can be read again.
func (r *Reader) Next() (Chunk, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return Chunk{}, r.err
		}
		if r.done {
			r.flush()
			if len(r.pending) == 0 {
				return Chunk{}, io.EOF
			}
			break
		}
		var err error
		if !r.opened {
			r.opened = true
			err = r.open()
		} else {
			err = r.step()
		}
		if err == nil {
			continue
		}
		if err == io.EOF {
			r.finishItems()
			r.done = true
			continue
		}
		if r.src.err != nil {
			// The bytes did not arrive: not the object's fault.
			r.err = fmt.Errorf("%s: %w: %w", r.obj.Name(), ErrSource, r.src.err)
			r.discardUnreturned()
			return Chunk{}, r.err
		}
		// The bytes arrived but cannot be read any further (corrupt or
		// truncated compression): what was read goes on, the rest is a
		// dead letter naming the object and how far reading got.
		r.finishItems()
		r.curItem = -1 // about the object, not one entry
		r.dead(nil, fmt.Sprintf("object %s unreadable after %d bytes (%d decompressed, %d items read): %v; the rest of the object was not read",
			r.obj.Name(), r.src.n, r.outBytes(), r.ordinal, err))
		r.done = true
	}
	c := r.pending[0]
	r.pending[0] = Chunk{}
	r.pending = r.pending[1:]
	switch {
	case c.Dead:
		r.stats.DeadLetters += int64(len(c.Batch.Records))
	case len(c.Batch.Metrics) > 0:
		r.stats.Points += int64(len(c.Batch.Metrics))
	default:
		r.stats.Events += int64(len(c.Batch.Records))
	}
	return c, nil
}

func (r *Reader) outBytes() int64 {
	if r.out == nil {
		return 0
	}
	return r.out.n
}

// discardUnreturned drops what was read but not returned: after a source
// error the object will be read again from its start.
func (r *Reader) discardUnreturned() {
	r.pending, r.cur, r.points = nil, nil, nil
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// maxLayers bounds nested compression (an object compressed by S3's
// destination setting around records gzipped by CloudWatch).
const maxLayers = 3

// open peels compression layers and detects the layout.
func (r *Reader) open() error {
	br := bufio.NewReaderSize(r.src, 64<<10)
	var in io.Reader = br
	comp := ""
	for range maxLayers {
		head, _ := br.Peek(4)
		var next io.Reader
		switch {
		case bytes.HasPrefix(head, gzipMagic):
			zr := new(cwlogs.Members)
			err := zr.Reset(new(gzip.Reader), br)
			if err != nil {
				return fmt.Errorf("gzip header: %w", err)
			}
			r.closers = append(r.closers, func() { _ = zr.Reader().Close() })
			next, comp = zr, comp+"+gzip"
		case bytes.HasPrefix(head, zstdMagic):
			zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
			if err != nil {
				return fmt.Errorf("zstd: %w", err)
			}
			r.closers = append(r.closers, zr.Close)
			next, comp = zr, comp+"+zstd"
		}
		if next == nil {
			break
		}
		br = bufio.NewReaderSize(next, 64<<10)
		in = br
	}
	if comp == "" {
		comp = "+none"
	}
	r.stats.Compression = comp[1:]
	r.out = &countingReader{r: in}
	r.sc = newScanner(r.out, r.cfg.MaxItemBytes)

	layout := r.cfg.Layout
	if layout == LayoutAuto {
		head := r.sc.peek(detectBytes)
		if r.sc.err != nil && len(head) == 0 {
			return r.sc.err
		}
		empty := len(head) - len(metricstream.SkipEmptyFrames(head))
		if size, k := protowire.ConsumeVarint(head[empty:]); k > 0 && size > 0 && size <= uint64(r.cfg.MaxItemBytes) && int(size) > len(head)-empty-k {
			// A first frame larger than the head: read it whole (after
			// any empty frames), so that Detect can tell a metric stream's.
			head = r.sc.peek(empty + k + int(size))
		}
		layout = Detect(head, r.obj.Key)
	}
	r.stats.Layout = layout
	switch layout {
	case LayoutEnvelopes, LayoutAccessLines:
		if bytes.HasPrefix(r.sc.peek(3), utf8BOM) {
			r.sc.consume(3) // a byte-order mark is no part of the first line
		}
		r.step = r.stepItems
	case LayoutMetricFrames:
		r.step = r.stepFrames
	case LayoutBinary:
		r.step = r.stepBinary
	case LayoutErrorBackup:
		r.step = r.stepErrorBackup
	case LayoutDLQ:
		r.step = r.stepDLQ
		r.items = true
	case LayoutExport:
		r.exportGroup, r.exportStream, _ = ExportKey(r.obj.Key)
		r.exportOrigin = r.base.WithLogGroup("", r.exportGroup, r.exportStream)
		r.step = r.stepExport
	default:
		return fmt.Errorf("layout %s cannot be read", layout)
	}
	return nil
}

// detectBytes is how much of an object Detect reads.
const detectBytes = 4096

var utf8BOM = []byte("\xef\xbb\xbf")

// stepBinary dead-letters an object that is not text: it names the object,
// which stays where it is, rather than copy it into the archive.
func (r *Reader) stepBinary() error {
	head := r.sc.peek(detectBytes)
	why := ""
	if bad, _, first := binaryShare(head, r.sc.eof); first != "" {
		why = fmt.Sprintf(": %d%% of its first %d bytes are in lines that are not text (%s)", bad, len(head), first)
	}
	r.dead(nil, fmt.Sprintf("object %s is binary, neither text, gzip, zstd nor a metric stream%s; not read", r.obj.Name(), why))
	return io.EOF
}

// Detect chooses the layout of decompressed content from its first bytes,
// with the key as a hint for what the content cannot tell. The layouts of
// Firehose records (LayoutEnvelopes, LayoutAccessLines) are read item by
// item whatever the object starts with; Detect names the others, which
// their writers never mix with anything: a CloudWatch Logs export (never
// under a key Firehose named), a Firehose error backup, gwpipe's dead-letter
// archive, a binary metric stream, and binary objects (half the bytes of
// the head not text).
func Detect(head []byte, key string) Layout {
	if metricstream.Detect(head) == metricstream.FormatOTel {
		return LayoutMetricFrames
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n")
	if len(t) > 0 && t[0] == '{' {
		// The most specific shapes first: a dead-letter entry or an error
		// backup may quote anything in its reason.
		switch {
		case bytes.HasPrefix(t, []byte(`{"v":`)) && bytes.Contains(t, []byte(`"stage"`)) && bytes.Contains(t, []byte(`"kind"`)):
			return LayoutDLQ
		case bytes.HasPrefix(t, []byte(`{"attemptsMade"`)) ||
			bytes.Contains(t, []byte(`"rawData"`)) && (bytes.Contains(t, []byte(`"attemptsMade"`)) || bytes.Contains(t, []byte(`"errorCode"`))):
			return LayoutErrorBackup
		case cwlogs.ClaimsEnvelope(firstItem(t)):
			return LayoutEnvelopes
		}
		return LayoutAccessLines
	}
	if _, ok := exportTime(t); ok && DeliveryStream(key) == "" {
		return LayoutExport
	}
	if _, _, ok := ExportKey(key); ok && len(t) == 0 {
		return LayoutExport
	}
	if _, binary, _ := binaryShare(head, len(head) < detectBytes); binary {
		return LayoutBinary
	}
	return LayoutAccessLines
}

// firstItem is the first JSON object of t, or as much of it as t holds.
func firstItem(t []byte) []byte {
	if n, err := cwlogs.ObjectEnd(t); err == nil {
		return t[:n]
	}
	return t
}

// binaryShare applies the decode stage's rule for a record to the head of
// an object: the head is binary when its lines that are not text hold half
// its bytes or more. eof tells that the head is the whole object; if not,
// its last line, perhaps cut inside a character, counts only up to the
// cut. first is why the first such line is not text.
func binaryShare(head []byte, eof bool) (percent int, binary bool, first string) {
	total, bad := 0, 0
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
			if !eof {
				line = trimPartialRune(line)
			}
		}
		total += len(line)
		if why := textrule.NotText(line); why != "" {
			bad += len(line)
			if first == "" {
				first = why
			}
		}
	}
	if total == 0 {
		return 0, false, ""
	}
	return bad * 100 / total, 2*bad >= total && bad > 0, first
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of p.
func trimPartialRune(p []byte) []byte {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(p); i++ {
		if c := p[len(p)-i]; c < 0x80 {
			return p
		} else if utf8.RuneStart(c) {
			if !utf8.FullRune(p[len(p)-i:]) {
				return p[:len(p)-i]
			}
			return p
		}
	}
	return p
}

// ---------------------------------------------------------------------------
// Batching.

func (r *Reader) batchID(first int64) string {
	return r.base.RequestID + "#" + strconv.FormatInt(first, 10)
}

// keepString copies p into the current batch's arena as a string. The arena
// is never written again where it was written, so the string stays valid.
func (r *Reader) keepString(p []byte) string {
	k := r.keep(p)
	if len(k) == 0 {
		return ""
	}
	return unsafe.String(&k[0], len(k))
}

// reserve makes room for n more bytes in the current batch's arena. When
// the estimate made at newBatch falls short, the new arena is sized for
// what the batch still needs rather than doubled (records alias the old
// arena, which stays alive through them).
func (r *Reader) reserve(n int) {
	b := r.cur
	if cap(b.Arena)-len(b.Arena) >= n {
		return
	}
	need := n
	if r.avgEvent > 0 {
		left := min(r.cfg.EventsPerBatch-len(b.Records), (r.cfg.BatchBytes-r.curBytes)/r.avgEvent+1)
		need = max(n, left*r.avgEvent)
	}
	b.Arena = make([]byte, 0, max(need, 16<<10))
}

// keep copies p into the current batch's arena.
func (r *Reader) keep(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	r.reserve(len(p))
	b := r.cur
	start := len(b.Arena)
	b.Arena = append(b.Arena, p...)
	return b.Arena[start:len(b.Arena):len(b.Arena)]
}

func (r *Reader) addEvent(o *record.Origin, id []byte, ts int64, msg []byte) {
	r.flushRun()
	if r.cur == nil {
		r.newBatch()
	}
	rec := record.Record{Origin: o, Timestamp: ts, Kind: record.KindLine, Message: r.keep(msg)}
	if len(id) > 0 {
		rec.EventID = r.keepString(id)
	}
	r.cur.Records = append(r.cur.Records, rec)
	if r.items {
		r.curItems = append(r.curItems, r.curItem)
	}
	r.curBytes += len(msg) + len(id)
	r.ordinal++
	if len(r.cur.Records) >= r.cfg.EventsPerBatch || r.curBytes >= r.cfg.BatchBytes {
		r.flush()
	}
}

// newBatch starts a batch sized after the previous ones, so that its
// records and arena are allocated once instead of grown by doubling.
func (r *Reader) newBatch() {
	r.flushPoints()
	n, size := min(r.cfg.EventsPerBatch, 256), min(r.cfg.BatchBytes, 256<<10)
	if r.avgEvent > 0 {
		n = min(r.cfg.EventsPerBatch, r.cfg.BatchBytes/r.avgEvent+1)
		size = min(r.cfg.BatchBytes+r.avgEvent, n*r.avgEvent+n*r.avgEvent/8)
	}
	r.cur = &record.Batch{
		ID: r.batchID(r.ordinal), Origin: r.base,
		Records: make([]record.Record, 0, n),
		Arena:   make([]byte, 0, size),
	}
	r.curFirst, r.curBytes, r.curItems = r.ordinal, 0, nil
}

func (r *Reader) flush() {
	if r.cur != nil && len(r.cur.Records) > 0 {
		r.pending = append(r.pending, Chunk{First: r.curFirst, Batch: r.cur, Items: r.curItems})
		r.avgEvent = max(1, r.curBytes/len(r.cur.Records))
	}
	r.cur, r.curItems = nil, nil
	r.flushPoints()
}

// addPoint adds a metric point; points travel in batches of their own.
func (r *Reader) addPoint(m record.Metric) {
	r.flushRun()
	if r.points == nil {
		r.flush()
		r.points = &record.Batch{ID: r.batchID(r.ordinal), Origin: r.base, Metrics: make([]record.Metric, 0, min(r.cfg.EventsPerBatch, 256))}
		r.curFirst = r.ordinal
	}
	r.points.Metrics = append(r.points.Metrics, m)
	if r.items {
		r.pointItems = append(r.pointItems, r.curItem)
	}
	r.ordinal++
	if len(r.points.Metrics) >= r.cfg.EventsPerBatch {
		r.flushPoints()
	}
}

func (r *Reader) flushPoints() {
	if r.points != nil {
		r.pending = append(r.pending, Chunk{First: r.curFirst, Batch: r.points, Items: r.pointItems})
		r.points, r.pointItems = nil, nil
	}
}

// dead adds a dead letter. data is kept as the record's raw bytes: base64
// text of the bytes that could not be read, so that a replay of the
// archive sends them through the decode stage again.
func (r *Reader) dead(data []byte, reason string) {
	r.deadRecord(record.Record{Origin: r.base, Timestamp: r.objTime, Kind: record.KindRaw, Message: data, Reason: reason})
}

func (r *Reader) deadBytes(raw []byte, reason string) {
	r.dead(base64Of(raw), reason)
}

func base64Of(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	data := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(data, raw)
	return data
}

func (r *Reader) deadRecord(rec record.Record) {
	r.flushRun()
	r.flush()
	if rec.Origin == nil {
		rec.Origin = r.base
	}
	if n := len(r.pending); n > 0 && r.pending[n-1].Dead && r.pending[n-1].First+int64(len(r.pending[n-1].Batch.Records)) == r.ordinal &&
		len(r.pending[n-1].Batch.Records) < r.cfg.EventsPerBatch {
		c := &r.pending[n-1]
		c.Batch.Records = append(c.Batch.Records, rec)
		if r.items {
			c.Items = append(c.Items, r.curItem)
		}
	} else {
		c := Chunk{First: r.ordinal, Dead: true, Batch: &record.Batch{
			ID: r.batchID(r.ordinal), Origin: r.base, Stage: DeadStage, Records: []record.Record{rec},
		}}
		if r.items {
			c.Items = []int64{r.curItem}
		}
		r.pending = append(r.pending, c)
	}
	r.ordinal++
}

// ---------------------------------------------------------------------------
// Layouts.

func (r *Reader) itemProblem(it item, what string) bool {
	off := r.sc.offset() - int64(len(it.data))
	switch {
	case it.truncated:
		r.dead(nil, fmt.Sprintf("%s at decompressed offset %d exceeds %d bytes; skipped", what, off, r.cfg.MaxItemBytes))
	case it.garbage:
		r.deadBytes(it.data, fmt.Sprintf("%d bytes at decompressed offset %d are not a JSON document", len(it.data), off))
	case it.unterminated:
		r.deadBytes(it.data, fmt.Sprintf("%s at decompressed offset %d is cut short by the end of the object", what, off))
	default:
		return false
	}
	return true
}

func (r *Reader) envelopeOrigin(env *cwlogs.Envelope) *record.Origin {
	if r.lastOrigin != nil && env.Owner == r.lastOwner && env.LogGroup == r.lastGroup && env.LogStream == r.lastStream {
		return r.lastOrigin
	}
	r.lastOwner, r.lastGroup, r.lastStream = env.Owner, env.LogGroup, env.LogStream
	r.lastOrigin = r.base.WithLogGroup(env.Owner, env.LogGroup, env.LogStream)
	return r.lastOrigin
}

// stepExport reads one export-task line. A line without a timestamp
// continues the previous message: the export writes multi-line messages
// without escaping them.
func (r *Reader) stepExport() error {
	it, err := r.sc.nextLine()
	if err != nil {
		return err
	}
	if it.truncated {
		r.finishExport()
		r.itemProblem(it, "export-task line")
		return nil
	}
	line := it.data
	if ts, ok := exportTime(line); ok {
		r.finishExport()
		r.expMsg = append(r.expMsg[:0], line[exportPrefixLen(line):]...)
		r.expTS, r.expOpen, r.expTrunc = ts, true, false
		return nil
	}
	if wholeItem(&r.parser, line) {
		// An envelope or a metric-stream datum, whole on its line: an
		// export never writes one, and its JSON is never a log.
		r.finishExport()
		r.readItem(it)
		return nil
	}
	if !r.expOpen {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		r.expMsg = append(r.expMsg[:0], line...)
		r.expTS, r.expOpen, r.expTrunc = r.objTime, true, false
		return nil
	}
	if r.expTrunc {
		return nil
	}
	if len(r.expMsg)+1+len(line) > r.cfg.MaxItemBytes {
		r.expTrunc = true
		return nil
	}
	r.expMsg = append(append(r.expMsg, '\n'), line...)
	return nil
}

func (r *Reader) finishExport() {
	if !r.expOpen {
		return
	}
	r.expOpen = false
	switch why := textrule.NotText(r.expMsg); {
	case r.expTrunc:
		r.dead(nil, fmt.Sprintf("export-task message beginning %q exceeds %d bytes; skipped", head(r.expMsg, 80), r.cfg.MaxItemBytes))
	case why != "":
		r.deadRecord(record.Record{Origin: r.exportOrigin, Timestamp: r.expTS, Kind: record.KindRaw, Message: base64Of(r.expMsg),
			Reason: "export-task message: not text: " + why})
	default:
		r.addEvent(r.exportOrigin, nil, r.expTS, r.expMsg)
	}
	if cap(r.expMsg) > 1<<20 {
		r.expMsg = nil // do not pin one huge message's buffer
	}
}

// wholeItem tells whether a line is one JSON object, whole, that is a
// CloudWatch envelope (broken or not) or a metric-stream datum.
func wholeItem(p *fastjson.Parser, line []byte) bool {
	t := bytes.TrimSpace(line)
	if len(t) == 0 || t[0] != '{' {
		return false
	}
	if n, err := cwlogs.ObjectEnd(t); err != nil || n != len(t) {
		return false
	}
	if metricstream.Detect(t) == metricstream.FormatJSON {
		return true
	}
	if !cwlogs.ClaimsEnvelope(t) {
		return false
	}
	none := func(*cwlogs.Envelope) error { return nil }
	err := cwlogs.ParseDocument(p, t, none, func(*cwlogs.Envelope, *cwlogs.Event) error { return nil })
	return !errors.Is(err, cwlogs.ErrNotEnvelope)
}

func head(p []byte, n int) []byte {
	if len(p) > n {
		return p[:n]
	}
	return p
}

// exportTime reads the "2006-01-02T15:04:05.000Z " prefix of an export line.
func exportTime(line []byte) (int64, bool) {
	if len(line) < 20 || line[4] != '-' || line[7] != '-' || line[10] != 'T' || line[13] != ':' || line[16] != ':' {
		return 0, false
	}
	n := exportPrefixLen(line)
	if n == 0 {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:n-1]))
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// exportPrefixLen is the length of the timestamp and its space, or 0.
func exportPrefixLen(line []byte) int {
	i := 19
	if i < len(line) && line[i] == '.' {
		i++
		for i < len(line) && line[i] >= '0' && line[i] <= '9' {
			i++
		}
	}
	if i+1 < len(line) && line[i] == 'Z' && line[i+1] == ' ' {
		return i + 2
	}
	if i+1 == len(line) && line[i] == 'Z' {
		return i + 1 // an empty message
	}
	return 0
}

// stepErrorBackup reads one Firehose error-backup record and decodes the
// original record it holds.
func (r *Reader) stepErrorBackup() error {
	it, err := r.sc.nextJSON()
	if err != nil {
		return err
	}
	if r.itemProblem(it, "error-backup record") {
		return nil
	}
	v, err := r.parser.ParseBytes(it.data)
	if err != nil {
		r.deadBytes(it.data, "Firehose error-backup record: invalid JSON: "+err.Error())
		return nil
	}
	raw := v.Get("rawData")
	if raw == nil || raw.Type() != fastjson.TypeString {
		r.deadBytes(it.data, "Firehose error-backup record without a rawData string")
		return nil
	}
	ts := v.GetInt64("arrivalTimestamp")
	if ts <= 0 {
		ts = r.objTime
	}
	r.decodeRaw(record.Record{Origin: r.base, Timestamp: ts, Kind: record.KindRaw, Message: raw.GetStringBytes()})
	return nil
}

// decodeRaw decodes one raw record with the decode stage's code and adds
// its events, or the record as a dead letter.
func (r *Reader) decodeRaw(rec record.Record) {
	if r.dec == nil {
		var ms decode.MetricDecoder = decode.RefusedMetricStreams()
		if r.cfg.Metrics != nil {
			ms = r.cfg.Metrics
		}
		r.dec = decode.New(r.cfg.Decode, nil).WithMetricStreams(ms)
	}
	res := r.dec.Decode(&record.Batch{ID: r.batchID(r.ordinal), Origin: rec.Origin, Records: []record.Record{rec}})
	for _, b := range res.Batches {
		for i := range b.Records {
			e := &b.Records[i]
			r.addEvent(e.Origin, unsafe.Slice(unsafe.StringData(e.EventID), len(e.EventID)), e.Timestamp, e.Message)
		}
		for _, m := range b.Metrics {
			r.addPoint(m)
		}
	}
	if res.Dead != nil {
		for _, d := range res.Dead.Records {
			d.Message = bytes.Clone(d.Message)
			r.deadRecord(d)
		}
	}
}

// stepDLQ reads one entry of gwpipe's dead-letter archive: raw records are
// decoded again, lines go on as they are, with the origin they had.
func (r *Reader) stepDLQ() error {
	it, err := r.sc.nextJSON()
	if err != nil {
		return err
	}
	if it.unterminated {
		if r.sc.err != nil {
			return r.sc.err // the bytes did not arrive: read the object again
		}
		r.stats.Partial++
		return nil
	}
	if it.garbage || it.truncated {
		if r.nextItem() {
			r.itemProblem(it, "dead-letter entry")
		}
		return nil
	}
	var e dlq.Entry
	uerr := json.Unmarshal(it.data, &e)
	var bad []byte
	if uerr != nil || e.V != 1 || e.Kind == dlqMetricKind {
		bad = bytes.Clone(it.data) // peek may move the buffer it.data points into
	}
	// The archive writes every entry with its newline: one the object
	// ends right after was cut short (its newline, at least, is missing).
	if next := r.sc.peek(1); len(next) == 0 {
		if r.sc.err != nil {
			return r.sc.err
		}
		r.stats.Partial++
		return nil
	}
	if !r.nextItem() {
		return nil
	}
	if uerr != nil {
		r.deadBytes(bad, "dead-letter entry: "+uerr.Error())
		return nil
	}
	if e.V != 1 {
		r.deadBytes(bad, fmt.Sprintf("dead-letter entry of unsupported version %d (this build reads 1)", e.V))
		return nil
	}
	if e.Kind == dlqMetricKind {
		// A point the metrics API refused: sent again as it was.
		m, err := dlqMetric(e.Metric)
		if err != nil {
			r.deadBytes(bad, "dead-letter entry: "+err.Error())
			return nil
		}
		r.addPoint(m)
		return nil
	}
	if len(e.Data) == 0 {
		// An object-level failure ("unreadable after N bytes"): it names
		// what to read again but holds nothing to send.
		r.stats.Empty++
		return nil
	}
	o := r.dlqOrigin(e.Origin, slices.Contains(r.cfg.CountedStages, e.Stage))
	if e.Kind == record.KindRaw.String() {
		r.decodeRaw(record.Record{Origin: o, EventID: e.EventID, Timestamp: e.Timestamp, Kind: record.KindRaw, Message: e.Data})
		return nil
	}
	ts := e.Timestamp
	if ts == 0 {
		ts = e.Time.UnixMilli()
	}
	if textrule.NotText(e.Data) != "" {
		// Bytes a source handed over undecoded (gzip from SQS, a Firehose
		// record an ingest worker decoded for a broker) are archived with
		// the kind they travelled under when a batch is dead-lettered
		// whole before decode: decoded as the raw record they are, as the
		// decode stage would have, which dead-letters what is not a log.
		r.decodeRaw(record.Record{Origin: o, EventID: e.EventID, Timestamp: ts, Kind: record.KindRaw, Message: base64Of(e.Data)})
		return nil
	}
	r.addEvent(o, []byte(e.EventID), ts, e.Data)
	return nil
}

// nextItem numbers the entry being read and reports whether to read it
// (Config.SkipItem).
func (r *Reader) nextItem() bool {
	r.curItem = r.item
	r.item++
	if r.cfg.SkipItem != nil && r.cfg.SkipItem(r.curItem) {
		r.stats.Skipped++
		return false
	}
	return true
}

// dlqMetricKind is the kind of the archive's metric points (package dlq).
const dlqMetricKind = "metric"

// dlqMetric reads back a point as package dlq writes it.
func dlqMetric(m *dlq.Metric) (record.Metric, error) {
	if m == nil {
		return record.Metric{}, errors.New(`kind "metric" without a metric`)
	}
	out := record.Metric{Name: m.Name, Timestamp: m.Timestamp, Interval: m.Interval, Value: m.Value, Values: m.Values, Tags: m.Tags, Host: m.Host, Unit: m.Unit}
	for k := record.MetricCount; k <= record.MetricDistribution; k++ {
		if k.String() == m.Type {
			out.Kind = k
			return out, nil
		}
	}
	return record.Metric{}, fmt.Errorf("metric %q of unknown type %q", m.Name, m.Type)
}

func (r *Reader) dlqOrigin(d dlq.Origin, counted bool) *record.Origin {
	if r.lastDLQOrigin != nil && d == r.lastDLQ && counted == r.lastDLQCounted {
		return r.lastDLQOrigin
	}
	r.lastDLQ, r.lastDLQCounted = d, counted
	r.lastDLQOrigin = &record.Origin{
		Source: d.Source, RequestID: d.RequestID, SourceARN: d.SourceARN, Stream: d.Stream,
		Account: d.Account, Region: d.Region, LogGroup: d.LogGroup, LogStream: d.LogStream,
		Replay: d.Replay || r.obj.Replay, Counted: counted,
	}
	return r.lastDLQOrigin
}

// countingReader counts bytes and remembers the first read error that is
// not io.EOF, which tells a source failure from a format failure.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
