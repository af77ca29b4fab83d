package filter

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// newRuleStats registers a rule's counters on reg as the families
// filters.{matched,redacted,dropped,sampled_out} labelled rule=<name>
// (standalone counters when reg is nil). A rule keeps its series across
// reloads: they are registered once per name.
func newRuleStats(reg *telemetry.Registry, rule string) *RuleStats {
	c := func(what, help string) *telemetry.Counter {
		if reg == nil {
			return &telemetry.Counter{}
		}
		return reg.Counter("filters."+what, help, telemetry.L("rule", rule))
	}
	return &RuleStats{
		Matched:    c("matched", "Logs a filter rule matched (scrubbing rules: logs they changed)."),
		Redacted:   c("redacted", "Replacements a scrubbing rule made."),
		Dropped:    c("dropped", "Logs a rule dropped (drop, include_at_match, exclude_at_match)."),
		SampledOut: c("sampled_out", "Logs a sample rule left out."),
	}
}
