package dlq

import (
	"fmt"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// LetterBatch is a batch of n dead letters from deliver-logs, with event
// ids "<id>-0", "<id>-1", …: the letters of the tests inside and outside
// the package.
func LetterBatch(id string, n int) *record.Batch {
	b := &record.Batch{Stage: "deliver-logs", Reason: "intake 400"}
	for i := range n {
		b.Records = append(b.Records, record.Record{Kind: record.KindLine, EventID: fmt.Sprintf("%s-%d", id, i), Message: []byte(`{"requestId":"` + id + `"}`)})
	}
	return b
}
