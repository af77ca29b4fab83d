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
// compact binary encoding (varints, each origin and tag list written once)
// compressed with S2 (klauspost/compress: Snappy's format family, several
// times faster than zstd at a somewhat lower ratio — every hop of every
// batch pays it twice, so speed wins). Every piece of metadata travels inside the payload,
// since SQS allows only 10 message attributes.
//
// A hand-written encoding rather than a general serialiser: this runs on
// every hop of every batch, and it needs no reflection or code generation.
//
// Layout (before compression): "GWB" version(1) then
//
//	batch:  id stage reason originCount origin* batchOrigin tagListCount tagList* recordCount record* metricCount metric*
//	tagList: count tag*
//	origin: source requestID sourceARN stream account region logGroup logStream flags
//	record: originIndex+1 eventID timestamp message kind source service level flags parseError reason tagListIndex+1 attrCount attr*
//	attr:   keyRef (0 key, the first time in the batch | index+1) kind (str | int | offset length, when the value is part of the message)
//	metric: name kind timestamp interval value host unit tagCount tag* valueCount value* hasSketch [sketch]
//
// where strings and byte strings are a uvarint length then the bytes, and
// integers are zig-zag varints.
type BinaryCodec struct{}

const codecVersion = 1

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxDecoded bounds a decoded batch, so that a corrupt length cannot make
// the decoder allocate without limit.
const maxDecoded = 256 << 20

// Marshal encodes b into a new message.
func (BinaryCodec) Marshal(ctx context.Context, b *record.Batch) (*message.Message, error) {
	payload, err := EncodeBatch(b)
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

// EncodeBatch returns the compressed encoding of b.
func EncodeBatch(b *record.Batch) ([]byte, error) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	e := encoder{buf: append((*bp)[:0], 'G', 'W', 'B', codecVersion)}
	e.batch(b)
	*bp = e.buf
	return s2.Encode(nil, e.buf), nil
}

// DecodeBatch decodes what EncodeBatch produced.
func DecodeBatch(p []byte) (*record.Batch, error) {
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
	if len(raw) < 4 || raw[0] != 'G' || raw[1] != 'W' || raw[2] != 'B' {
		return nil, errors.New("decode batch: not a gwpipe batch")
	}
	if raw[3] != codecVersion {
		return nil, fmt.Errorf("decode batch: version %d, this build reads %d", raw[3], codecVersion)
	}
	d := decoder{buf: raw[4:]}
	b := d.batch()
	if d.err != nil {
		return nil, fmt.Errorf("decode batch: %w", d.err)
	}
	return b, nil
}

type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.buf = append(e.buf, p...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) f64(v float64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v))
}

func (e *encoder) batch(b *record.Batch) {
	e.str(b.ID)
	e.str(b.Stage)
	e.str(b.Reason)
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
	e.uvarint(uint64(len(list)))
	for _, o := range list {
		e.str(o.Source)
		e.str(o.RequestID)
		e.str(o.SourceARN)
		e.str(o.Stream)
		e.str(o.Account)
		e.str(o.Region)
		e.str(o.LogGroup)
		e.str(o.LogStream)
		var flags uint64
		if o.Replay {
			flags |= 1
		}
		e.uvarint(flags)
	}
	idx := func(o *record.Origin) uint64 {
		if o == nil {
			return 0
		}
		return uint64(origins[o] + 1)
	}
	e.uvarint(idx(b.Origin))
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
	e.uvarint(uint64(len(listOrder)))
	for _, t := range listOrder {
		e.uvarint(uint64(len(t)))
		for _, tag := range t {
			e.str(tag)
		}
	}
	e.uvarint(uint64(len(b.Records)))
	keys := map[string]int{}
	var prevKeys []string
	var prevIdx []int
	for i := range b.Records {
		r := &b.Records[i]
		e.uvarint(idx(r.Origin))
		e.str(r.EventID)
		e.varint(r.Timestamp)
		e.bytes(r.Message)
		e.uvarint(uint64(r.Kind))
		e.str(r.Source)
		e.str(r.Service)
		e.uvarint(uint64(r.Level))
		var flags uint64
		if r.TimeFixed {
			flags |= 1
		}
		e.uvarint(flags)
		e.str(r.ParseError)
		e.str(r.Reason)
		e.uvarint(uint64(tagIndex[i]))
		e.uvarint(uint64(len(r.Attrs)))
		for ai, a := range r.Attrs {
			// A key is written once per batch, then referred to. Records
			// of a batch list their keys in the same order: the previous
			// record's key at this position usually answers without a
			// map lookup.
			if ai < len(prevKeys) && prevKeys[ai] == a.Key {
				e.uvarint(uint64(prevIdx[ai] + 1))
			} else {
				j, ok := keys[a.Key]
				if ok {
					e.uvarint(uint64(j + 1))
				} else {
					j = len(keys)
					keys[a.Key] = j
					e.uvarint(0)
					e.str(a.Key)
				}
				for len(prevKeys) <= ai {
					prevKeys, prevIdx = append(prevKeys, ""), append(prevIdx, 0)
				}
				prevKeys[ai], prevIdx[ai] = a.Key, j
			}
			switch a.Kind {
			case record.Int, record.Bool:
				e.uvarint(uint64(a.Kind))
				e.varint(a.Int)
			case record.Null:
				e.uvarint(uint64(a.Kind))
			default:
				// Parsed values are mostly pieces of the message: send
				// where they are rather than the bytes again.
				if off, ok := within(r.Message, a.Str); ok {
					e.uvarint(uint64(a.Kind) | aliasFlag)
					e.uvarint(uint64(off))
					e.uvarint(uint64(len(a.Str)))
				} else {
					e.uvarint(uint64(a.Kind))
					e.bytes(a.Str)
				}
			}
		}
	}
	e.uvarint(uint64(len(b.Metrics)))
	for i := range b.Metrics {
		m := &b.Metrics[i]
		e.str(m.Name)
		e.uvarint(uint64(m.Kind))
		e.varint(m.Timestamp)
		e.varint(m.Interval)
		e.f64(m.Value)
		e.str(m.Host)
		e.str(m.Unit)
		e.uvarint(uint64(len(m.Tags)))
		for _, t := range m.Tags {
			e.str(t)
		}
		e.uvarint(uint64(len(m.Values)))
		for _, v := range m.Values {
			e.f64(v)
		}
		if m.Sketch == nil {
			e.uvarint(0)
			continue
		}
		e.uvarint(1)
		s := m.Sketch
		e.varint(s.Count)
		e.f64(s.Sum)
		e.f64(s.Min)
		e.f64(s.Max)
		e.uvarint(uint64(len(s.Keys)))
		for j := range s.Keys {
			e.varint(int64(s.Keys[j]))
			e.uvarint(uint64(s.Counts[j]))
		}
	}
}

// decoder reads the encoding; the first error sticks and every later read
// returns zero values, so the code reads straight through.
// Byte strings and strings alias the decompressed payload, which nothing
// writes to after decoding: one allocation serves the whole batch.
type decoder struct {
	buf []byte
	err error
}

var errShort = errors.New("truncated batch")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.buf = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads a length and checks it against what is left, so that a
// corrupt length cannot make us allocate gigabytes.
func (d *decoder) count(minEach int) int {
	n := d.uvarint()
	if n > uint64(len(d.buf)/max(minEach, 1)+1) {
		d.fail(fmt.Errorf("count %d exceeds the payload", n))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail(errShort)
		return nil
	}
	p := d.buf[:n:n]
	d.buf = d.buf[n:]
	if n == 0 {
		return nil
	}
	return p
}

func (d *decoder) str() string {
	p := d.bytes()
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

func (d *decoder) f64() float64 {
	if len(d.buf) < 8 {
		d.fail(errShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf))
	d.buf = d.buf[8:]
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
		origins[i].Replay = d.uvarint()&1 != 0
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
		if n := d.count(2); n > 0 {
			if cap(slab)-len(slab) < n {
				slab = make([]record.Attr, 0, n*(len(b.Records)-i)) // records of a batch look alike
			}
			r.Attrs = slab[len(slab) : len(slab)+n : len(slab)+n]
			slab = slab[:len(slab)+n]
			for j := range r.Attrs {
				a := &r.Attrs[j]
				if k := d.uvarint(); k == 0 {
					a.Key = d.str()
					keys = append(keys, a.Key)
				} else if k <= uint64(len(keys)) {
					a.Key = keys[k-1]
				} else {
					d.fail(fmt.Errorf("attribute key %d of %d", k, len(keys)))
				}
				kind := d.uvarint()
				a.Kind = record.ValueKind(kind &^ aliasFlag)
				switch {
				case a.Kind == record.Int || a.Kind == record.Bool:
					a.Int = d.varint()
				case a.Kind == record.Null:
				case kind&aliasFlag != 0:
					off, n := d.uvarint(), d.uvarint()
					if off+n > uint64(len(r.Message)) || off+n < off {
						d.fail(fmt.Errorf("attribute value at %d+%d outside its message", off, n))
						continue
					}
					a.Str = r.Message[off : off+n : off+n]
				default:
					a.Str = d.bytes()
				}
			}
		}
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
	if d.err == nil && len(d.buf) != 0 {
		d.fail(fmt.Errorf("%d bytes after the batch", len(d.buf)))
	}
	return b
}

// aliasFlag marks an attribute value sent as a range of its record's message.
const aliasFlag = 1 << 6

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
