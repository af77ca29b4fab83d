package awstags

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

func TestCallsAreLabelledInSnakeCase(t *testing.T) {
	reg := telemetry.NewRegistry()
	tg := &Tagger{}
	emptyInv := map[invKey]*inventory{}
	tg.invs.Store(&emptyInv)
	tg.stats.calls[opAssumeRole].Add(2)
	tg.RegisterMetrics(reg)
	assert.Equal(t, int64(2), reg.Value("awstags.calls", "sts", "assume_role"))
	assert.Equal(t, int64(2), reg.Snapshot().Status().Counters["awstags.calls.sts.assume_role"])
	for _, o := range opNames {
		_, operation, _ := strings.Cut(o, ":")
		assert.Regexp(t, `^[a-z0-9_]+$`, snake(operation), o)
	}
}
