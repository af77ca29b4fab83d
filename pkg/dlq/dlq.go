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
// that part's decoded bytes. For other kinds it is the log line. Kind "metric" entries hold a refused metric point under
// "metric" instead of data. Files are named dlq-<UTC time>-<host>-<pid>-<seq>.jsonl and rotate at
// MaxFileBytes. Every write is synced before the batch is acknowledged.
package dlq

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stage"
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

// MaxFileBytes is the size at which the archive starts a new file.
const MaxFileBytes = 64 << 20

// Archive appends dead letters to files in a directory.
type Archive struct {
	dir string
	now func() time.Time

	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	size int64
	seq  int
}

// Open prepares the directory.
func Open(dir string) (*Archive, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("dead-letter archive %s: %w", dir, err)
	}
	return &Archive{dir: dir, now: time.Now}, nil
}

// Dir is the archive's directory.
func (a *Archive) Dir() string { return a.dir }

// Handle implements stage.Handler: the dlq stage.
func (a *Archive) Handle(_ context.Context, in *record.Batch, _ stage.Output) error {
	return a.Write(in)
}

// Write appends every record of b and syncs the file.
func (a *Archive) Write(b *record.Batch) error {
	now := a.now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.rotateLocked(now); err != nil {
		return err
	}
	enc := json.NewEncoder(a.w)
	for i := range b.Records {
		r := &b.Records[i]
		reason := r.Reason
		if reason == "" {
			reason = b.Reason
		}
		if reason == "" {
			reason = "unknown"
		}
		e := Entry{V: 1, Time: now, Stage: b.Stage, Reason: reason, EventID: r.EventID, Timestamp: r.Timestamp, Kind: r.Kind.String(), Data: r.Message}
		if o := r.Origin; o != nil {
			e.Origin = Origin{Source: o.Source, RequestID: o.RequestID, SourceARN: o.SourceARN, Stream: o.Stream, Account: o.Account,
				Region: o.Region, LogGroup: o.LogGroup, LogStream: o.LogStream, Replay: o.Replay}
		}
		if err := enc.Encode(&e); err != nil {
			return fmt.Errorf("write dead letter: %w", err)
		}
	}
	for i := range b.Metrics {
		m := &b.Metrics[i]
		reason := b.Reason
		if reason == "" {
			reason = "unknown"
		}
		e := Entry{V: 1, Time: now, Stage: b.Stage, Reason: reason, Kind: "metric", Metric: &Metric{
			Name: m.Name, Type: m.Kind.String(), Timestamp: m.Timestamp, Interval: m.Interval, Value: m.Value,
			Values: m.Values, Tags: m.Tags, Host: m.Host, Unit: m.Unit,
		}}
		if err := enc.Encode(&e); err != nil {
			return fmt.Errorf("write dead letter: %w", err)
		}
	}
	if err := a.w.Flush(); err != nil {
		return fmt.Errorf("write dead letters: %w", err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync dead letters: %w", err)
	}
	if st, err := a.f.Stat(); err == nil {
		a.size = st.Size()
	}
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
	}
	a.seq++
	// The host name keeps workers sharing one directory (containers all
	// run as pid 1) out of each other's files.
	host, _ := os.Hostname()
	name := filepath.Join(a.dir, fmt.Sprintf("dlq-%s-%s-%d-%d.jsonl", now.Format("20060102T150405Z"), host, os.Getpid(), a.seq))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open dead-letter file: %w", err)
	}
	a.f, a.w, a.size = f, bufio.NewWriter(f), 0
	return nil
}

// Close closes the current file.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// Read calls fn for every entry in r, in order.
func Read(r io.Reader, fn func(Entry) error) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for n := 0; ; n++ {
		var e Entry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dead-letter entry %d: %w", n, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Files lists the archive files in dir, oldest first.
func Files(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "dlq-*.jsonl"))
}
