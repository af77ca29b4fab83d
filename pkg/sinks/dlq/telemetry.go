package dlq

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the archive's figures as "dlq.*". What it
// wrote is counted by the stage that dead-lettered it
// (stage.dead_lettered).
func (a *Archive) RegisterMetrics(reg *telemetry.Registry) {
	reg.CounterFunc("dlq.write_recoveries", "Dead-letter writes that followed a failed one and repaired the file first.", a.recoveries.Load)
}
