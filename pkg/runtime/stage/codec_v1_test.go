package stage

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// encodeV1 is the version 1 encoding (the previous release's writer, kept
// here to check that version 1 batches are still read, and read the same).
func encodeV1(b *record.Batch) []byte {
	return appendBatchV1([]byte{'G', 'W', 'B', 1}, b)
}

// shapedBatch builds a batch from data: records whose attributes are
// pieces of their message (forwards and backwards), copies, integers and
// nulls, with shapes that repeat or change from record to record.
func shapedBatch(data []byte) *record.Batch {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		c := data[0]
		data = data[1:]
		return c
	}
	keys := []string{"http.method", "http.status_code", "apigateway.responseLength", "x", ""}
	b := &record.Batch{ID: "f", Origin: &record.Origin{Source: "firehose"}}
	var prev []record.Attr
	for len(data) > 0 && len(b.Records) < 64 {
		msg := make([]byte, int(next())%300)
		for i := range msg {
			msg[i] = next()
		}
		r := record.Record{Origin: b.Origin, EventID: string(msg[:len(msg)/4]), Message: msg, Timestamp: int64(next()) - 128}
		n := int(next() % 20)
		if next()%2 == 0 && prev != nil {
			n = len(prev) // the previous record's shape, other values
		}
		for j := 0; j < n; j++ {
			a := record.Attr{Key: keys[int(next())%len(keys)], Kind: record.ValueKind(next() % 6)}
			if j < len(prev) && n == len(prev) {
				a.Key, a.Kind = prev[j].Key, prev[j].Kind
			}
			switch a.Kind {
			case record.Int, record.Bool:
				a.Int = int64(next())<<56 | int64(next())
			case record.Null:
			default:
				if off, l := int(next()), int(next()); next()%4 != 0 && off+l <= len(msg) {
					a.Str = msg[off : off+l : off+l]
				} else if l > 0 {
					a.Str = append([]byte(nil), msg[:min(l, len(msg))]...)
				}
			}
			r.Attrs = append(r.Attrs, a)
		}
		prev = r.Attrs
		b.Records = append(b.Records, r)
	}
	return b
}

// requireSameRecords compares records as the decoder gives them back
// (empty byte strings come back nil).
func requireSameRecords(t *testing.T, want, got *record.Batch) {
	t.Helper()
	if err := sameRecords(want, got); err != nil {
		t.Fatal(err)
	}
}

func sameRecords(want, got *record.Batch) error {
	if len(got.Records) != len(want.Records) {
		return fmt.Errorf("%d records, want %d", len(got.Records), len(want.Records))
	}
	for i := range want.Records {
		w, g := &want.Records[i], &got.Records[i]
		if w.EventID != g.EventID || string(w.Message) != string(g.Message) || w.Timestamp != g.Timestamp || len(w.Attrs) != len(g.Attrs) {
			return fmt.Errorf("record %d: %+v, want %+v", i, g, w)
		}
		for j := range w.Attrs {
			wa, ga := w.Attrs[j], g.Attrs[j]
			if wa.Key != ga.Key || wa.Kind != ga.Kind || string(wa.Str) != string(ga.Str) || wa.Int != ga.Int {
				return fmt.Errorf("record %d attribute %d: %+v, want %+v", i, j, ga, wa)
			}
		}
	}
	return nil
}

// FuzzCodecShapes: what version 2 writes reads back as the batch written,
// and as the same batch version 1's encoding reads back as.
func FuzzCodecShapes(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		seed := make([]byte, 200+r.IntN(2000))
		for i := range seed {
			seed[i] = byte(r.IntN(256))
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := shapedBatch(data)
		for _, c := range []Compression{CompressNone, CompressS2} {
			p, err := EncodeBatchWith(in, c)
			require.NoError(t, err)
			out, err := DecodeBatch(p)
			require.NoError(t, err)
			requireSameRecords(t, in, out)
		}
		v1, err := DecodeBatch(encodeV1(in))
		require.NoError(t, err)
		requireSameRecords(t, in, v1)
	})
}

func TestBinaryCodecReadsVersion1(t *testing.T) {
	t.Parallel()
	in := sampleBatch()
	v1, err := DecodeBatch(encodeV1(in))
	require.NoError(t, err)
	p, err := EncodeBatchWith(in, CompressNone)
	require.NoError(t, err)
	require.Equal(t, byte(2), p[3])
	v2, err := DecodeBatch(p)
	require.NoError(t, err)
	require.Equal(t, v1, v2)
	_, err = DecodeBatch([]byte{'G', 'W', 'B', 3})
	require.ErrorContains(t, err, "version 3")
}

func appendBatchV1(buf []byte, b *record.Batch) []byte {
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
	keys := map[string]int{}
	var prevKeys []string
	var prevIdx []int
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
		buf = binary.AppendUvarint(buf, uint64(len(r.Attrs)))
		for ai, a := range r.Attrs {
			// A key is written once per batch, then referred to. Records
			// of a batch list their keys in the same order: the previous
			// record's key at this position usually answers without a
			// map lookup.
			if ai < len(prevKeys) && prevKeys[ai] == a.Key {
				buf = binary.AppendUvarint(buf, uint64(prevIdx[ai]+1))
			} else {
				j, ok := keys[a.Key]
				if ok {
					buf = binary.AppendUvarint(buf, uint64(j+1))
				} else {
					j = len(keys)
					keys[a.Key] = j
					buf = binary.AppendUvarint(buf, 0)
					buf = appendStr(buf, a.Key)
				}
				for len(prevKeys) <= ai {
					prevKeys, prevIdx = append(prevKeys, ""), append(prevIdx, 0)
				}
				prevKeys[ai], prevIdx[ai] = a.Key, j
			}
			switch a.Kind {
			case record.Int, record.Bool:
				buf = binary.AppendUvarint(buf, uint64(a.Kind))
				buf = binary.AppendVarint(buf, a.Int)
			case record.Null:
				buf = binary.AppendUvarint(buf, uint64(a.Kind))
			default:
				// Parsed values are mostly pieces of the message: send
				// where they are rather than the bytes again.
				if off, ok := within(r.Message, a.Str); ok {
					buf = binary.AppendUvarint(buf, uint64(a.Kind)|aliasFlag)
					buf = binary.AppendUvarint(buf, uint64(off))
					buf = binary.AppendUvarint(buf, uint64(len(a.Str)))
				} else {
					buf = binary.AppendUvarint(buf, uint64(a.Kind))
					buf = appendBytes(buf, a.Str)
				}
			}
		}
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
