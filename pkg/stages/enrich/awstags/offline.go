package awstags

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// identities caches the Info of stages answered from what records carry
// alone, without AWS data: one shared Info (and so one shared tag slice)
// per account, region, API and stage. Both the Tagger (records it cannot
// look up: no account, no region, a log group no stage writes to) and
// Offline answer through it, so that a record's own tags are the same
// whatever AWS says or whether it is asked.
type identities struct {
	mu sync.Mutex
	m  atomic.Pointer[map[StageKey]*Info]
}

func newIdentities() *identities {
	c := &identities{}
	empty := map[StageKey]*Info{}
	c.m.Store(&empty)
	return c
}

// get returns the Info of key's account, region, API and stage (its log
// group is ignored). key's strings may alias a record: they are copied
// before they are kept.
func (c *identities) get(key StageKey) *Info {
	key.LogGroup = ""
	if info := (*c.m.Load())[key]; info != nil {
		return info
	}
	k := StageKey{Account: strings.Clone(key.Account), Region: strings.Clone(key.Region),
		APIID: strings.Clone(key.APIID), Stage: strings.Clone(key.Stage)}
	info := &Info{Account: k.Account, Region: k.Region, APIID: k.APIID, Stage: k.Stage,
		Tags: buildTags(k.Account, k.Region, k.APIID, "", k.Stage, nil, false)}
	c.mu.Lock()
	cur := *c.m.Load()
	if len(cur) < maxBase {
		next := make(map[StageKey]*Info, len(cur)+1)
		maps.Copy(next, cur)
		next[k] = info
		c.m.Store(&next)
	}
	c.mu.Unlock()
	return info
}

// Offline tags records with what they carry — account and region (from
// their origin), API and stage (an execution log group, the access log's
// own apiId and stage fields, or Config.Mappings) — without calling AWS: the enrich stage with enrich.aws_tags off. Records
// are named by the Tagger's own rules (Resolve) and tagged by its own
// builder, so a log carries the same apiid, stage, region and aws_account
// tags with and without AWS, and the metrics derived from it agree.
type Offline struct {
	res atomic.Pointer[resolver] // SetMappings replaces it
	ids *identities
}

// NewOffline returns an Offline tagger; only the configuration that names
// stages (DefaultRegion, SourceRegions, Mappings) applies.
func NewOffline(cfg Config) (*Offline, error) {
	if err := cfg.withDefaults().Validate(); err != nil {
		return nil, fmt.Errorf("awstags: invalid configuration: %w", err)
	}
	o := &Offline{ids: newIdentities()}
	o.res.Store(newResolver(cfg))
	return o, nil
}

// Resolve names a record's stage, as Tagger.Resolve does.
func (o *Offline) Resolve(rec *record.Record) (StageKey, bool) { return o.res.Load().resolve(rec) }

// Peek answers at once: there is nothing to wait for.
func (o *Offline) Peek(key StageKey) (Info, bool) { return *o.ids.get(key), true }

// Wait is Peek.
func (o *Offline) Wait(_ context.Context, key StageKey) (Info, bool) { return o.Peek(key) }
