package awstags

import (
	"strings"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// RegisterMetrics registers the Tagger's figures as "awstags.*".
func (t *Tagger) RegisterMetrics(reg *telemetry.Registry) {
	c := &t.stats
	for i := range c.calls {
		service, operation, _ := strings.Cut(op(i).String(), ":")
		reg.CounterFunc("awstags.calls", "AWS calls attempted, by service and operation.", c.calls[i].Load,
			telemetry.L("service", service), telemetry.L("operation", operation))
	}
	for _, m := range []struct {
		name, help string
		n          interface{ Load() int64 }
	}{
		{"awstags.hits", "Stage lookups answered from fresh tags.", &c.hits},
		{"awstags.stale", "Stage lookups answered from tags kept while AWS errors last.", &c.stale},
		{"awstags.negative", "Stage lookups answered from a remembered \"no such stage\".", &c.negative},
		{"awstags.misses", "Stage lookups that had to read AWS.", &c.misses},
		{"awstags.partial", "Stage lookups answered partial: not read in time, or the account could not be read.", &c.partial},
		{"awstags.unnamed", "Lookups for records that name no stage (account and region tags only).", &c.unnamed},
		{"awstags.waits", "Lookups that waited for AWS.", &c.waits},
		{"awstags.wait_timeouts", "Lookups that gave up waiting after enrich.max_wait.", &c.waitTimeouts},
		{"awstags.throttles", "AWS calls throttled.", &c.throttles},
		{"awstags.errors", "AWS calls that failed after their retries (\"not found\" is an answer, not an error).", &c.errors},
		{"awstags.refreshes", "Reads of an account and region's API Gateway inventory.", &c.refreshes},
		{"awstags.refresh_errors", "Inventory reads that failed (the previous tags stay served).", &c.refreshErrors},
		{"awstags.evicted", "Inventories dropped after 4 TTLs unused.", &c.evicted},
		{"awstags.rejected", "Lookups refused by the bounds: too many inventories, or an implausible account or region.", &c.rejected},
		{"awstags.truncated", "Stages not cached because enrich.max_stages was reached.", &c.cut},
	} {
		reg.CounterFunc(m.name, m.help, m.n.Load)
	}
	reg.GaugeFunc("awstags.inventories", "Account and region inventories cached now.", func() int64 { return int64(len(*t.invs.Load())) })
	reg.GaugeFunc("awstags.stages", "Stages whose tags are cached now.", t.stageCount.Load)
}
