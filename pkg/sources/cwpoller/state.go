package cwpoller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Key names one metric of one target: the unit of the poller's state.
type Key struct {
	Account, Region, Namespace, Metric string
	// Dimensions, sorted by name: "ApiName=petstore,Stage=prod".
	Dimensions string
}

// String is the key as a FileState stores it.
func (k Key) String() string {
	return strings.Join([]string{k.Account, k.Region, k.Namespace, k.Metric, k.Dimensions}, "|")
}

// State remembers, per metric, the end of the last period fetched and
// emitted, so that no period is fetched twice. The poller reads it before
// a poll and advances it after the points were emitted.
type State interface {
	// Last returns the end of the last period fetched for k.
	Last(k Key) (end time.Time, ok bool)
	// Advance records that every period before end was fetched for keys.
	// When it returns nil the record must survive a restart.
	Advance(ctx context.Context, keys []Key, end time.Time) error
}

// MemoryState is a State that lasts as long as the process.
type MemoryState struct {
	mu   sync.Mutex
	last map[string]int64 // Key.String() → end, Unix seconds
}

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState { return &MemoryState{last: make(map[string]int64)} }

// Last implements State.
func (s *MemoryState) Last(k Key) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.last[k.String()]
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(v, 0), true
}

// Advance implements State.
func (s *MemoryState) Advance(_ context.Context, keys []Key, end time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(keys, end)
	return nil
}

func (s *MemoryState) advance(keys []Key, end time.Time) {
	e := end.Unix()
	for _, k := range keys {
		if ks := k.String(); s.last[ks] < e {
			s.last[ks] = e
		}
	}
}

// FileState is a State kept in a JSON file, rewritten (to a temporary file,
// synced, then renamed over the old one) by every Advance, so that a crash
// leaves the old state or the new one, never half of either.
type FileState struct {
	MemoryState
	path string
	// MaxAge drops entries whose end is older than this when the file is
	// written: a metric that stopped reporting would otherwise stay
	// forever (default 24h; the poller never looks back more than 55m).
	MaxAge time.Duration
}

type stateFile struct {
	Version int              `json:"version"`
	Periods map[string]int64 `json:"periods"` // key → end of the last period fetched, Unix seconds
}

// NewFileState opens the state at path, empty if the file does not exist.
func NewFileState(path string) (*FileState, error) {
	s := &FileState{MemoryState: *NewMemoryState(), path: path, MaxAge: 24 * time.Hour}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cwpoller: read state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("cwpoller: state %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("cwpoller: state %s: unknown version %d", path, f.Version)
	}
	for k, v := range f.Periods {
		s.last[k] = v
	}
	return s, nil
}

// Advance implements State: the file is written before it returns.
func (s *FileState) Advance(ctx context.Context, keys []Key, end time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Memory first: even if the file cannot be written, this process does
	// not fetch the periods again.
	s.advance(keys, end)
	cutoff := end.Add(-s.MaxAge).Unix()
	f := stateFile{Version: 1, Periods: make(map[string]int64, len(s.last))}
	for k, v := range s.last {
		if v < cutoff {
			delete(s.last, k)
			continue
		}
		f.Periods[k] = v
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("cwpoller: encode state: %w", err)
	}
	if err := writeAtomic(s.path, b); err != nil {
		return fmt.Errorf("cwpoller: write state: %w", err)
	}
	return nil
}

// Keys returns the keys the state holds, sorted, for inspection.
func (s *MemoryState) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.last))
	for k := range s.last {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
