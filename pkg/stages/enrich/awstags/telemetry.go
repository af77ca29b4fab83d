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
		reg.CounterFunc("awstags.calls", "AWS calls attempted, by service and operation (snake_case: GetRestApis is get_rest_apis).", c.calls[i].Load,
			telemetry.L("service", service), telemetry.L("operation", snake(operation)))
	}
	reg.CounterFuncs("awstags.", []telemetry.Func{
		telemetry.F("hits", "Stage lookups answered from fresh tags.", c.hits.Load),
		telemetry.F("stale", "Stage lookups answered from tags kept while AWS errors last.", c.stale.Load),
		telemetry.F("negative", "Stage lookups answered from a remembered \"no such stage\".", c.negative.Load),
		telemetry.F("misses", "Stage lookups that had to read AWS.", c.misses.Load),
		telemetry.F("partial", "Stage lookups answered partial: not read in time, or the account could not be read.", c.partial.Load),
		telemetry.F("unnamed", "Lookups for records that name no stage (account and region tags only).", c.unnamed.Load),
		telemetry.F("waits", "Lookups that waited for AWS.", c.waits.Load),
		telemetry.F("wait_timeouts", "Lookups that gave up waiting after enrich.max_wait.", c.waitTimeouts.Load),
		telemetry.F("throttles", "AWS calls throttled.", c.throttles.Load),
		telemetry.F("errors", "AWS calls that failed after their retries (\"not found\" is an answer, not an error).", c.errors.Load),
		telemetry.F("refreshes", "Reads of an account and region's API Gateway inventory.", c.refreshes.Load),
		telemetry.F("refresh_errors", "Inventory reads that failed (the previous tags stay served).", c.refreshErrors.Load),
		telemetry.F("evicted", "Inventories dropped after 4 TTLs unused.", c.evicted.Load),
		telemetry.F("rejected", "Lookups refused by the bounds: too many inventories, or an implausible account or region.", c.rejected.Load),
		telemetry.F("truncated", "Stages not cached because enrich.max_stages was reached.", c.cut.Load),
	})
	reg.GaugeFuncs("awstags.", []telemetry.Func{
		telemetry.F("inventories", "Account and region inventories cached now.", func() int64 { return int64(len(*t.invs.Load())) }),
		telemetry.F("stages", "Stages whose tags are cached now.", t.stageCount.Load),
	})
}

// snake writes an AWS operation name in snake_case, as every key of
// /status is ("AssumeRole" → "assume_role").
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
