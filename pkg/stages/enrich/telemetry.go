package enrich

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the stage's figures as "enrich.*": with
// enrich.records_tagged, the share of records that went on with partial
// tags, or named no stage.
func (s *Stage) RegisterMetrics(reg *telemetry.Registry) {
	reg.CounterFunc("enrich.records_tagged", "Records tagged (a retried batch's records again).", s.records.Load)
	reg.CounterFunc("enrich.records_partial", "Records that went on before their stage's tags were known (enrich.max_wait ran out, or AWS could not be read).", s.partial.Load)
	reg.CounterFunc("enrich.records_unnamed", "Records that named no stage: tagged with their account and region only.", s.unnamed.Load)
	reg.CounterFunc("enrich.batches_waited", "Batches that waited for tags not cached yet.", s.waits.Load)
}
