// Package claim makes de-duplication fleet-wide: what one worker is doing
// or has done, every worker can tell, through a compare-and-swap store
// (package cas) whose keys expire — a NATS JetStream key-value bucket with
// a TTL, on the broker the fleet already runs.
//
// Requests is for the Firehose endpoint behind a load balancer, where a
// retried request id can reach a worker that did not see the first
// attempt. A request id is claimed before its records are taken in: the
// claim is a lease (package lease) renewed while the worker handles the
// request, marked done once the request is delivered, and released when
// it fails, so that a retry anywhere takes it at once. A retry that finds
// the claim done answers 200 without sending anything; one that finds it
// in flight on another worker waits for it, and takes the request over if
// that worker dies (its claim not renewed for a TTL).
//
// Batches is for deliver-logs: a batch whose records it handed to the
// intake is marked, so that a broker redelivering the same batch to
// another worker (the first died before acknowledging it) is not
// delivered twice.
//
// Both are an optimisation on top of at-least-once delivery, never a
// condition of it: when the store cannot be reached, work goes on as if
// the worker were alone, and the failure is counted.
package claim

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
)

// Config is the fleet-wide de-duplication's settings.
type Config struct {
	// Enabled turns it on where the transport offers a store (NATS).
	Enabled bool `yaml:"enabled"`
	// TTL is how long a delivered request id or batch is remembered, from
	// the moment it was marked: a retry later than this is sent again.
	TTL time.Duration `yaml:"ttl"`
	// ClaimTTL is how long a request's claim outlives its worker: a retry
	// waiting on a dead worker's claim takes the request over within about
	// ClaimTTL·1.5.
	ClaimTTL time.Duration `yaml:"claim_ttl"`
}

// DefaultConfig is on, remembering for 10 minutes (as the endpoint's own
// memory of request ids, sources.firehose.dedup_ttl), with 10-second
// claims.
func DefaultConfig() Config {
	return Config{Enabled: true, TTL: 10 * time.Minute, ClaimTTL: 10 * time.Second}
}

// Validate reports every problem, each starting with its key.
func (c Config) Validate() error {
	var errs []error
	if c.TTL < time.Minute || c.TTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("ttl: must be 1m to 24h, got %s", c.TTL))
	}
	if err := (lease.Config{TTL: c.ClaimTTL}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("claim_%w", err))
	}
	if c.ClaimTTL*3 > c.TTL {
		errs = append(errs, fmt.Errorf("claim_ttl: must be at most a third of ttl (%s), got %s: an in-flight claim must outlive its renewals", c.TTL, c.ClaimTTL))
	}
	return errors.Join(errs...)
}

// Outcome is what a claim found.
type Outcome int

const (
	// Mine: this worker holds the request; it handles it.
	Mine Outcome = iota
	// Delivered: the request was delivered (by any worker).
	Delivered
	// Elsewhere: another live worker is handling it.
	Elsewhere
)

func (o Outcome) String() string {
	switch o {
	case Mine:
		return "mine"
	case Delivered:
		return "delivered"
	}
	return "elsewhere"
}

// Requests are the Firehose request ids of a fleet.
type Requests struct {
	store  cas.Store
	holder string
	lease  lease.Config
}

// NewRequests returns the request ids kept in store, as holder (this
// worker: lease.Holder()) sees them.
func NewRequests(store cas.Store, holder string, cfg Config) *Requests {
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultConfig().ClaimTTL
	}
	return &Requests{store: store, holder: holder, lease: lease.Config{TTL: cfg.ClaimTTL}}
}

// Claim is one request id, as this worker sees it.
type Claim struct {
	l   *lease.Lease
	ttl time.Duration

	mu       sync.Mutex
	renewing context.CancelFunc // while Mine
	settle   sync.Once
	settled  error
}

// Claim returns request id's claim; nothing is written until Try.
func (r *Requests) Claim(id string) *Claim {
	return &Claim{l: lease.New(r.store, "firehose/"+id, r.holder, r.lease), ttl: r.lease.TTL}
}

// Try makes one attempt at the claim. An error means the store could not
// be reached: the caller handles the request as if alone.
func (c *Claim) Try(ctx context.Context) (Outcome, error) {
	held, err := c.l.Try(ctx)
	switch {
	case errors.Is(err, lease.ErrDone):
		return Delivered, nil
	case err != nil:
		return Elsewhere, err
	case held:
		c.startRenewing()
		return Mine, nil
	}
	return Elsewhere, nil
}

// Wait waits while another worker handles the request: until it is
// delivered, or the claim becomes this worker's (released by a failed
// attempt, or taken over from a dead worker), or ctx ends (Elsewhere and
// ctx's error).
func (c *Claim) Wait(ctx context.Context) (Outcome, error) {
	t := time.NewTicker(waitEvery)
	defer t.Stop()
	for {
		out, err := c.Try(ctx)
		if err == nil && out != Elsewhere {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return Elsewhere, ctx.Err()
		case <-t.C:
		}
	}
}

// waitEvery is how often a waiting retry looks at the claim: a request's
// delivery takes a fraction of a second, and a key-value read is cheap.
const waitEvery = 100 * time.Millisecond

// startRenewing keeps the claim while this worker handles the request.
func (c *Claim) startRenewing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.renewing != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.renewing = cancel
	go func() {
		every := time.NewTicker(c.ttl / 3)
		defer every.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-every.C:
				if held, _ := c.l.Try(ctx); !held {
					return // lost: another worker took it over
				}
			}
		}
	}()
}

// Settle ends the claim once the request is dealt with: done when it was
// delivered (a retry anywhere answers 200), released otherwise (a retry
// anywhere handles it at once). It is idempotent: later calls return the
// first one's result.
func (c *Claim) Settle(ctx context.Context, delivered bool) error {
	c.settle.Do(func() {
		c.mu.Lock()
		if c.renewing != nil {
			c.renewing()
		}
		c.mu.Unlock()
		if delivered {
			c.settled = c.l.Finish(ctx)
		} else {
			c.settled = c.l.Release(ctx)
		}
	})
	return c.settled
}

// Batches marks the batches deliver-logs handed to the intake.
type Batches struct {
	store cas.Store
}

// NewBatches returns the marks kept in store.
func NewBatches(store cas.Store) *Batches { return &Batches{store: store} }

// BatchKey names a batch by its records' event ids, in order: the same
// batch redelivered by the broker has the same key on any worker. It is
// empty when no record has an id (nothing to recognise it by).
func BatchKey(ids func(yield func(string) bool)) string {
	// The ids are gathered into a fixed chunk hashed whenever it fills:
	// one hash.Hash write per id converted each id to a []byte that
	// escaped (an allocation per record), and one buffer of the whole
	// list grew by copying (3 % of a fleet worker's CPU at 5,000 records
	// a batch). The hash of the concatenation does not depend on where
	// the chunks end, so the keys are those of every earlier version.
	h := sha256.New()
	buf := make([]byte, 0, 8<<10)
	n := 0
	for id := range ids {
		if id == "" {
			continue
		}
		if len(buf)+binary.MaxVarintLen64+len(id) > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		// Length-prefixed: no two lists of ids write the same bytes.
		buf = binary.AppendUvarint(buf, uint64(len(id)))
		buf = append(buf, id...) // an id longer than the chunk grows it once
		n++
	}
	if n == 0 {
		return ""
	}
	h.Write(buf)
	var sum [sha256.Size]byte
	return "batch/" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// Seen reports whether the batch was marked delivered.
func (d *Batches) Seen(ctx context.Context, key string) (bool, error) {
	_, _, err := d.store.Get(ctx, key)
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Mark records that the batch was delivered.
func (d *Batches) Mark(ctx context.Context, key string) error {
	_, err := d.store.Create(ctx, key, []byte{'1'})
	if errors.Is(err, cas.ErrConflict) {
		return nil // marked already (a redelivery that raced this one)
	}
	return err
}
