// Package dlq is the dead-letter archive: records that cannot go on are
// written, with the reason, where they came from and their raw bytes, to
// JSON-lines files that `gwpipe replay` reads back.
//
// Format (one JSON object per line, version 1):
//
//	{"v":1,"time":"2026-11-29T06:00:00.123Z","stage":"decode","reason":"gunzip: truncated gzip: unexpected EOF",
//	 "origin":{"source":"firehose","request_id":"…","source_arn":"…","stream":"…","account":"…","region":"…","log_group":"…","log_stream":"…"},
//	 "event_id":"…","timestamp":1700000000000,"kind":"raw","data":"<base64 of the record's bytes>"}
//
// For kind "raw" the data is base64 text that the decode stage reads again:
// the record exactly as the source delivered it (for Firehose, the base64
// text of the record), or, for a part of a record dead-lettered alone (an
// envelope, a metric-stream line, a line that is not text), the base64 of
// that part's decoded bytes. For other kinds it is the log line, or, in a
// batch dead-lettered whole before decode, the bytes a source handed over
// undecoded (gzip from SQS, a Firehose record an ingest worker decoded for
// a broker), which a replay decodes as the raw record they are. Kind
// "metric" entries hold a refused metric point under "metric" instead of
// data. Files are named dlq-<UTC time>-<host>-<pid>-<6-digit seq>.jsonl, so
// that names sort in writing order, and rotate at MaxFileBytes. Every write
// is synced before the batch is acknowledged.
//
// An archive directory may hold, beside its files, a replay's ledger
// (<file>.replayed, package replay) and, below it, the archives replays of
// it wrote their letters that failed again to (replay-<time>-<host>-<pid>/):
// `gwpipe replay --dlq-dir DIR` reads them all, and only the letters the
// ledgers do not hold settled.
package dlq

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
)

// Origin is where a dead letter came from.
type Origin struct {
	Source    string `json:"source,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	SourceARN string `json:"source_arn,omitempty"`
	Stream    string `json:"stream,omitempty"`
	Account   string `json:"account,omitempty"`
	Region    string `json:"region,omitempty"`
	LogGroup  string `json:"log_group,omitempty"`
	LogStream string `json:"log_stream,omitempty"`
	Replay    bool   `json:"replay,omitempty"`
}

// Entry is one line of the archive.
type Entry struct {
	V         int       `json:"v"`
	Time      time.Time `json:"time"`
	Stage     string    `json:"stage"`
	Reason    string    `json:"reason"`
	Origin    Origin    `json:"origin"`
	EventID   string    `json:"event_id,omitempty"`
	Timestamp int64     `json:"timestamp,omitempty"`
	Kind      string    `json:"kind"`
	Data      []byte    `json:"data,omitempty"`
	// Metric is set for kind "metric": a metric point the API refused.
	Metric *Metric `json:"metric,omitempty"`
}

// Metric is a dead-lettered metric point.
type Metric struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	Timestamp int64     `json:"timestamp"`
	Interval  int64     `json:"interval,omitempty"`
	Value     float64   `json:"value"`
	Values    []float64 `json:"values,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Host      string    `json:"host,omitempty"`
	Unit      string    `json:"unit,omitempty"`
}

// OriginOf is the archive's form of a record's origin (zero for nil).
func OriginOf(o *record.Origin) Origin {
	if o == nil {
		return Origin{}
	}
	return Origin{Source: o.Source, RequestID: o.RequestID, SourceARN: o.SourceARN, Stream: o.Stream, Account: o.Account,
		Region: o.Region, LogGroup: o.LogGroup, LogStream: o.LogStream, Replay: o.Replay}
}

// MetricOf is the archive's form of a metric point.
func MetricOf(m *record.Metric) *Metric {
	return &Metric{Name: m.Name, Type: m.Kind.String(), Timestamp: m.Timestamp, Interval: m.Interval, Value: m.Value,
		Values: m.Values, Tags: m.Tags, Host: m.Host, Unit: m.Unit}
}

// MaxFileBytes is the size at which the archive starts a new file.
const MaxFileBytes = 64 << 20

// File is what the archive appends to (an *os.File); tests inject one that
// fails like a full disk.
type File interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Option configures an Archive.
type Option func(*Archive)

// WithOpenFile replaces how the archive opens a file for appending
// (os.OpenFile with O_CREATE|O_WRONLY|O_APPEND).
func WithOpenFile(open func(name string) (File, error)) Option {
	return func(a *Archive) { a.open = open }
}

// Archive appends dead letters to files in a directory.
//
// A write that fails (a full disk, an I/O error) leaves the file as it was
// before the write, once the archive recovers: the batch is refused (its
// source will send it again), and the next write first reopens the file
// and cuts it back to the end of the last entry that was written and
// synced, or, if that fails, starts a new file. An entry is written whole
// with its newline and synced before Write returns; a crash in the middle
// of a write leaves at most one partial line, at the end of a file that is
// never appended to again, which readers skip and count.
type Archive struct {
	dir  string
	now  func() time.Time
	open func(name string) (File, error)

	mu     sync.Mutex
	f      File
	name   string
	size   int64 // end of the last entry written and synced
	broken error // the last write to f failed: f may end with a partial entry
	seq    int
	buf    bytes.Buffer

	recoveries atomic.Int64
}

// Open prepares the directory.
func Open(dir string, opts ...Option) (*Archive, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("dead-letter archive %s: %w", dir, err)
	}
	a := &Archive{dir: dir, now: time.Now, open: openFile}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

func openFile(name string) (File, error) {
	return os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
}

// Dir is the archive's directory.
func (a *Archive) Dir() string { return a.dir }

// Location is where the archive is: its directory.
func (a *Archive) Location() string { return a.dir }

// Recoveries counts writes that followed a failed one and had to repair
// the file first.
func (a *Archive) Recoveries() int64 { return a.recoveries.Load() }

// Handle implements stage.Handler: the dlq stage.
func (a *Archive) Handle(_ context.Context, in *record.Batch, _ stage.Output) error {
	return a.Write(in)
}

// Write appends every record of b and syncs the file. On error nothing of
// b counts as archived: the caller must not acknowledge it.
func (a *Archive) Write(b *record.Batch) error {
	now := a.now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	// The whole batch is encoded before anything is written, so that an
	// encoding error writes nothing and a write error is the only way a
	// file can end with part of an entry.
	a.buf.Reset()
	if err := encode(&a.buf, b, now); err != nil {
		return err
	}
	if a.buf.Len() == 0 {
		return nil
	}
	if err := a.recoverLocked(now); err != nil {
		return err
	}
	if err := a.rotateLocked(now); err != nil {
		return err
	}
	n, err := a.f.Write(a.buf.Bytes())
	if err == nil && n < a.buf.Len() {
		err = io.ErrShortWrite
	}
	if err != nil {
		a.broken = err
		return fmt.Errorf("write dead letters to %s: %w", a.name, err)
	}
	if err := a.f.Sync(); err != nil {
		// What reached the disk is unknown: the next write cuts it.
		a.broken = err
		return fmt.Errorf("sync dead letters to %s: %w", a.name, err)
	}
	a.size += int64(n)
	return nil
}

// encode appends b's entries to buf, one JSON line each.
func encode(buf *bytes.Buffer, b *record.Batch, now time.Time) error {
	enc := json.NewEncoder(buf)
	for i := range b.Records {
		r := &b.Records[i]
		reason := r.Reason
		if reason == "" {
			reason = b.Reason
		}
		if reason == "" {
			reason = "unknown"
		}
		e := Entry{V: 1, Time: now, Stage: b.Stage, Reason: reason, EventID: r.EventID, Timestamp: r.Timestamp, Kind: r.Kind.String(), Data: r.Message,
			Origin: OriginOf(r.Origin)}
		if err := enc.Encode(&e); err != nil {
			return fmt.Errorf("encode dead letter: %w", err)
		}
	}
	for i := range b.Metrics {
		m := &b.Metrics[i]
		reason := b.Reason
		if reason == "" {
			reason = "unknown"
		}
		e := Entry{V: 1, Time: now, Stage: b.Stage, Reason: reason, Kind: "metric", Metric: MetricOf(m)}
		if err := enc.Encode(&e); err != nil {
			return fmt.Errorf("encode dead letter: %w", err)
		}
	}
	return nil
}

// recoverLocked repairs the file after a failed write: reopened (the
// handle that failed is not trusted again) and cut back to the end of the
// last entry that was synced. If that cannot be done, the file is left as
// it is — its last line may be partial, and readers skip it — and a new
// file is started.
func (a *Archive) recoverLocked(now time.Time) error {
	if a.broken == nil {
		return nil
	}
	a.recoveries.Add(1)
	if a.f != nil {
		_ = a.f.Close()
		a.f = nil
	}
	f, err := a.open(a.name)
	if err == nil {
		if err = f.Truncate(a.size); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		// Start afresh in a new file. One that holds no whole entry is
		// only in the way: removing it frees what the failed write took.
		if a.size == 0 {
			_ = os.Remove(a.name)
		}
		a.broken = nil
		return a.newFileLocked(now)
	}
	a.f, a.broken = f, nil
	return nil
}

func (a *Archive) rotateLocked(now time.Time) error {
	if a.f != nil && a.size < MaxFileBytes {
		return nil
	}
	if a.f != nil {
		if err := a.f.Close(); err != nil {
			return fmt.Errorf("close dead-letter file: %w", err)
		}
		a.f = nil
	}
	return a.newFileLocked(now)
}

func (a *Archive) newFileLocked(now time.Time) error {
	a.seq++
	// The host name keeps workers sharing one directory (containers all
	// run as pid 1) out of each other's files.
	host, _ := os.Hostname()
	name := filepath.Join(a.dir, fmt.Sprintf("dlq-%s-%s-%d-%06d.jsonl", now.Format("20060102T150405Z"), host, os.Getpid(), a.seq))
	f, err := a.open(name)
	if err != nil {
		return fmt.Errorf("open dead-letter file: %w", err)
	}
	a.f, a.name, a.size = f, name, 0
	return nil
}

// Close closes the current file, cutting off what a failed last write may
// have left (that batch was refused: its source sends it again).
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	if a.broken != nil {
		if err := a.recoverLocked(a.now().UTC()); err != nil {
			return err
		}
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// ReadStats is what Read went through.
type ReadStats struct {
	Entries int
	// Partial counts lines cut short by a write that failed (a full disk,
	// a crash): a last line without its newline. They are skipped: the
	// write was refused and its batch sent again by its source.
	Partial int
}

// Read calls fn for every entry in r, in order, skipping and counting a
// partial last line (see ReadStats.Partial).
func Read(r io.Reader, fn func(Entry) error) (ReadStats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var st ReadStats
	for n := 0; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(bytes.TrimSpace(line)) > 0 {
				st.Partial++
			}
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("read dead letters: %w", err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return st, fmt.Errorf("dead-letter entry %d: %w", n, err)
		}
		st.Entries++
		if err := fn(e); err != nil {
			return st, err
		}
	}
}

// Files lists the archive files in dir, oldest first.
func Files(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "dlq-*.jsonl"))
}
