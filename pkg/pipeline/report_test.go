package pipeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestLiveLineSpeaksOnlyOfSourcesThatRun: an SQS-only run's live line
// shows no Firehose figures (it showed records/s and an ack p99 of zero),
// and a run with neither source shows only what the stages did.
func TestLiveLineSpeaksOnlyOfSourcesThatRun(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	prev := flow{at: at}
	s := Status{Ready: "ok"}

	sqsOnly := flow{at: at.Add(2 * time.Second), sqs: true, sqsDeleted: 8, decoded: 40, parsed: 40, delivered: 20, dead: 1}
	assert.Equal(t, "[    2s] sqs messages deleted/s 4 | events/s decoded 20 parsed 20 delivered 10 | dead-lettered 1 | in flight 0 | sqs message p99 0 ms | ok\n",
		reportLine(at, prev, sqsOnly, s))

	neither := flow{at: at.Add(time.Second), decoded: 5, parsed: 5, delivered: 5}
	assert.Equal(t, "[    1s] events/s decoded 5 parsed 5 delivered 5 | dead-lettered 0 | in flight 0 | ok\n",
		reportLine(at, prev, neither, s))
}
