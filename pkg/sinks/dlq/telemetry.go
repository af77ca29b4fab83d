package dlq

import "github.com/gwpipe/gwpipe/pkg/telemetry"

// RegisterMetrics registers the archive's figures as "dlq.*". What it
// wrote is counted by the stage that dead-lettered it
// (stage.dead_lettered).
func (a *Archive) RegisterMetrics(reg *telemetry.Registry) {
	reg.CounterFunc("dlq.write_recoveries", "Dead-letter writes that followed a failed one and repaired the file first.", a.recoveries.Load)
}

// RegisterMetrics registers an S3 archive's figures as "dlq.s3.*".
func (a *S3Archive) RegisterMetrics(reg *telemetry.Registry) {
	reg.CounterFuncs("dlq.s3.", []telemetry.Func{
		telemetry.F("objects", "Dead-letter objects written to S3 (dlq.url).", a.counts.objects.Load),
		telemetry.F("bytes", "Compressed bytes of the dead-letter objects written to S3, as stored.", a.counts.bytes.Load),
		telemetry.F("letters", "Dead letters written to S3.", a.counts.letters.Load),
		telemetry.F("failures", "Dead-letter objects that could not be written to S3: their letters were refused, unacknowledged.", a.counts.failures.Load),
	})
}
