package filter

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// newRuleStats registers a rule's counters on reg as
// "filters.<rule>.{matched,redacted,dropped,sampled_out}" (standalone
// counters when reg is nil).
func newRuleStats(reg *telemetry.Registry, rule string) *RuleStats {
	c := func(what string) *telemetry.Counter {
		if reg == nil {
			return &telemetry.Counter{}
		}
		return reg.Counter("filters." + rule + "." + what)
	}
	return &RuleStats{Matched: c("matched"), Redacted: c("redacted"), Dropped: c("dropped"), SampledOut: c("sampled_out")}
}
