package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/atomicfile"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
)

// LedgerSuffix ends the name of a ledger's marker: <object>.replayed.
const LedgerSuffix = ".replayed"

const markerVersion = 1

// A Ledger keeps, beside an archive, one marker per object saying which of
// its entries a replay has settled: delivered, or dead-lettered into
// another archive. Replaying the archive again reads only the entries not
// settled, so that running the same replay twice sends nothing twice, and
// running it again after a failure sends what is left, once.
//
// A ledger never rewrites the archive's objects, so it works where they
// cannot be rewritten: a local directory holds <file>.replayed files
// (DirLedger); an archive in S3 holds <key>.replayed objects beside its
// objects (StoreLedger: Load is a GetObject, Save a conditional
// PutObject).
type Ledger interface {
	// Load returns key's marker, or nil when there is none.
	Load(ctx context.Context, key string) (*Marker, error)
	// Save replaces key's marker, atomically.
	Save(ctx context.Context, key string, m *Marker) error
}

// Marker is what a Ledger holds for one object.
type Marker struct {
	Version int `json:"version"`
	// Size and ETag are the object's when it was read; a marker whose
	// ETag no longer matches is ignored (the object was rewritten). A
	// file that grew since (an archive still written to) is read again
	// for the entries it did not have.
	Size int64  `json:"size"`
	ETag string `json:"etag,omitempty"`
	// Settled are the entries settled, as sorted disjoint [from, to)
	// ranges of entry numbers (s3obj.Chunk.Items).
	Settled [][2]int64 `json:"settled"`
	// Complete: the object was read to its end (Size bytes) and every
	// entry that can be sent is settled.
	Complete bool      `json:"complete,omitempty"`
	Updated  time.Time `json:"updated"`
}

// DirLedger is the ledger of an archive directory: <dir>/<key>.replayed,
// each written atomically.
func DirLedger(dir string) Ledger { return dirLedger{dir: dir} }

type dirLedger struct{ dir string }

func (l dirLedger) path(key string) string {
	return filepath.Join(l.dir, filepath.FromSlash(key)+LedgerSuffix)
}

func (l dirLedger) Load(_ context.Context, key string) (*Marker, error) {
	data, err := os.ReadFile(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay ledger: %w", err)
	}
	return decodeMarker(l.path(key), key, data)
}

func (l dirLedger) Save(_ context.Context, key string, m *Marker) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(l.path(key), append(data, '\n')); err != nil {
		return fmt.Errorf("replay ledger: %w", err)
	}
	return nil
}

// StoreLedger is the ledger of an archive in S3 (or any cas.Store whose
// keys are the archive's object keys: cas.NewS3 of the bucket with no
// prefix): <key>.replayed objects, each written only with a conditional
// write on the version this replay read (or created, If-None-Match, when
// there was none). Two replays of one archive cannot both mark its
// letters: the second's write fails instead of overwriting the first's
// marks (ErrLedgerConflict), and its letters stay to be replayed again.
func StoreLedger(s cas.Store) Ledger { return &storeLedger{s: s, versions: map[string]string{}} }

// ErrLedgerConflict is a marker that another replay wrote since this one
// read it.
var ErrLedgerConflict = errors.New("another replay of this archive wrote its ledger meanwhile: run one replay of an archive at a time")

type storeLedger struct {
	s        cas.Store
	mu       sync.Mutex
	versions map[string]string // the marker's version this replay read or wrote
}

func (l *storeLedger) Load(ctx context.Context, key string) (*Marker, error) {
	data, version, err := l.s.Get(ctx, key+LedgerSuffix)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay ledger: %w", err)
	}
	m, err := decodeMarker(l.s.Name()+key+LedgerSuffix, key, data)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.versions[key] = version
	l.mu.Unlock()
	return m, nil
}

func (l *storeLedger) Save(ctx context.Context, key string, m *Marker) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var version string
	if v := l.versions[key]; v == "" {
		version, err = l.s.Create(ctx, key+LedgerSuffix, append(data, '\n'))
	} else {
		version, err = l.s.Update(ctx, key+LedgerSuffix, append(data, '\n'), v)
	}
	if errors.Is(err, cas.ErrConflict) {
		return fmt.Errorf("replay ledger %s%s: %w", l.s.Name(), key+LedgerSuffix, ErrLedgerConflict)
	}
	if err != nil {
		return fmt.Errorf("replay ledger: %w", err)
	}
	l.versions[key] = version
	return nil
}

func decodeMarker(name, key string, data []byte) (*Marker, error) {
	var m Marker
	if err := json.Unmarshal(data, &m); err != nil || m.Version != markerVersion {
		return nil, fmt.Errorf("replay ledger %s is not a marker of this build (version %d): delete it to replay %s again from its start", name, markerVersion, key)
	}
	return &m, nil
}

// ledgerProgress is the engine's bookkeeping in ledger mode: the markers
// of the objects being replayed, saved when they change.
type ledgerProgress struct {
	l  Ledger
	mu sync.Mutex
	m  map[string]*Marker
	// dirty markers, to save
	dirty map[string]bool
	// commit writes the dirty markers off mu: settlements never wait for
	// each other's I/O, and a burst of them costs one write per marker
	// instead of one each.
	commit *groupCommit
}

func newLedgerProgress(l Ledger) *ledgerProgress {
	p := &ledgerProgress{l: l, m: map[string]*Marker{}, dirty: map[string]bool{}}
	p.commit = newGroupCommit(&p.mu)
	return p
}

// load reads en's marker and reports whether the object is done: read to
// its current end, every entry settled. A marker of a rewritten object
// is dropped.
func (p *ledgerProgress) load(ctx context.Context, en entry) (done bool, err error) {
	m, err := p.l.Load(ctx, en.Key)
	if err != nil {
		return false, err
	}
	if m == nil || (m.ETag != "" && en.ETag != "" && m.ETag != en.ETag) {
		m = &Marker{Version: markerVersion}
	}
	p.mu.Lock()
	p.m[en.Key] = m
	p.mu.Unlock()
	return m.Complete && m.Size == en.Size, nil
}

// settled returns a copy of key's settled entries.
func (p *ledgerProgress) settled(key string) [][2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.m[key]; m != nil {
		return slices.Clone(m.Settled)
	}
	return nil
}

// settledCount is the number of key's entries settled.
func (p *ledgerProgress) settledCount(key string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	if m := p.m[key]; m != nil {
		for _, r := range m.Settled {
			n += r[1] - r[0]
		}
	}
	return n
}

func (p *ledgerProgress) resumed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.m {
		if len(m.Settled) > 0 {
			return true
		}
	}
	return false
}

func (p *ledgerProgress) settle(key, etag string, item int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.m[key]
	m.ETag = etag
	m.Settled = addRange(m.Settled, item, item+1)
	p.dirty[key] = true
	p.commit.changed()
}

// complete records that key was read to its end (size bytes as listed)
// with every entry that can be sent settled.
func (p *ledgerProgress) complete(key, etag string, size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.m[key]
	m.ETag, m.Size, m.Complete = etag, size, true
	p.dirty[key] = true
	p.commit.changed()
}

// save returns once every change made before it was called is on the
// ledger (or a write of it failed).
func (p *ledgerProgress) save(ctx context.Context) error {
	return p.commit.save(ctx, "replay ledger", p.batchLocked)
}

// batchLocked copies the dirty markers and returns their write, which
// marks those it could not write dirty again.
func (p *ledgerProgress) batchLocked() func(context.Context) error {
	batch := make(map[string]Marker, len(p.dirty))
	for key := range p.dirty {
		m := *p.m[key]
		m.Settled = slices.Clone(m.Settled) // settle appends to it meanwhile
		batch[key] = m
	}
	clear(p.dirty)
	return func(ctx context.Context) error {
		var errs []error
		var failed []string
		for key, m := range batch {
			m.Version, m.Updated = markerVersion, time.Now().UTC()
			if err := p.l.Save(ctx, key, &m); err != nil {
				errs = append(errs, err)
				failed = append(failed, key)
			}
		}
		if len(failed) > 0 {
			p.mu.Lock()
			for _, key := range failed {
				p.dirty[key] = true // the next save writes it again
			}
			p.mu.Unlock()
		}
		return errors.Join(errs...)
	}
}

// entries follows the entries of one object to their settlement in ledger
// mode. The reader hands them out in order, so an entry is fully read once
// a later one appears (or the object ends); it is settled when, in
// addition, every record it produced was acknowledged and none was held
// back (failed, or filtered out by the time range or the age limit).
type entries struct {
	mu     sync.Mutex
	open   map[int64]int  // records in flight, per entry
	held   map[int64]bool // entries not settled by this run
	zero   []int64        // entries with nothing in flight, maybe not fully read
	closed int64          // entries below are fully read
	settle func(item int64)
}

func newEntries(settle func(int64)) *entries {
	return &entries{open: map[int64]int{}, held: map[int64]bool{}, settle: settle}
}

// sent registers records of a chunk (their entries, -1 for none) and the
// entries filtered out of it.
func (t *entries) sent(items, dropped []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	top := t.closed
	for _, it := range dropped {
		if it >= 0 {
			t.held[it] = true
			top = max(top, it)
		}
	}
	for _, it := range items {
		if it >= 0 {
			t.open[it]++
			top = max(top, it)
		}
	}
	// Entries before the chunk's last are fully read; the last may go on.
	t.closeBelowLocked(top)
}

// done settles a chunk's records: acknowledged, or failed (held).
func (t *entries) done(items []int64, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, it := range items {
		if it < 0 {
			continue
		}
		if failed {
			t.held[it] = true
		}
		if t.open[it]--; t.open[it] == 0 {
			delete(t.open, it)
			t.zero = append(t.zero, it)
		}
	}
	t.closeBelowLocked(t.closed)
}

// end: the object was read to its end; every entry is fully read.
func (t *entries) end() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeBelowLocked(1 << 62)
}

func (t *entries) anyHeld() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.held) > 0
}

func (t *entries) closeBelowLocked(n int64) {
	t.closed = max(t.closed, n)
	keep := t.zero[:0]
	for _, it := range t.zero {
		switch {
		case t.open[it] > 0:
			// more records of it were sent since: wait for them
		case it >= t.closed:
			keep = append(keep, it)
		case !t.held[it]:
			t.settle(it)
		}
	}
	t.zero = keep
}

// ledgerFor reports whether a key is a ledger marker, never an archive
// object to read.
func ledgerMarker(key string) bool { return strings.HasSuffix(key, LedgerSuffix) }
