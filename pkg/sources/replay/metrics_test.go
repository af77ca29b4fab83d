package replay

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
)

// An archived metric stream (Firehose writes its JSON output to S3) is
// replayed as metric points, with the replay's acknowledgement: points in
// the range go out once, across an interruption too; points the metrics
// API would drop (older than an hour) are skipped and counted, never
// re-timestamped. Log lines in the same object go out as logs.
func TestReplayMetricStreamObject(t *testing.T) {
	dec, err := metricstream.NewDecoder(metricstream.DefaultConfig())
	require.NoError(t, err)
	datum := func(stage string, at time.Time) string {
		return fmt.Sprintf(`{"metric_stream_name":"m","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway","metric_name":"Count",`+
			`"dimensions":{"ApiName":"petstore","Stage":%q},"timestamp":%d,"value":{"max":1,"min":1,"sum":2,"count":2},"unit":"Count"}`, stage, at.UnixMilli())
	}
	var lines []string
	for i := range 10 {
		lines = append(lines, datum(fmt.Sprint("recent", i), now.Add(-10*time.Minute)))
	}
	lines = append(lines, `{"requestId":"r1","status":200}`)
	for i := range 4 {
		lines = append(lines, datum(fmt.Sprint("old", i), now.Add(-2*time.Hour)))
	}
	hour := now.Add(-time.Hour)
	m := &memS3{objects: map[string][]byte{hourKey("ms/", hour): []byte(strings.Join(lines, "\n") + "\n")}}
	ckpt := filepath.Join(t.TempDir(), "replay.ckpt")
	cfg := Config{Bucket: "b", Prefix: "ms/", From: now.Add(-3 * time.Hour), Checkpoint: ckpt, Now: func() time.Time { return now },
		Object: s3obj.Config{EventsPerBatch: 4, Metrics: decode.MetricStreams(dec)}}

	// The second batch of points is refused: the object is not done.
	first := &out{failIf: func(b *record.Batch) bool { return len(b.Metrics) > 0 && strings.HasSuffix(b.ID, "#4") }}
	sum, err := runReplay(t, cfg, m, first)
	require.Error(t, err)
	assert.EqualValues(t, 14, sum.Points)
	assert.EqualValues(t, 6, sum.PointsSent, "two batches of the recent points; the third was refused")
	assert.EqualValues(t, 4, sum.PointsTooOld)
	assert.Len(t, first.points, 6)
	assert.Len(t, first.events, 1)

	second := &out{}
	sum, err = runReplay(t, cfg, m, second)
	require.NoError(t, err)
	require.Len(t, second.points, 4, "only the refused batch is sent again")
	assert.Empty(t, second.events, "the log went out the first time")
	assert.EqualValues(t, 4, sum.PointsSent)
	assert.EqualValues(t, 11, sum.AlreadyDelivered, "the points and the log of the first run, and the old points it skipped")
	seen := map[string]int{}
	for _, p := range append(first.points, second.points...) {
		assert.Equal(t, "aws.apigateway.count", p.Name)
		assert.Equal(t, now.Add(-10*time.Minute).Truncate(time.Minute).Unix(), p.Timestamp, "its own time")
		for _, tag := range p.Tags {
			if s, ok := strings.CutPrefix(tag, "stage:"); ok {
				seen[s]++
			}
		}
	}
	assert.Len(t, seen, 10, "every recent point once")
	for s, n := range seen {
		assert.Equal(t, 1, n, s)
	}
	assert.Contains(t, written(sum), "metric points    14 read, 4 sent, 0 too old (>1h), 0 outside range")
}
