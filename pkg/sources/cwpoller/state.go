package cwpoller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/atomicfile"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
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
	if err := atomicfile.Write(s.path, b); err != nil {
		return fmt.Errorf("cwpoller: write state: %w", err)
	}
	return nil
}

// Keys returns the keys the state holds, sorted, for inspection.
func (s *MemoryState) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.last))
}

// SharedState is a State kept where every replica of the poller reads it:
// Refresh reloads a target's part before each poll of it, so that a
// replica taking over a target starts where the last holder stopped.
type SharedState interface {
	State
	Refresh(ctx context.Context, t Target) error
}

// StoreState is the poller's state in a compare-and-swap store (package
// cas: S3 with conditional writes, a NATS key-value bucket): one document
// per target, <account>-<region>.json, of the same format as a FileState.
// It is read before every poll of the target (Refresh) and written after
// every emit, only in the version read: a replica that lost the target's
// lease and still polls cannot overwrite what the new holder recorded —
// its Advance fails (cas.ErrConflict) and the new holder's state stands.
type StoreState struct {
	store cas.Store
	// MaxAge drops entries whose end is older than this when a document is
	// written (default 24h), as FileState does.
	MaxAge time.Duration

	mu       sync.Mutex
	last     map[Target]map[string]int64 // Key.String() → end, Unix seconds
	versions map[Target]string
}

// NewStoreState returns the state kept in store.
func NewStoreState(store cas.Store) *StoreState {
	return &StoreState{store: store, MaxAge: 24 * time.Hour, last: map[Target]map[string]int64{}, versions: map[Target]string{}}
}

// StateKey is the key of a target's document.
func StateKey(t Target) string { return t.Account + "-" + t.Region + ".json" }

// Refresh implements SharedState.
func (s *StoreState) Refresh(ctx context.Context, t Target) error {
	data, version, err := s.store.Get(ctx, StateKey(t))
	periods := map[string]int64{}
	switch {
	case errors.Is(err, cas.ErrNotFound):
		version = ""
	case err != nil:
		return fmt.Errorf("cwpoller: read state of %s: %w", t, err)
	default:
		var f stateFile
		if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
			return fmt.Errorf("cwpoller: state %s%s is not a poller state of this build (version 1)", s.store.Name(), StateKey(t))
		}
		periods = f.Periods
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[t], s.versions[t] = periods, version
	return nil
}

// Last implements State.
func (s *StoreState) Last(k Key) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.last[Target{k.Account, k.Region}][k.String()]
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(v, 0), true
}

// Advance implements State: each target's document is written before it
// returns, conditionally on the version last read or written.
func (s *StoreState) Advance(ctx context.Context, keys []Key, end time.Time) error {
	byTarget := map[Target][]Key{}
	for _, k := range keys {
		t := Target{k.Account, k.Region}
		byTarget[t] = append(byTarget[t], k)
	}
	var errs []error
	for t, ks := range byTarget {
		if err := s.advance(ctx, t, ks, end); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// advance writes one target's document. The lock is not held across the
// write: a target is polled by one goroutine at a time, and the others'
// Last must not wait for S3.
func (s *StoreState) advance(ctx context.Context, t Target, keys []Key, end time.Time) error {
	s.mu.Lock()
	periods := maps.Clone(s.last[t])
	prev := s.versions[t]
	s.mu.Unlock()
	if periods == nil {
		periods = map[string]int64{}
	}
	e, cutoff := end.Unix(), end.Add(-s.MaxAge).Unix()
	for _, k := range keys {
		if ks := k.String(); periods[ks] < e {
			periods[ks] = e
		}
	}
	maps.DeleteFunc(periods, func(_ string, v int64) bool { return v < cutoff })
	data, err := json.MarshalIndent(stateFile{Version: 1, Periods: periods}, "", " ")
	if err != nil {
		return fmt.Errorf("cwpoller: encode state: %w", err)
	}
	var version string
	if prev == "" {
		version, err = s.store.Create(ctx, StateKey(t), data)
	} else {
		version, err = s.store.Update(ctx, StateKey(t), data, prev)
	}
	if err != nil {
		// Memory is left as it was: the next poll reads the document again.
		return fmt.Errorf("cwpoller: write state of %s: %w", t, err)
	}
	s.mu.Lock()
	s.last[t], s.versions[t] = periods, version
	s.mu.Unlock()
	return nil
}
