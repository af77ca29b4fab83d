package cas

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrCut is the error of a Link that was cut.
var ErrCut = errors.New("store unreachable")

// Link is one worker's connection to a Store, which can be cut: a worker
// killed (-9) or cut off by the network can then neither read nor write,
// nor release what it holds. Tests of fleets play deaths and partitions
// with it.
type Link struct {
	Store
	down atomic.Bool
}

// NewLink returns a working link to s.
func NewLink(s Store) *Link { return &Link{Store: s} }

// Cut cuts the link (true) or restores it (false).
func (l *Link) Cut(down bool) { l.down.Store(down) }

// IsCut reports whether the link is cut.
func (l *Link) IsCut() bool { return l.down.Load() }

// Get implements Store.
func (l *Link) Get(ctx context.Context, key string) ([]byte, string, error) {
	if l.down.Load() {
		return nil, "", ErrCut
	}
	return l.Store.Get(ctx, key)
}

// Create implements Store.
func (l *Link) Create(ctx context.Context, key string, value []byte) (string, error) {
	if l.down.Load() {
		return "", ErrCut
	}
	return l.Store.Create(ctx, key, value)
}

// Update implements Store.
func (l *Link) Update(ctx context.Context, key string, value []byte, version string) (string, error) {
	if l.down.Load() {
		return "", ErrCut
	}
	return l.Store.Update(ctx, key, value, version)
}
