package pipeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// TestLiveLineSpeaksOnlyOfSourcesThatRun: an SQS-only run's live line
// shows no Firehose figures (it showed records/s and an ack p99 of zero),
// and a run with neither source shows only what the stages did. A latency
// with no sample yet is "-", not a p99 of 0 ms.
func TestLiveLineSpeaksOnlyOfSourcesThatRun(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	prev := flow{at: at}
	s := Status{Ready: "ok"}

	sqsOnly := flow{at: at.Add(2 * time.Second), sqs: true, sqsDeleted: 8, decoded: 40, parsed: 40, delivered: 20, dead: 1}
	assert.Equal(t, "[    2s] sqs messages deleted/s 4 | events/s decoded 20 parsed 20 delivered 10 | dead-lettered 1 | in flight 0 | sqs message p99 - | ok\n",
		reportLine(at, prev, sqsOnly, s))

	neither := flow{at: at.Add(time.Second), decoded: 5, parsed: 5, delivered: 5}
	assert.Equal(t, "[    1s] events/s decoded 5 parsed 5 delivered 5 | dead-lettered 0 | in flight 0 | ok\n",
		reportLine(at, prev, neither, s))
}

// TestLatencyOfNothingIsNotZero: a summary's latency line with no sample
// says so (it read "p50 0.0 ms, p99 0.0 ms, max 0.0 ms" in a run where no
// request was acknowledged).
func TestLatencyOfNothingIsNotZero(t *testing.T) {
	assert.Equal(t, "none (no request acknowledged)", latency(telemetry.Quantiles{}, "no request acknowledged"))
	assert.Equal(t, "p50 1.5 ms, p99 9.0 ms, max 12.0 ms", latency(telemetry.Quantiles{Count: 3, P50: 1.5, P99: 9, Max: 12}, "x"))
	assert.Equal(t, "-", p99(telemetry.Quantiles{}))
	assert.Equal(t, "9 ms", p99(telemetry.Quantiles{Count: 1, P99: 9}))
}
