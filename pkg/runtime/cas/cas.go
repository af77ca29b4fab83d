// Package cas is the one storage contract gwpipe's fleet-wide state needs:
// a key-value store whose writes are compare-and-swap. A write either
// creates a key that does not exist, or replaces the version of a key the
// writer read; a writer that lost a race learns it (ErrConflict) instead
// of overwriting what another wrote.
//
// Three stores keep the contract, on parts users already run:
//
//   - S3: conditional writes (PutObject with If-None-Match: * to create,
//     If-Match: <ETag> to replace), strongly consistent in every region;
//   - NATS JetStream key-value (Create, and Update on the last revision),
//     when the fleet's transport is NATS;
//   - Memory, in one process (tests, and a fleet of one).
//
// Leases (package lease), replay checkpoints and ledgers, the CloudWatch
// poller's state and the dead-letter archive's objects are all written
// through it, so that no worker ever overwrites another's state.
package cas

import (
	"context"
	"errors"
)

// Store is a key-value store with compare-and-swap writes. Keys are
// slash-separated names ("cwpoller/123456789012-us-east-1.json"); a store
// may place them under a prefix of its own.
type Store interface {
	// Get returns key's value and its version: ErrNotFound when there is
	// none.
	Get(ctx context.Context, key string) (value []byte, version string, err error)
	// Create writes key only if it does not exist: ErrConflict otherwise.
	Create(ctx context.Context, key string, value []byte) (version string, err error)
	// Update replaces key only if its version is still version:
	// ErrConflict when another write came first, or the key is gone.
	Update(ctx context.Context, key string, value []byte, version string) (newVersion string, err error)
	// Name is where the store keeps its keys, for messages
	// (s3://bucket/prefix/, nats-kv://bucket).
	Name() string
}

var (
	// ErrNotFound is Get's answer for a key that does not exist.
	ErrNotFound = errors.New("no such key")
	// ErrConflict is a conditional write that lost: the key exists
	// (Create), or holds another version than the one read (Update).
	ErrConflict = errors.New("conditional write lost: the key was written by someone else")
)
