package cas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// OpenKV creates the key-value bucket if it does not exist (or updates its
// settings) and returns its store. A positive ttl makes every key expire
// ttl after its last write (the bucket's MaxAge): what is written for a
// while only, such as de-duplication marks, needs no deleting.
func OpenKV(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) (*KV, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, TTL: ttl, Storage: jetstream.FileStorage, Replicas: max(replicas, 1), History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("nats key-value bucket %s: %w", bucket, err)
	}
	return NewKV(kv), nil
}

// KV is a Store in a NATS JetStream key-value bucket: a key's version is
// its revision. Create is the bucket's Create, Update its Update on the
// last revision, both decided by the server.
type KV struct {
	kv   jetstream.KeyValue
	name string
}

// NewKV returns the store of a key-value bucket.
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv, name: "nats-kv://" + kv.Bucket()} }

// Name implements Store.
func (s *KV) Name() string { return s.name }

// Get implements Store.
func (s *KV) Get(ctx context.Context, key string) ([]byte, string, error) {
	e, err := s.kv.Get(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("get %s/%s: %w", s.name, key, err)
	}
	return e.Value(), strconv.FormatUint(e.Revision(), 10), nil
}

// Create implements Store.
func (s *KV) Create(ctx context.Context, key string, value []byte) (string, error) {
	rev, err := s.kv.Create(ctx, kvKey(key), value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("create %s/%s: %w", s.name, key, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("create %s/%s: %w", s.name, key, err)
	}
	return strconv.FormatUint(rev, 10), nil
}

// Update implements Store.
func (s *KV) Update(ctx context.Context, key string, value []byte, version string) (string, error) {
	last, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return "", fmt.Errorf("update %s/%s: version %q is not a revision: %w", s.name, key, version, ErrConflict)
	}
	rev, err := s.kv.Update(ctx, kvKey(key), value, last)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("update %s/%s: %w", s.name, key, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("update %s/%s: %w", s.name, key, err)
	}
	return strconv.FormatUint(rev, 10), nil
}

// kvKey makes a key valid for a bucket: letters, digits and -/_=. only,
// not starting or ending with a dot. Other keys (a Firehose request id is
// whatever the sender chose) are hashed, which keeps them distinct.
func kvKey(key string) string {
	ok := key != "" && key[0] != '.' && key[len(key)-1] != '.' && !strings.Contains(key, "..")
	for i := 0; ok && i < len(key); i++ {
		c := key[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-/_=.", c) >= 0
	}
	if ok && !strings.Contains(key, "//") && key[0] != '/' && key[len(key)-1] != '/' {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "h." + hex.EncodeToString(sum[:16])
}
