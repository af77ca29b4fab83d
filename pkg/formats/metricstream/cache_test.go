package metricstream

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func cacheLine(metric, stage string, ts int64, sum int) string {
	return fmt.Sprintf(`{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":%q,"dimensions":{"ApiName":"petstore","Stage":%q},"timestamp":%d,"value":{"max":1,"min":0,"sum":%d,"count":10},"unit":"Count"}`,
		metric, stage, ts*1000, sum)
}

func ratios(t *testing.T, d *Decoder, rec string) []string {
	t.Helper()
	var out []string
	_, err := d.Decode([]byte(rec), func(m record.Metric) {
		if m.Name == "aws.apigateway.cache_hit_ratio" {
			out = append(out, fmt.Sprintf("%s@%d=%g", m.Tags[1], m.Timestamp, m.Value))
		}
	})
	require.NoError(t, err)
	return out
}

// The cache view: hits/(hits+misses) beside the counts, per stage and
// period, whether the halves share a record or not.
func TestCacheHitRatio(t *testing.T) {
	t.Parallel()
	d, err := NewDecoder(DefaultConfig())
	require.NoError(t, err)

	// Same record, either order, two stages.
	got := ratios(t, d, cacheLine("CacheMissCount", "prod", 60, 1)+"\n"+
		cacheLine("CacheHitCount", "beta", 60, 2)+"\n"+
		cacheLine("CacheHitCount", "prod", 60, 3)+"\n"+
		cacheLine("CacheMissCount", "beta", 60, 2)+"\n")
	assert.Equal(t, []string{"stage:prod@60=0.75", "stage:beta@60=0.5"}, got)

	// Split across records: the ratio comes with the second half.
	assert.Empty(t, ratios(t, d, cacheLine("CacheHitCount", "prod", 120, 9)))
	assert.Equal(t, []string{"stage:prod@120=0.9"}, ratios(t, d, cacheLine("CacheMissCount", "prod", 120, 1)))

	// The same half again (a redelivered record) replaces the first.
	assert.Empty(t, ratios(t, d, cacheLine("CacheHitCount", "prod", 180, 1)))
	assert.Empty(t, ratios(t, d, cacheLine("CacheHitCount", "prod", 180, 3)))
	assert.Equal(t, []string{"stage:prod@180=0.75"}, ratios(t, d, cacheLine("CacheMissCount", "prod", 180, 1)))

	// No request in the period: no ratio.
	assert.Empty(t, ratios(t, d, cacheLine("CacheHitCount", "prod", 240, 0)+"\n"+cacheLine("CacheMissCount", "prod", 240, 0)))

	// Different periods do not pair.
	assert.Empty(t, ratios(t, d, cacheLine("CacheHitCount", "prod", 300, 1)+"\n"+cacheLine("CacheMissCount", "prod", 360, 1)))
	assert.Equal(t, 2, d.Mapper().join.pendingLen())
	assert.Equal(t, int64(4), d.Stats().Ratios)
}

// A record sent again after the attempt that carried the ratio failed
// (Firehose retries a request whole, or sends again the records it had not
// delivered; the poller fetches a period again after a failed emit) gives
// the ratio again. Its half found the pair complete and nothing pending:
// it waited, unpaired, for the other half, which had come already, and the
// period's ratio was never delivered (0 of 1; cache_unpaired counted it).
func TestCacheHitRatioOfARecordSentAgain(t *testing.T) {
	t.Parallel()
	d, err := NewDecoder(DefaultConfig())
	require.NoError(t, err)
	hit, miss := cacheLine("CacheHitCount", "prod", 60, 3), cacheLine("CacheMissCount", "prod", 60, 1)

	assert.Empty(t, ratios(t, d, hit))
	assert.Equal(t, []string{"stage:prod@60=0.75"}, ratios(t, d, miss), "the ratio goes with the miss count")
	// The miss count's delivery failed: its record comes again, alone.
	assert.Equal(t, []string{"stage:prod@60=0.75"}, ratios(t, d, miss), "and comes again with it")
	// The hit count's record again carries no ratio, as the first time.
	assert.Empty(t, ratios(t, d, hit))
	// Both again (a request sent again whole): the ratio once, with the
	// latest values.
	assert.Equal(t, []string{"stage:prod@60=0.5"}, ratios(t, d, cacheLine("CacheHitCount", "prod", 60, 1)+"\n"+miss))
	assert.Zero(t, d.Mapper().join.pendingLen(), "nothing waits for a half that came")
	assert.Zero(t, d.Stats().Unpaired)
}

// Halves that never find their other half are evicted, oldest first, and
// counted; the pending set stays bounded however many come.
func TestCacheHitRatioBounded(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.MaxPendingCache = 3
	d, err := NewDecoder(cfg)
	require.NoError(t, err)
	for ts := int64(1); ts <= 10; ts++ {
		ratios(t, d, cacheLine("CacheHitCount", "prod", ts*60, 1))
	}
	assert.Equal(t, 3, d.Mapper().join.pendingLen())
	assert.Equal(t, int64(7), d.Stats().Unpaired)
	// The newest halves still pair.
	assert.Equal(t, []string{"stage:prod@600=0.5"}, ratios(t, d, cacheLine("CacheMissCount", "prod", 600, 1)))
	// Oldest were evicted.
	assert.Empty(t, ratios(t, d, cacheLine("CacheMissCount", "prod", 60, 1)))

	// Many completed pairs leave no garbage behind.
	for ts := int64(1000); ts < 2000; ts++ {
		ratios(t, d, cacheLine("CacheHitCount", "x", ts*60, 1)+"\n"+cacheLine("CacheMissCount", "x", ts*60, 1))
	}
	j := &d.Mapper().join
	j.mu.Lock()
	defer j.mu.Unlock()
	assert.LessOrEqual(t, len(j.order), 2*cfg.MaxPendingCache+16)
	// Completed pairs are remembered, the last MaxPendingCache of them.
	assert.Len(t, j.paired, cfg.MaxPendingCache)
	assert.Len(t, j.pairedOrder, cfg.MaxPendingCache)
}
