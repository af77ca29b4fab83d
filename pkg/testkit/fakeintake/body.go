package fakeintake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// errTooLarge marks a body over an endpoint's limit (413).
var errTooLarge = errors.New("payload too large")

// encoding is a supported Content-Encoding.
type encoding uint8

const (
	encIdentity encoding = iota
	encGzip
	encDeflate
	encZstd
)

var encodingNames = [...]string{"identity", "gzip", "deflate", "zstd"}

func (e encoding) String() string { return encodingNames[e] }

// parseEncoding maps a Content-Encoding header to a supported encoding.
// Content codings are case-insensitive; a list of codings is not supported,
// as none of Datadog's clients send one.
func parseEncoding(header string, zstd1 bool) (encoding, bool) {
	switch strings.ToLower(strings.TrimSpace(header)) {
	case "", "identity":
		return encIdentity, true
	case "gzip":
		return encGzip, true
	case "deflate":
		return encDeflate, true
	case "zstd":
		return encZstd, true
	case "zstd1":
		return encZstd, zstd1
	}
	return 0, false
}

// maxPooledBuffer keeps rare huge buffers (distribution payloads) out of the
// pool, so one big request does not pin its memory for the process lifetime.
const maxPooledBuffer = 8 << 20

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufferPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	bufferPool.Put(b)
}

// readBody reads the request body into dst, failing with errTooLarge past
// limit bytes. A declared Content-Length over the limit is refused unread.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, dst *bytes.Buffer) error {
	if r.ContentLength > limit {
		return fmt.Errorf("%w: Content-Length %d exceeds %d bytes", errTooLarge, r.ContentLength, limit)
	}
	if r.ContentLength > 0 {
		dst.Grow(int(r.ContentLength))
	}
	_, err := dst.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return fmt.Errorf("%w: body exceeds %d bytes", errTooLarge, limit)
	}
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// drain reads and discards the body of a request answered before its
// payload was needed. It keeps the connection reusable and spares a client
// still sending a reset instead of the answer; limit bounds the work.
func drain(w http.ResponseWriter, r *http.Request, limit int64) {
	// Any error only means the body was cut short, which the answer already
	// covers.
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, limit))
}

// decompress returns wire decoded according to enc, failing with errTooLarge
// as soon as the output would exceed limit bytes: it never holds more than
// limit+1 decoded bytes (plus buffer growth slack), so a bomb is cheap to
// refuse. For identity it returns wire itself; otherwise the result aliases
// dst.
func decompress(enc encoding, wire []byte, limit int64, dst *bytes.Buffer) ([]byte, error) {
	if enc == encIdentity {
		if int64(len(wire)) > limit {
			return nil, fmt.Errorf("%w: body exceeds %d bytes", errTooLarge, limit)
		}
		return wire, nil
	}
	dec, release, err := openDecoder(enc, wire)
	if err != nil {
		return nil, fmt.Errorf("decode %s body: %w", enc, err)
	}
	defer release()
	// Typical log payloads compress 5-10x; start there to skip early regrowth.
	dst.Grow(int(min(limit+1, int64(len(wire))*8)))
	n, err := dst.ReadFrom(io.LimitReader(dec, limit+1))
	if err != nil {
		return nil, fmt.Errorf("decode %s body: %w", enc, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: decompressed body exceeds %d bytes", errTooLarge, limit)
	}
	return dst.Bytes(), nil
}

// Decoders are pooled: a fresh flate or zstd decoder allocates tens of
// kilobytes of tables, which would dominate small requests.
var (
	gzipPool  sync.Pool // *gzip.Reader
	zlibPool  sync.Pool // io.ReadCloser implementing zlib.Resetter
	flatePool sync.Pool // io.ReadCloser implementing flate.Resetter
	zstdPool  = sync.Pool{New: newZstdDecoder}
)

// zstdMaxWindow refuses frames asking for a larger window than any sane
// client uses (the zstd CLI's largest non-long window is 8 MiB), which would
// otherwise let a tiny frame make the decoder allocate up to 512 MiB.
const zstdMaxWindow = 16 << 20

func newZstdDecoder() any {
	// Concurrency 1 decodes synchronously, without goroutines, so a pooled
	// decoder dropped by the GC leaks nothing. MaxMemory also caps the
	// in-memory decode path, should one ever be taken.
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(zstdMaxWindow),
		zstd.WithDecoderMaxMemory(MaxDistributionDecompressedBytes))
	if err != nil {
		// Only invalid options fail, and these are constants.
		panic(fmt.Sprintf("fakeintake: create zstd decoder: %v", err))
	}
	return d
}

// openDecoder returns a reader decoding wire and a function returning the
// decoder to its pool.
func openDecoder(enc encoding, wire []byte) (io.Reader, func(), error) {
	src := bytes.NewReader(wire)
	switch enc {
	case encGzip:
		zr, _ := gzipPool.Get().(*gzip.Reader)
		if zr == nil {
			zr = new(gzip.Reader)
		}
		if err := zr.Reset(src); err != nil {
			gzipPool.Put(zr)
			return nil, nil, err
		}
		return zr, func() { gzipPool.Put(zr) }, nil
	case encDeflate:
		if hasZlibHeader(wire) {
			return openResettable(&zlibPool, src, zlib.NewReader, func(rc io.ReadCloser) error {
				return rc.(zlib.Resetter).Reset(src, nil)
			})
		}
		return openResettable(&flatePool, src,
			func(r io.Reader) (io.ReadCloser, error) { return flate.NewReader(r), nil },
			func(rc io.ReadCloser) error { return rc.(flate.Resetter).Reset(src, nil) })
	case encZstd:
		d := zstdPool.Get().(*zstd.Decoder)
		// A *bytes.Reader is streamed: the decoder only takes its unbounded
		// in-memory path for inputs that also have a Bytes method.
		if err := d.Reset(src); err != nil {
			zstdPool.Put(d)
			return nil, nil, err
		}
		return d, func() { zstdPool.Put(d) }, nil
	}
	return src, func() {}, nil
}

// openResettable takes a decoder from pool (resetting it onto src) or makes
// a new one.
func openResettable(pool *sync.Pool, src io.Reader,
	create func(io.Reader) (io.ReadCloser, error), reset func(io.ReadCloser) error,
) (io.Reader, func(), error) {
	rc, _ := pool.Get().(io.ReadCloser)
	if rc == nil {
		var err error
		if rc, err = create(src); err != nil {
			return nil, nil, err
		}
	} else if err := reset(rc); err != nil {
		pool.Put(rc)
		return nil, nil, err
	}
	return rc, func() { pool.Put(rc) }, nil
}

// hasZlibHeader reports whether b starts with a zlib (RFC 1950) header:
// method 8 (deflate), window ≤ 32 KiB, and a header checksum divisible by
// 31. Clients disagree on whether "deflate" means zlib or raw deflate, so
// both are accepted, as HTTP servers commonly do.
func hasZlibHeader(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	cmf, flg := b[0], b[1]
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}
