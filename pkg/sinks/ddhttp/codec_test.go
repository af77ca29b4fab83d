package ddhttp

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// FuzzCodecRoundTrip: whatever the body, each codec's output decodes back
// to it, with buffers reused from the pool in between.
func FuzzCodecRoundTrip(f *testing.F) {
	f.Add([]byte(`[{"message":"GET /pets 200"}]`))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte("ab"), 70_000))
	codecs := map[string]*Codec{}
	for _, kind := range []string{Gzip, Deflate, Zstd, None} {
		c, err := NewCodec(kind, 0, 2)
		if err != nil {
			f.Fatal(err)
		}
		codecs[kind] = c
	}
	zr, _ := zstd.NewReader(nil)
	f.Cleanup(zr.Close)
	f.Fuzz(func(t *testing.T, src []byte) {
		for kind, c := range codecs {
			body, buf, err := c.Encode(context.Background(), src)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			switch kind {
			case Gzip:
				r, err := gzip.NewReader(bytes.NewReader(body))
				if err == nil {
					got, err = io.ReadAll(r)
				}
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
			case Deflate:
				r, err := zlib.NewReader(bytes.NewReader(body))
				if err == nil {
					got, err = io.ReadAll(r)
				}
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
			case Zstd:
				if got, err = zr.DecodeAll(body, nil); err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
			case None:
				got = body
			}
			if !bytes.Equal(got, src) {
				t.Fatalf("%s: round trip of %d bytes gave %d", kind, len(src), len(got))
			}
			c.Free(buf)
		}
	})
}
