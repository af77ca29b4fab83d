package fakeintake

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// recorder appends accepted items to one JSONL file per endpoint.
type recorder struct {
	files map[Endpoint]*jsonlFile
}

// jsonlFile is written one payload per Write call, under its mutex, so lines
// of concurrent payloads never interleave and every line is on disk (in the
// page cache) before the client gets its 202.
type jsonlFile struct {
	mu sync.Mutex
	f  *os.File
}

var recordFiles = map[Endpoint]string{
	EndpointLogs:               "logs.jsonl",
	EndpointSeries:             "series.jsonl",
	EndpointDistributionPoints: "distribution_points.jsonl",
}

func openRecorder(dir string) (*recorder, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	rec := &recorder{files: make(map[Endpoint]*jsonlFile, len(recordFiles))}
	for ep, name := range recordFiles {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("open %s: %w", path, err), rec.close())
		}
		rec.files[ep] = &jsonlFile{f: f}
	}
	return rec, nil
}

func (rec *recorder) write(ep Endpoint, lines []byte) error {
	jf := rec.files[ep]
	jf.mu.Lock()
	defer jf.mu.Unlock()
	if _, err := jf.f.Write(lines); err != nil {
		return fmt.Errorf("append to %s: %w", jf.f.Name(), err)
	}
	return nil
}

func (rec *recorder) close() error {
	var errs []error
	for _, jf := range rec.files {
		jf.mu.Lock()
		if err := jf.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", jf.f.Name(), err))
		}
		jf.mu.Unlock()
	}
	return errors.Join(errs...)
}

// record appends an accepted batch to the JSONL file of ep, if recording to
// disk. It runs before the batch is committed to memory and answered.
func (s *Server) record(ep Endpoint, b *batch) error {
	if s.out == nil {
		return nil
	}
	lines, err := b.jsonl()
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return nil
	}
	return s.out.write(ep, lines)
}

// jsonl encodes the batch one item per line: logs as accepted, points as
// SeriesPoint or DistributionPoint JSON.
func (b *batch) jsonl() ([]byte, error) {
	var out []byte
	for _, e := range b.logs {
		out = append(out, e.raw...)
		out = append(out, '\n')
	}
	for i := range b.series {
		line, err := json.Marshal(&b.series[i])
		if err != nil {
			return nil, fmt.Errorf("encode series point: %w", err)
		}
		out = append(append(out, line...), '\n')
	}
	for i := range b.dists {
		line, err := json.Marshal(&b.dists[i])
		if err != nil {
			return nil, fmt.Errorf("encode distribution point: %w", err)
		}
		out = append(append(out, line...), '\n')
	}
	return out, nil
}

// ring keeps the newest max items pushed.
type ring[T any] struct {
	buf  []T
	next int // once buf is full: index of the oldest item, overwritten next
	max  int
}

// push appends items, evicting the oldest beyond max, and returns how many
// items (old or new) are no longer kept.
func (r *ring[T]) push(items []T) (evicted int64) {
	if room := r.max - len(r.buf); room > 0 {
		n := min(room, len(items))
		r.buf = appendCapped(r.buf, items[:n], r.max)
		items = items[n:]
	}
	if len(items) > r.max {
		evicted += int64(len(items) - r.max)
		items = items[len(items)-r.max:]
	}
	for len(items) > 0 {
		n := copy(r.buf[r.next:], items)
		items = items[n:]
		r.next = (r.next + n) % r.max
		evicted += int64(n)
	}
	return evicted
}

// appendCapped appends like append but never grows the capacity past
// limit, so a full ring costs exactly Keep items of memory.
func appendCapped[T any](buf, items []T, limit int) []T {
	if need := len(buf) + len(items); need > cap(buf) {
		grown := make([]T, len(buf), min(max(2*cap(buf), need, 1024), limit))
		copy(grown, buf)
		buf = grown
	}
	return append(buf, items...)
}

// snapshot returns the kept items, oldest first, in a new slice.
func (r *ring[T]) snapshot() []T {
	out := make([]T, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

func (r *ring[T]) reset() {
	r.buf, r.next = nil, 0
}
