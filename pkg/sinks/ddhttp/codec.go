package ddhttp

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Compressions a Codec knows, by their configuration names.
const (
	Gzip    = "gzip"
	Zstd    = "zstd"
	Deflate = "deflate" // zlib (RFC 1950), what Datadog's clients send as deflate
	None    = "none"
)

// Buf is a pooled byte buffer (Codec.Buf, Codec.Free).
type Buf struct{ B []byte }

// Codec compresses request bodies for one Content-Encoding, with pooled
// encoders and buffers, compressing at most concurrency bodies at once so
// that the CPU and memory it takes stay bounded however many callers
// submit. It is safe for concurrent use.
type Codec struct {
	kind string
	gz   sync.Pool // *gzip.Writer
	zl   sync.Pool // *zlib.Writer
	zs   *zstd.Encoder
	sem  chan struct{}
	bufs sync.Pool // *Buf
}

// maxPooledBuf keeps rare huge buffers out of the pool.
const maxPooledBuf = 8 << 20

// NewCodec returns a codec for kind (Gzip, Zstd, Deflate or None) at level:
// 0 is the encoder's own default, else gzip and deflate take 1–9, zstd
// 1–22 (mapped to the encoder's nearest level).
func NewCodec(kind string, level, concurrency int) (*Codec, error) {
	c := &Codec{kind: kind, sem: make(chan struct{}, max(concurrency, 1))}
	c.bufs.New = func() any { return &Buf{B: make([]byte, 0, 64<<10)} }
	switch kind {
	case Gzip, Deflate:
		if level < 0 || level > 9 {
			return nil, fmt.Errorf("%s level %d: must be 1..9", kind, level)
		}
		if level == 0 {
			level = flate.DefaultCompression // gzip and zlib wrap flate
		}
		if kind == Gzip {
			c.gz.New = func() any { w, _ := gzip.NewWriterLevel(nil, level); return w }
		} else {
			c.zl.New = func() any { w, _ := zlib.NewWriterLevel(nil, level); return w }
		}
	case Zstd:
		zl := zstd.SpeedDefault
		if level < 0 || level > 22 {
			return nil, fmt.Errorf("zstd level %d: must be 1..22", level)
		} else if level > 0 {
			zl = zstd.EncoderLevelFromZstd(level)
		}
		zs, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zl), zstd.WithEncoderConcurrency(cap(c.sem)))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		c.zs = zs
	case None:
	default:
		return nil, fmt.Errorf("compression %q: must be one of gzip, zstd, deflate, none", kind)
	}
	return c, nil
}

// Encoding is the Content-Encoding the codec's bodies carry; "" for none.
func (c *Codec) Encoding() string {
	if c.kind == None {
		return ""
	}
	return c.kind
}

// Buf returns an empty pooled buffer; give it back with Free.
func (c *Codec) Buf() *Buf { return c.bufs.Get().(*Buf) }

// Free gives b back to the pool; b may be nil.
func (c *Codec) Free(b *Buf) {
	if b == nil || cap(b.B) > maxPooledBuf {
		return
	}
	b.B = b.B[:0]
	c.bufs.Put(b)
}

// Encode returns the body to send for src: src itself for none, else src
// compressed into a pooled buffer, returned too for Free. It waits for one
// of the codec's slots, or until ctx ends (then ctx's error).
func (c *Codec) Encode(ctx context.Context, src []byte) (body []byte, buf *Buf, err error) {
	if c.kind == None {
		return src, nil, nil
	}
	return c.encode(ctx, [][]byte{src})
}

// EncodeSegs is Encode of the concatenation of segs, n bytes in all. gzip
// and deflate take the pieces in turn, so the body is never built whole;
// none and zstd, which need it whole, have it built in a pooled buffer.
func (c *Codec) EncodeSegs(ctx context.Context, segs [][]byte, n int) (body []byte, buf *Buf, err error) {
	if c.kind == Gzip || c.kind == Deflate {
		return c.encode(ctx, segs)
	}
	whole := c.Buf()
	whole.B = slices.Grow(whole.B[:0], n)
	for _, s := range segs {
		whole.B = append(whole.B, s...)
	}
	if c.kind == None {
		return whole.B, whole, nil
	}
	body, buf, err = c.encode(ctx, [][]byte{whole.B})
	c.Free(whole)
	return body, buf, err
}

// encode compresses the concatenation of segs (zstd: one piece) into a
// pooled buffer, in one of the codec's slots.
func (c *Codec) encode(ctx context.Context, segs [][]byte) (body []byte, buf *Buf, err error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	buf = c.Buf()
	switch c.kind {
	case Zstd:
		buf.B = c.zs.EncodeAll(segs[0], buf.B[:0])
	case Gzip:
		w := c.gz.Get().(*gzip.Writer)
		buf.B = compress(w, buf.B[:0], segs...)
		c.gz.Put(w)
	case Deflate:
		w := c.zl.Get().(*zlib.Writer)
		buf.B = compress(w, buf.B[:0], segs...)
		c.zl.Put(w)
	}
	return buf.B, buf, nil
}

// resetWriter is a gzip or zlib writer.
type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// compress appends the concatenation of srcs compressed by w to dst.
func compress(w resetWriter, dst []byte, srcs ...[]byte) []byte {
	aw := appendWriter{b: dst}
	w.Reset(&aw)
	for _, src := range srcs {
		_, _ = w.Write(src) // appendWriter never fails
	}
	_ = w.Close()
	w.Reset(io.Discard) // keep no reference to the buffer
	return aw.b
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Close releases the zstd encoder's goroutines.
func (c *Codec) Close() {
	if c.zs != nil {
		_ = c.zs.Close()
	}
}
