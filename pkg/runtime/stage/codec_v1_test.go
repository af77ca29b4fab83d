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
	return appendBatchAttrs([]byte{'G', 'W', 'B', 1}, b, v1Writer())
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

// v1Writer writes attributes as version 1 did: a key reference and a kind
// (with aliasFlag) before every value, offsets from the message's start.
func v1Writer() attrWriter {
	keys := map[string]int{}
	return func(buf []byte, r *record.Record) []byte {
		buf = binary.AppendUvarint(buf, uint64(len(r.Attrs)))
		for _, a := range r.Attrs {
			if j, ok := keys[a.Key]; ok {
				buf = binary.AppendUvarint(buf, uint64(j+1))
			} else {
				keys[a.Key] = len(keys)
				buf = binary.AppendUvarint(buf, 0)
				buf = appendStr(buf, a.Key)
			}
			switch a.Kind {
			case record.Int, record.Bool:
				buf = binary.AppendUvarint(buf, uint64(a.Kind))
				buf = binary.AppendVarint(buf, a.Int)
			case record.Null:
				buf = binary.AppendUvarint(buf, uint64(a.Kind))
			default:
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
		return buf
	}
}
