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
	decode := map[string]func([]byte) ([]byte, error){
		Gzip:    func(b []byte) ([]byte, error) { return readAll(gzip.NewReader(bytes.NewReader(b))) },
		Deflate: func(b []byte) ([]byte, error) { return readAll(zlib.NewReader(bytes.NewReader(b))) },
		Zstd:    func(b []byte) ([]byte, error) { return zr.DecodeAll(b, nil) },
		None:    func(b []byte) ([]byte, error) { return b, nil },
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		for kind, c := range codecs {
			body, buf, err := c.Encode(context.Background(), src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decode[kind](body)
			if err != nil || !bytes.Equal(got, src) {
				t.Fatalf("%s: round trip of %d bytes gave %d (%v)", kind, len(src), len(got), err)
			}
			c.Free(buf)
		}
	})
}

func readAll[R io.Reader](r R, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
