package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/atomicfile"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
)

// checkpointVersion is the format of the checkpoint file.
const checkpointVersion = 1

// Checkpoint records what a replay has delivered, so that an interrupted
// replay resumes without sending anything twice. It is a JSON file:
//
//	{"version":1,"source":"s3://bucket/prefix","from":"…","to":"…",
//	 "watermark":"prefix/2026/11/29/05/…",          every key up to here is done
//	 "done":["prefix/2026/11/29/06/b", …],           done keys beyond the watermark
//	 "partial":{"prefix/…/c":{"etag":"\"…\"","ranges":[[0,4000],[5000,6000]]}},
//	 "done_objects":18,                               keys done so far (a resumed run's "already done")
//	 "complete":false}
//
// Objects are taken in key order. A key is done once every event read from
// it was delivered or dead-lettered; the watermark is the last key before
// which every key is done, so the file stays small however many objects a
// replay covers. Within an object, events are numbered in reading order
// (s3obj.Chunk) and the ranges acknowledged so far are kept, so that a
// multi-gigabyte object interrupted half-way is not sent again from its
// start.
type Checkpoint struct {
	Version   int                 `json:"version"`
	Source    string              `json:"source"`
	From      time.Time           `json:"from,omitzero"`
	To        time.Time           `json:"to,omitzero"`
	Watermark string              `json:"watermark,omitempty"`
	Done      []string            `json:"done,omitempty"`
	Partial   map[string]*Partial `json:"partial,omitempty"`
	Complete  bool                `json:"complete,omitempty"`
	// DoneObjects counts the keys done (behind the watermark or in Done),
	// which the listing of a resumed run no longer sees: its "already
	// done". Checkpoints written before it have 0.
	DoneObjects int64     `json:"done_objects,omitempty"`
	Updated     time.Time `json:"updated"`
}

// Partial is the progress within one object.
type Partial struct {
	ETag   string     `json:"etag,omitempty"`
	Ranges [][2]int64 `json:"ranges"` // acknowledged items [from, to), sorted, disjoint
}

// ErrCheckpointMismatch is returned when a checkpoint belongs to a replay
// of another source.
var ErrCheckpointMismatch = errors.New("the checkpoint belongs to another replay")

// LoadCheckpoint reads the checkpoint at path; a missing file is a fresh
// checkpoint.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Checkpoint{Version: checkpointVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	return decodeCheckpoint(path, data)
}

// Save writes the checkpoint atomically: a crash leaves the old file or
// the new one, never half of one.
func (c *Checkpoint) Save(path string) error {
	data, err := c.encode()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("replay checkpoint: %w", err)
	}
	return nil
}

func (c *Checkpoint) encode() ([]byte, error) {
	data, err := json.MarshalIndent(c, "", " ")
	return append(data, '\n'), err
}

func decodeCheckpoint(name string, data []byte) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is not a gwpipe replay checkpoint: %w", name, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s has version %d; this build reads %d", name, c.Version, checkpointVersion)
	}
	return &c, nil
}

// A CheckpointStore keeps a replay's checkpoint: a local file
// (FileCheckpoint), or an object in S3 (StoreCheckpoint) that a replay
// running in a pod finds again after a restart.
type CheckpointStore interface {
	// Load returns the checkpoint, a fresh one when there is none.
	Load(ctx context.Context) (*Checkpoint, error)
	// Save replaces it, atomically.
	Save(ctx context.Context, c *Checkpoint) error
	// Name is where it is, for messages.
	Name() string
}

// FileCheckpoint is the checkpoint in a local file.
func FileCheckpoint(path string) CheckpointStore { return fileCheckpoint(path) }

type fileCheckpoint string

func (f fileCheckpoint) Name() string                              { return string(f) }
func (f fileCheckpoint) Load(context.Context) (*Checkpoint, error) { return LoadCheckpoint(string(f)) }
func (f fileCheckpoint) Save(_ context.Context, c *Checkpoint) error {
	return c.Save(string(f))
}

// StoreCheckpoint is the checkpoint at key in store (an S3 object:
// cas.NewS3), written only with conditional writes on the version this
// replay read or wrote last. A replay that lost its lease (package lease)
// and still runs cannot overwrite the progress of the one that took over:
// its Save fails with cas.ErrConflict.
func StoreCheckpoint(store cas.Store, key string) CheckpointStore {
	return &storeCheckpoint{store: store, key: key}
}

type storeCheckpoint struct {
	store   cas.Store
	key     string
	mu      sync.Mutex
	version string // "" until loaded or created
}

func (s *storeCheckpoint) Name() string { return s.store.Name() + s.key }

func (s *storeCheckpoint) Load(ctx context.Context) (*Checkpoint, error) {
	data, version, err := s.store.Get(ctx, s.key)
	if errors.Is(err, cas.ErrNotFound) {
		return &Checkpoint{Version: checkpointVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	c, err := decodeCheckpoint(s.Name(), data)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.version = version
	s.mu.Unlock()
	return c, nil
}

func (s *storeCheckpoint) Save(ctx context.Context, c *Checkpoint) error {
	data, err := c.encode()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var version string
	if s.version == "" {
		version, err = s.store.Create(ctx, s.key, data)
	} else {
		version, err = s.store.Update(ctx, s.key, data, s.version)
	}
	if errors.Is(err, cas.ErrConflict) {
		return fmt.Errorf("write checkpoint %s: another replay wrote it since this one read it (its lease was taken over): %w", s.Name(), err)
	}
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	s.version = version
	return nil
}

// writeAtomic replaces the file at path with data: a crash leaves the old
// file or the new one, never half of one.
// IsDone reports whether key was completed.
func (c *Checkpoint) IsDone(key string) bool {
	return (c.Watermark != "" && key <= c.Watermark) || slices.Contains(c.Done, key)
}

// Acked returns the acknowledged ranges of key, or nil. A partial whose
// ETag no longer matches the object is ignored: the object was rewritten
// and its numbering means nothing any more.
func (c *Checkpoint) Acked(key, etag string) [][2]int64 {
	p := c.Partial[key]
	if p == nil || (p.ETag != "" && etag != "" && p.ETag != etag) {
		return nil
	}
	return p.Ranges
}

// addRange merges [from, to) into sorted disjoint ranges.
func addRange(rs [][2]int64, from, to int64) [][2]int64 {
	if from >= to {
		return rs
	}
	i := 0
	for i < len(rs) && rs[i][1] < from {
		i++
	}
	j := i
	for j < len(rs) && rs[j][0] <= to {
		from, to = min(from, rs[j][0]), max(to, rs[j][1])
		j++
	}
	out := append(rs[:i:i], [2]int64{from, to})
	return append(out, rs[j:]...)
}

// covered reports whether n is in one of the sorted ranges.
func covered(rs [][2]int64, n int64) bool {
	i, _ := slices.BinarySearchFunc(rs, n, func(r [2]int64, n int64) int {
		switch {
		case r[1] <= n:
			return -1
		case r[0] > n:
			return 1
		}
		return 0
	})
	return i < len(rs) && rs[i][0] <= n && n < rs[i][1]
}

// progress keeps a checkpoint up to date while objects complete out of
// order. Keys are registered in listing order; the watermark advances over
// the prefix of registered keys that are all done.
type progress struct {
	mu    sync.Mutex
	c     *Checkpoint
	order []string        // registered keys not yet behind the watermark, in order
	done  map[string]bool // of those, the done ones
	// commit writes the checkpoint off mu, on a copy: acknowledgements,
	// which take mu, never wait for the store.
	commit *groupCommit
}

func newProgress(c *Checkpoint) *progress {
	if c.Partial == nil {
		c.Partial = map[string]*Partial{}
	}
	p := &progress{c: c, done: map[string]bool{}}
	p.commit = newGroupCommit(&p.mu)
	for _, k := range c.Done {
		p.done[k] = true
	}
	return p
}

// register adds a key in listing order (a key that will be read, or one
// that was skipped and counts as done at once).
func (p *progress) register(key string, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.order = append(p.order, key)
	if done {
		p.countLocked(key)
		p.done[key] = true
	}
	p.advanceLocked()
}

// countLocked counts key done, unless it already was.
func (p *progress) countLocked(key string) {
	if !p.done[key] && !p.c.IsDone(key) {
		p.c.DoneObjects++
	}
}

func (p *progress) ack(key, etag string, from, to int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[key] {
		return
	}
	pt := p.c.Partial[key]
	if pt == nil || (etag != "" && pt.ETag != "" && pt.ETag != etag) {
		pt = &Partial{ETag: etag}
		p.c.Partial[key] = pt
	}
	pt.Ranges = addRange(pt.Ranges, from, to)
	p.commit.changed()
}

func (p *progress) objectDone(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.countLocked(key)
	p.done[key] = true
	delete(p.c.Partial, key)
	p.advanceLocked()
}

func (p *progress) advanceLocked() {
	i := 0
	for i < len(p.order) && p.done[p.order[i]] {
		p.c.Watermark = max(p.c.Watermark, p.order[i])
		delete(p.done, p.order[i])
		i++
	}
	if i > 0 {
		p.order = append(p.order[:0], p.order[i:]...)
	}
	p.c.Done = p.c.Done[:0]
	for k := range p.done {
		if k > p.c.Watermark {
			p.c.Done = append(p.c.Done, k)
		}
	}
	slices.Sort(p.c.Done)
	p.commit.changed()
}

// save writes the checkpoint if it changed, from a copy taken under the
// lock: what is acknowledged during the write goes into the next one.
func (p *progress) save(ctx context.Context, store CheckpointStore, complete bool) error {
	p.mu.Lock()
	if p.c.Complete != complete {
		p.c.Complete = complete
		p.commit.changed()
	}
	p.mu.Unlock()
	return p.commit.save(ctx, "checkpoint "+store.Name(), func() func(context.Context) error {
		p.c.Updated = time.Now().UTC()
		c := p.c.clone()
		return func(ctx context.Context) error { return store.Save(ctx, c) }
	})
}

// clone is a deep copy of c.
func (c *Checkpoint) clone() *Checkpoint {
	d := *c
	d.Done = slices.Clone(c.Done)
	d.Partial = make(map[string]*Partial, len(c.Partial))
	for k, pt := range c.Partial {
		d.Partial[k] = &Partial{ETag: pt.ETag, Ranges: slices.Clone(pt.Ranges)}
	}
	return &d
}

func (p *progress) watermark() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.Watermark
}

func (p *progress) isDone(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.IsDone(key) || p.done[key]
}

// acked returns a copy of key's acknowledged ranges.
func (p *progress) acked(key, etag string) [][2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.c.Acked(key, etag))
}
