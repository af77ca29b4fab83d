package stage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/klauspost/compress/s2"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// BinaryCodec puts a whole batch in one message payload for brokers: a
// compact binary encoding (varints, each origin and tag list written once),
// compressed with S2 unless Compression says otherwise or S2 would save
// less than 1/64 of the bytes (klauspost/compress: Snappy's format family,
// several times faster than zstd at a somewhat lower ratio — every hop of
// every batch pays it twice, so speed wins).
// Every piece of metadata travels inside the payload, since SQS allows only
// 10 message attributes.
//
// Compression trades CPU for bytes. SQS bills and limits by the byte, so its
// batches are always compressed where it pays; on NATS, S2 is the default too
// (transport.nats.compression, DefaultNATSConfig): every byte through the
// broker costs nats-server and both workers more than S2 costs (measured
// with scripts/bench-fleet.sh, two tiers: S2 ~30 MiB, 4.4 worker + 0.6
// nats-server CPU-s for 300k events; none ~129 MiB, 5.3-5.8 + 2.2), and
// "none" is there for brokers with CPU and bandwidth to spare. The reader
// tells the two apart by the magic bytes, so workers with different
// settings share topics.
//
// A hand-written encoding rather than a general serialiser: this runs on
// every hop of every batch, and it needs no reflection or code generation.
//
// Layout (before compression): "GWB" version(2) then
//
//	batch:  id stage reason originCount origin* batchOrigin tagListCount tagList* recordCount record* metricCount metric*
//	tagList: count tag*
//	origin: source requestID sourceARN stream account region logGroup logStream flags
//	record: originIndex+1 eventID timestamp message kind source service level flags parseError reason tagListIndex+1 shape value*
//	shape:  0 (the previous record's) | attrCount+1 (keyRef kind)*
//	keyRef: 0 key (the first time in the batch) | index+1
//	value:  int (Int, Bool) | nothing (Null) | offset<<1|1 length (a range of the message) | length<<1 bytes
//	metric: name kind timestamp interval value host unit tagCount tag* valueCount value* hasSketch [sketch]
//
// where strings and byte strings are a uvarint length then the bytes, and
// integers are zig-zag varints.
//
// The shape (keys and kinds of a record's attributes) is usually the
// previous record's: records of a batch come from one parser. A value
// inside the message is sent as where it starts, relative to where the
// record's previous such value ended (zig-zag: parsers mostly go forward),
// so that it mostly fits a byte. Version 1 (a key reference and a kind
// before every value, absolute offsets) is still read, for workers of the
// previous release sharing a topic.
type BinaryCodec struct {
	Compression Compression
}

// Compression is how an encoded batch is compressed.
type Compression uint8

const (
	CompressS2   Compression = iota // S2 block (the default)
	CompressNone                    // the encoding as is
)

// ParseCompression reads a configured compression name.
func ParseCompression(name string) (Compression, error) {
	switch name {
	case "s2":
		return CompressS2, nil
	case "none":
		return CompressNone, nil
	}
	return 0, fmt.Errorf("compression must be s2 or none, not %q", name)
}

const codecVersion = 2

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxDecoded bounds a decoded batch, so that a corrupt length cannot make
// the decoder allocate without limit.
const maxDecoded = 256 << 20

// Marshal encodes b into a new message.
func (c BinaryCodec) Marshal(ctx context.Context, b *record.Batch) (*message.Message, error) {
	payload, err := EncodeBatchWith(b, c.Compression)
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.SetContext(ctx)
	return msg, nil
}

// Unmarshal decodes a message's payload.
func (BinaryCodec) Unmarshal(msg *message.Message) (*record.Batch, error) {
	b, err := DecodeBatch(msg.Payload)
	if err != nil {
		return nil, Permanent(err)
	}
	return b, nil
}

// EncodeBatch returns the S2-compressed encoding of b.
func EncodeBatch(b *record.Batch) ([]byte, error) { return EncodeBatchWith(b, CompressS2) }

// EncodeBatchWith returns the encoding of b, compressed as c says (S2
// only where it saves more than 1/64 of the bytes).
func EncodeBatchWith(b *record.Batch, c Compression) ([]byte, error) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := appendBatch(append((*bp)[:0], magic[:]...), b)
	*bp = buf
	if c == CompressNone {
		return append(make([]byte, 0, len(buf)), buf...), nil
	}
	// S2 wants room for the worst case (a little over the input); compress
	// into a pooled buffer and keep only what the output needs, so that
	// each batch allocates its compressed size rather than its raw size.
	zp := bufs.Get().(*[]byte)
	defer bufs.Put(zp)
	if need := s2.MaxEncodedLen(len(buf)); cap(*zp) < need {
		*zp = make([]byte, need)
	}
	out := s2.Encode((*zp)[:cap(*zp)], buf)
	if len(out) > len(buf)-len(buf)/64 {
		// Compression did not pay (batches of gzip records, as ingest
		// publishes them, come out a few bytes larger): the plain
		// encoding is as small and spares the reader a decompression
		// and a copy. Readers tell the two apart by the magic bytes.
		out = buf
	}
	return append(make([]byte, 0, len(out)), out...), nil
}

// magic starts every uncompressed encoding. An S2 block cannot start with
// it (it would declare 71 bytes, then a copy before any literal), so
// DecodeBatch tells compressed from plain payloads without a flag.
var magic = [4]byte{'G', 'W', 'B', codecVersion}

// DecodeBatch decodes what EncodeBatch or EncodeBatchWith produced. The
// batch aliases p when it was not compressed: p must not change after.
func DecodeBatch(p []byte) (*record.Batch, error) {
	if len(p) >= 3 && p[0] == 'G' && p[1] == 'W' && p[2] == 'B' {
		return decodeRaw(p)
	}
	n, err := s2.DecodedLen(p)
	if err != nil {
		return nil, fmt.Errorf("decode batch: s2: %w", err)
	}
	if n > maxDecoded {
		return nil, fmt.Errorf("decode batch: %d bytes decoded exceed the %d-byte limit", n, maxDecoded)
	}
	raw, err := s2.Decode(nil, p)
	if err != nil {
		return nil, fmt.Errorf("decode batch: s2: %w", err)
	}
	return decodeRaw(raw)
}

func decodeRaw(raw []byte) (*record.Batch, error) {
	if len(raw) < 4 || raw[0] != 'G' || raw[1] != 'W' || raw[2] != 'B' {
		return nil, errors.New("decode batch: not a gwpipe batch")
	}
	if raw[3] != codecVersion && raw[3] != 1 {
		return nil, fmt.Errorf("decode batch: version %d, this build reads 1 and %d", raw[3], codecVersion)
	}
	d := decoder{buf: raw[4:], version: raw[3]}
	b := d.batch()
	if d.err != nil {
		return nil, fmt.Errorf("decode batch: %w", d.err)
	}
	return b, nil
}

// The encoder appends to a local slice rather than a field behind a
// pointer: every pointer store through a pointer pays the GC's write
// barrier while a collection runs, and this loop stores on every value.
func appendStr(buf []byte, s string) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(s))), s...)
}

func appendBytes(buf, p []byte) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(p))), p...)
}

func appendF64(buf []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
}

func appendBatch(buf []byte, b *record.Batch) []byte {
	return appendBatchAttrs(buf, b, shapeWriter())
}

// attrWriter appends the attributes of the records of a batch, one record
// after the other.
type attrWriter func(buf []byte, r *record.Record) []byte

// appendBatchAttrs appends b, its records' attributes as attrs writes them.
func appendBatchAttrs(buf []byte, b *record.Batch, attrs attrWriter) []byte {
	buf = appendStr(buf, b.ID)
	buf = appendStr(buf, b.Stage)
	buf = appendStr(buf, b.Reason)
	origins := map[*record.Origin]int{}
	var list []*record.Origin
	add := func(o *record.Origin) {
		if o == nil {
			return
		}
		if _, ok := origins[o]; !ok {
			origins[o] = len(list)
			list = append(list, o)
		}
	}
	add(b.Origin)
	for i := range b.Records {
		add(b.Records[i].Origin)
	}
	buf = binary.AppendUvarint(buf, uint64(len(list)))
	for _, o := range list {
		buf = appendStr(buf, o.Source)
		buf = appendStr(buf, o.RequestID)
		buf = appendStr(buf, o.SourceARN)
		buf = appendStr(buf, o.Stream)
		buf = appendStr(buf, o.Account)
		buf = appendStr(buf, o.Region)
		buf = appendStr(buf, o.LogGroup)
		buf = appendStr(buf, o.LogStream)
		var flags uint64
		if o.Replay {
			flags |= 1
		}
		if o.Counted {
			flags |= 2
		}
		buf = binary.AppendUvarint(buf, flags)
	}
	idx := func(o *record.Origin) uint64 {
		if o == nil {
			return 0
		}
		return uint64(origins[o] + 1)
	}
	buf = binary.AppendUvarint(buf, idx(b.Origin))
	// Records of one stage share one tag slice: each list is written once.
	type listKey struct {
		first *string
		n     int
	}
	lists := map[listKey]int{}
	var listOrder [][]string
	tagIndex := make([]int, len(b.Records))
	for i := range b.Records {
		t := b.Records[i].Tags
		if len(t) == 0 {
			tagIndex[i] = 0
			continue
		}
		k := listKey{&t[0], len(t)}
		j, ok := lists[k]
		if !ok {
			j = len(listOrder) + 1
			lists[k] = j
			listOrder = append(listOrder, t)
		}
		tagIndex[i] = j
	}
	buf = binary.AppendUvarint(buf, uint64(len(listOrder)))
	for _, t := range listOrder {
		buf = binary.AppendUvarint(buf, uint64(len(t)))
		for _, tag := range t {
			buf = appendStr(buf, tag)
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.Records)))
	for i := range b.Records {
		r := &b.Records[i]
		buf = binary.AppendUvarint(buf, idx(r.Origin))
		buf = appendStr(buf, r.EventID)
		buf = binary.AppendVarint(buf, r.Timestamp)
		buf = appendBytes(buf, r.Message)
		buf = binary.AppendUvarint(buf, uint64(r.Kind))
		buf = appendStr(buf, r.Source)
		buf = appendStr(buf, r.Service)
		buf = binary.AppendUvarint(buf, uint64(r.Level))
		var flags uint64
		if r.TimeFixed {
			flags |= 1
		}
		buf = binary.AppendUvarint(buf, flags)
		buf = appendStr(buf, r.ParseError)
		buf = appendStr(buf, r.Reason)
		buf = binary.AppendUvarint(buf, uint64(tagIndex[i]))
		buf = attrs(buf, r)
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.Metrics)))
	for i := range b.Metrics {
		m := &b.Metrics[i]
		buf = appendStr(buf, m.Name)
		buf = binary.AppendUvarint(buf, uint64(m.Kind))
		buf = binary.AppendVarint(buf, m.Timestamp)
		buf = binary.AppendVarint(buf, m.Interval)
		buf = appendF64(buf, m.Value)
		buf = appendStr(buf, m.Host)
		buf = appendStr(buf, m.Unit)
		buf = binary.AppendUvarint(buf, uint64(len(m.Tags)))
		for _, t := range m.Tags {
			buf = appendStr(buf, t)
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.Values)))
		for _, v := range m.Values {
			buf = appendF64(buf, v)
		}
		if m.Sketch == nil {
			buf = binary.AppendUvarint(buf, 0)
			continue
		}
		buf = binary.AppendUvarint(buf, 1)
		s := m.Sketch
		buf = binary.AppendVarint(buf, s.Count)
		buf = appendF64(buf, s.Sum)
		buf = appendF64(buf, s.Min)
		buf = appendF64(buf, s.Max)
		buf = binary.AppendUvarint(buf, uint64(len(s.Keys)))
		for j := range s.Keys {
			buf = binary.AppendVarint(buf, int64(s.Keys[j]))
			buf = binary.AppendUvarint(buf, uint64(s.Counts[j]))
		}
	}
	return buf
}

// shapeWriter writes attributes as version 2 does: a record's shape (keys
// and kinds) only when it is not the previous record's, then its values.
func shapeWriter() attrWriter {
	keys := map[string]int{}
	var prev []record.Attr // the previous record's attributes: its shape
	first := true
	return func(buf []byte, r *record.Record) []byte {
		if !first && sameShape(prev, r.Attrs) {
			buf = append(buf, 0)
		} else {
			buf = binary.AppendUvarint(buf, uint64(len(r.Attrs))+1)
			for _, a := range r.Attrs {
				// A key is written once per batch, then referred to.
				if j, ok := keys[a.Key]; ok {
					buf = binary.AppendUvarint(buf, uint64(j+1))
				} else {
					keys[a.Key] = len(keys)
					buf = append(buf, 0)
					buf = appendStr(buf, a.Key)
				}
				buf = binary.AppendUvarint(buf, uint64(a.Kind))
			}
		}
		first, prev = false, r.Attrs
		end := 0 // of the previous value inside the message
		for _, a := range r.Attrs {
			switch a.Kind {
			case record.Int, record.Bool:
				buf = binary.AppendVarint(buf, a.Int)
			case record.Null:
			default:
				// Parsed values are mostly pieces of the message: send
				// where they are rather than the bytes again.
				if off, ok := within(r.Message, a.Str); ok {
					buf = binary.AppendUvarint(buf, zigzag(int64(off-end))<<1|1)
					buf = binary.AppendUvarint(buf, uint64(len(a.Str)))
					end = off + len(a.Str)
				} else {
					buf = binary.AppendUvarint(buf, uint64(len(a.Str))<<1)
					buf = append(buf, a.Str...)
				}
			}
		}
		return buf
	}
}

// decoder reads the encoding; the first error sticks and every later read
// returns zero values, so the code reads straight through.
// Byte strings and strings alias the decompressed payload, which nothing
// writes to after decoding: one allocation serves the whole batch.
// It moves an offset rather than reslicing buf, for the same reason the
// encoder appends to a local: an int store pays no write barrier.
type decoder struct {
	buf     []byte
	off     int
	err     error
	version byte
}

var errShort = errors.New("truncated batch")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.off = len(d.buf)
}

func (d *decoder) left() int { return len(d.buf) - d.off }

func (d *decoder) uvarint() uint64 {
	// Most values (lengths, kinds, key references) fit one byte.
	if d.off < len(d.buf) && d.buf[d.off] < 0x80 {
		v := uint64(d.buf[d.off])
		d.off++
		return v
	}
	v, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.off += n
	return v
}

// varint reads a zig-zag encoded signed varint (binary.AppendVarint's
// form): an unsigned varint whose lowest bit is the sign.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// count reads a length and checks it against what is left, so that a
// corrupt length cannot make us allocate gigabytes.
func (d *decoder) count(minEach int) int {
	n := d.uvarint()
	if n > uint64(d.left()/max(minEach, 1)+1) {
		d.fail(fmt.Errorf("count %d exceeds the payload", n))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(d.left()) {
		d.fail(errShort)
		return nil
	}
	if n == 0 {
		return nil
	}
	i := d.off
	d.off += int(n)
	return d.buf[i:d.off:d.off]
}

func (d *decoder) str() string {
	p := d.bytes()
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

func (d *decoder) f64() float64 {
	if d.left() < 8 {
		d.fail(errShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf[d.off:]))
	d.off += 8
	return v
}

func (d *decoder) batch() *record.Batch {
	b := &record.Batch{ID: d.str(), Stage: d.str(), Reason: d.str()}
	origins := make([]*record.Origin, d.count(9))
	for i := range origins {
		origins[i] = &record.Origin{
			Source: d.str(), RequestID: d.str(), SourceARN: d.str(), Stream: d.str(),
			Account: d.str(), Region: d.str(), LogGroup: d.str(), LogStream: d.str(),
		}
		flags := d.uvarint()
		origins[i].Replay, origins[i].Counted = flags&1 != 0, flags&2 != 0
	}
	origin := func() *record.Origin {
		i := d.uvarint()
		if i == 0 || i > uint64(len(origins)) {
			return nil
		}
		return origins[i-1]
	}
	b.Origin = origin()
	tagLists := make([][]string, d.count(1))
	for i := range tagLists {
		l := make([]string, d.count(1))
		for j := range l {
			l[j] = d.str()
		}
		tagLists[i] = l
	}
	b.Records = make([]record.Record, d.count(14))
	var slab []record.Attr // one allocation serves the attributes of many records
	var keys []string
	var shape []record.Attr // the previous record's attributes (version 2)
	// A shape read once may be repeated by records of a few bytes: bound
	// the attributes of the batch as version 1's two bytes each did.
	budget := d.left() / 2
	for i := range b.Records {
		r := &b.Records[i]
		r.Origin = origin()
		r.EventID = d.str()
		r.Timestamp = d.varint()
		r.Message = d.bytes()
		r.Kind = record.Kind(d.uvarint())
		r.Source = d.str()
		r.Service = d.str()
		r.Level = record.Level(d.uvarint())
		r.TimeFixed = d.uvarint()&1 != 0
		r.ParseError = d.str()
		r.Reason = d.str()
		if j := d.uvarint(); j > 0 && j <= uint64(len(tagLists)) {
			r.Tags = tagLists[j-1]
		}
		if d.version == 1 {
			r.Attrs = d.attrsV1(r.Message, &slab, &keys, len(b.Records)-i)
			continue
		}
		r.Attrs = d.attrs(r.Message, &slab, &keys, &shape, &budget, len(b.Records)-i)
	}
	if n := d.count(20); n > 0 {
		b.Metrics = make([]record.Metric, n)
		for i := range b.Metrics {
			m := &b.Metrics[i]
			m.Name = d.str()
			m.Kind = record.MetricKind(d.uvarint())
			m.Timestamp = d.varint()
			m.Interval = d.varint()
			m.Value = d.f64()
			m.Host = d.str()
			m.Unit = d.str()
			if k := d.count(1); k > 0 {
				m.Tags = make([]string, k)
				for j := range m.Tags {
					m.Tags[j] = d.str()
				}
			}
			if k := d.count(8); k > 0 {
				m.Values = make([]float64, k)
				for j := range m.Values {
					m.Values[j] = d.f64()
				}
			}
			if d.uvarint() == 1 {
				s := &record.Sketch{Count: d.varint(), Sum: d.f64(), Min: d.f64(), Max: d.f64()}
				k := d.count(2)
				s.Keys, s.Counts = make([]int32, k), make([]uint32, k)
				for j := 0; j < k; j++ {
					s.Keys[j] = int32(d.varint())
					s.Counts[j] = uint32(d.uvarint())
				}
				m.Sketch = s
			}
		}
	}
	if d.err == nil && d.left() != 0 {
		d.fail(fmt.Errorf("%d bytes after the batch", d.left()))
	}
	return b
}

// attrs reads a record's attributes (version 2) into the slab.
func (d *decoder) attrs(msg []byte, slab *[]record.Attr, keys *[]string, shape *[]record.Attr, budget *int, recordsLeft int) []record.Attr {
	v := d.uvarint()
	n := len(*shape)
	if v > 0 {
		if v-1 > uint64(d.left()/2) {
			d.fail(fmt.Errorf("count %d exceeds the payload", v-1))
			return nil
		}
		n = int(v - 1)
	}
	if *budget -= n; *budget < 0 {
		d.fail(errors.New("more attributes than the payload can hold"))
		return nil
	}
	if n == 0 {
		*shape = nil
		return nil
	}
	attrs := d.take(slab, n, min(n*recordsLeft, n+*budget))
	if v == 0 {
		for j := range attrs {
			attrs[j].Key, attrs[j].Kind = (*shape)[j].Key, (*shape)[j].Kind
		}
	} else {
		for j := range attrs {
			attrs[j].Key = d.key(keys)
			attrs[j].Kind = record.ValueKind(d.uvarint())
		}
	}
	*shape = attrs
	end := uint64(0) // of the previous value inside the message
	for j := range attrs {
		a := &attrs[j]
		switch a.Kind {
		case record.Int, record.Bool:
			a.Int = d.varint()
		case record.Null:
		default:
			u := d.uvarint()
			if u&1 == 0 {
				if u>>1 > uint64(d.left()) {
					d.fail(errShort)
					return attrs
				}
				if k := int(u >> 1); k > 0 {
					a.Str = d.buf[d.off : d.off+k : d.off+k]
					d.off += k
				}
				continue
			}
			u >>= 1
			off := end + uint64(int64(u>>1)^-int64(u&1)) // zig-zag, relative to end
			n := d.uvarint()
			if off > uint64(len(msg)) || n > uint64(len(msg))-off {
				d.fail(fmt.Errorf("attribute value at %d+%d outside its message", int64(off), n))
				return attrs
			}
			a.Str = msg[off : off+n : off+n]
			end = off + n
		}
	}
	return attrs
}

// take returns n attributes from the slab, growing it by want when it is
// short: records of a batch look alike.
func (d *decoder) take(slab *[]record.Attr, n, want int) []record.Attr {
	s := *slab
	if cap(s)-len(s) < n {
		s = make([]record.Attr, 0, max(n, want))
	}
	attrs := s[len(s) : len(s)+n : len(s)+n]
	*slab = s[:len(s)+n]
	return attrs
}

// key reads a key reference: a new key, or one the batch had before.
func (d *decoder) key(keys *[]string) string {
	k := d.uvarint()
	switch {
	case k == 0:
		key := d.str()
		*keys = append(*keys, key)
		return key
	case k <= uint64(len(*keys)):
		return (*keys)[k-1]
	}
	d.fail(fmt.Errorf("attribute key %d of %d", k, len(*keys)))
	return ""
}

// attrsV1 reads a record's attributes in version 1.
func (d *decoder) attrsV1(msg []byte, slab *[]record.Attr, keys *[]string, recordsLeft int) []record.Attr {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	attrs := d.take(slab, n, n*recordsLeft)
	for j := range attrs {
		a := &attrs[j]
		a.Key = d.key(keys)
		kind := d.uvarint()
		a.Kind = record.ValueKind(kind &^ aliasFlag)
		switch {
		case a.Kind == record.Int || a.Kind == record.Bool:
			a.Int = d.varint()
		case a.Kind == record.Null:
		case kind&aliasFlag != 0:
			off, n := d.uvarint(), d.uvarint()
			if off+n > uint64(len(msg)) || off+n < off {
				d.fail(fmt.Errorf("attribute value at %d+%d outside its message", off, n))
				continue
			}
			a.Str = msg[off : off+n : off+n]
		default:
			a.Str = d.bytes()
		}
	}
	return attrs
}

// aliasFlag marks, in version 1, an attribute value sent as a range of its
// record's message.
const aliasFlag = 1 << 6

// sameShape reports whether two records' attributes have the same keys
// and kinds, in the same order.
func sameShape(a, b []record.Attr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].Key != b[i].Key {
			return false
		}
	}
	return true
}

// zigzag is binary.AppendVarint's mapping of a signed to an unsigned value.
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// within reports whether v lies inside msg's bytes, and where.
func within(msg, v []byte) (int, bool) {
	if len(v) == 0 || len(msg) == 0 {
		return 0, false
	}
	m0 := uintptr(unsafe.Pointer(unsafe.SliceData(msg)))
	v0 := uintptr(unsafe.Pointer(unsafe.SliceData(v)))
	if v0 < m0 || v0+uintptr(len(v)) > m0+uintptr(len(msg)) {
		return 0, false
	}
	return int(v0 - m0), true
}
