package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/claim"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
)

// The state that must outlive a worker lives in compare-and-swap stores
// the fleet shares (package cas): S3 with conditional writes, or NATS
// JetStream key-value on the transport's server.

// dedupBucket is the key-value bucket of the fleet-wide de-duplication.
const dedupBucket = "gwpipe_dedup"

// fleetStores are the connections this process opened to shared stores.
type fleetStores struct {
	mu     sync.Mutex
	holder string // this process, as leases and claims name it
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     map[string]*cas.KV
}

func (f *fleetStores) name() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder == "" {
		f.holder = lease.Holder()
	}
	return f.holder
}

// kvStore opens (creating it if need be) a key-value bucket on the NATS
// server of the transport; keys expire ttl after their last write (0:
// never).
func (p *Pipeline) kvStore(ctx context.Context, bucket string, ttl time.Duration) (*cas.KV, error) {
	f := &p.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.kv[bucket]; ok {
		return s, nil
	}
	n := p.cfg.Transport.NATS
	if p.cfg.Transport.Kind != "nats" || n.URL == "" {
		return nil, fmt.Errorf("nats-kv://%s needs transport.kind nats", bucket)
	}
	if f.nc == nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		nc, err := nats.Connect(n.URL, nats.Name("gwpipe-state"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connect %s: %w", redact.URL(n.URL), redact.Err(err))
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		f.nc, f.js, f.kv = nc, js, map[string]*cas.KV{}
	}
	s, err := cas.OpenKV(ctx, f.js, bucket, ttl, n.Replicas)
	if err != nil {
		return nil, err
	}
	f.kv[bucket] = s
	return s, nil
}

// s3Store is the store of an s3://bucket/prefix/ URL.
func (p *Pipeline) s3Store(ctx context.Context, url string) (*cas.S3, error) {
	bucket, prefix, err := dlq.ParseS3URL(url)
	if err != nil {
		return nil, err
	}
	awsCfg, err := loadAWS(ctx, "")
	if err != nil {
		return nil, err
	}
	return cas.NewS3(awsconf.S3(awsCfg), bucket, prefix), nil
}

// casStore is the store a state URL names: s3://bucket/prefix/ or
// nats-kv://bucket.
func (p *Pipeline) casStore(ctx context.Context, url string) (cas.Store, error) {
	if b, ok := strings.CutPrefix(url, "nats-kv://"); ok {
		return p.kvStore(ctx, b, 0)
	}
	return p.s3Store(ctx, url)
}

// closeFleet closes the connections to the shared stores.
func (p *Pipeline) closeFleet() error {
	f := &p.fleet
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nc == nil {
		return nil
	}
	err := f.nc.Drain()
	f.nc = nil
	if err != nil && err != nats.ErrConnectionClosed {
		return err
	}
	return nil
}

// fleetDedup returns the fleet-wide de-duplication store, or nil when the
// transport has none (memory, SQS) or it is turned off.
func (p *Pipeline) fleetDedup(ctx context.Context) (cas.Store, error) {
	fd := p.cfg.Transport.FleetDedup
	if p.cfg.Transport.Kind != "nats" || !fd.Enabled {
		return nil, nil
	}
	s, err := p.kvStore(ctx, dedupBucket, fd.TTL)
	if err != nil {
		return nil, fmt.Errorf("transport.fleet_dedup: %w", err)
	}
	return s, nil
}

// fleetRequests are the Firehose request ids known fleet-wide, or nil.
func (p *Pipeline) fleetRequests(ctx context.Context) (*claim.Requests, error) {
	s, err := p.fleetDedup(ctx)
	if s == nil || err != nil {
		return nil, err
	}
	return claim.NewRequests(s, p.fleet.name(), p.cfg.Transport.FleetDedup), nil
}

// fleetBatches are deliver-logs' delivered batches known fleet-wide, or
// nil.
func (p *Pipeline) fleetBatches(ctx context.Context) (*claim.Batches, error) {
	s, err := p.fleetDedup(ctx)
	if s == nil || err != nil {
		return nil, err
	}
	return claim.NewBatches(s), nil
}
