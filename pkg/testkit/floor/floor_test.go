package floor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage/stagetest"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

func benchConfig() loadgen.Config {
	return loadgen.Config{Seed: 1, Mix: loadgen.Mix{JSON: 1}, RecordsPerRequest: 10, EventsPerRecord: 500,
		Clock: func() time.Time { return time.UnixMilli(1_700_000_000_000) }}
}

// capture keeps every payload a worker writes, decompressed.
type capture struct{ payloads [][]byte }

func (w *Worker) flushTo(t *testing.T, c *capture) {
	t.Helper()
	if w.inBatch == 0 {
		return
	}
	var buf bytes.Buffer
	w.zw.Reset(&buf)
	w.payload = append(w.payload, ']')
	_, err := w.zw.Write(w.payload)
	require.NoError(t, err)
	require.NoError(t, w.zw.Close())
	zr, err := gzip.NewReader(&buf)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	c.payloads = append(c.payloads, plain)
	w.payload, w.inBatch = w.payload[:0], 0
}

// TestFloorWritesEveryEventAsValidLog checks that the loop does the work it
// claims: every generated event becomes one valid Datadog log carrying its
// message and id, in payloads of at most LogsPerPayload.
func TestFloorWritesEveryEventAsValidLog(t *testing.T) {
	cfg := benchConfig()
	c, err := NewCorpus(cfg, 3000)
	require.NoError(t, err)
	require.GreaterOrEqual(t, c.Events, 3000)

	g, err := loadgen.NewGenerator(cfg)
	require.NoError(t, err)
	var want []loadgen.Event
	for len(want) < c.Events {
		req, err := g.NextRequest()
		require.NoError(t, err)
		want = append(want, req.Events...)
	}

	logs, n := floorLogs(t, c, false)
	require.Len(t, logs, c.Events)
	assert.Equal(t, c.Events, n)
	withAttrs := 0
	for i, l := range logs {
		assert.Equal(t, want[i].Message, l["message"], "log %d", i)
		assert.Equal(t, want[i].ID, l["id"], "log %d", i)
		if _, ok := l["apigateway"].(map[string]any); ok {
			withAttrs++
		}
	}
	assert.Greater(t, withAttrs, len(logs)/2, "most messages are valid JSON whose fields are attributes")
}

// floorLogs runs a worker over the corpus's records and returns its logs
// and how many it counted, checking that each payload is JSON of at most
// LogsPerPayload logs.
func floorLogs(t *testing.T, c *Corpus, contract bool) ([]map[string]any, int) {
	t.Helper()
	w := NewWorker()
	w.Contract = contract
	var got capture
	for _, rec := range c.Records {
		// Record flushes full payloads itself; capture them by flushing
		// before a record could fill one.
		if w.inBatch > LogsPerPayload-benchConfig().EventsPerRecord {
			w.flushTo(t, &got)
		}
		require.NoError(t, w.Record(rec))
	}
	w.flushTo(t, &got)
	var logs []map[string]any
	for _, p := range got.payloads {
		var batch []map[string]any
		require.NoError(t, json.Unmarshal(p, &batch), "payload is JSON")
		assert.LessOrEqual(t, len(batch), LogsPerPayload)
		logs = append(logs, batch...)
	}
	return logs, w.Logs
}

// With Contract, the floor writes what gwpipe's output contract requires:
// the same fields as gwpipe's own logs of the same events (decoded, parsed
// and rendered by gwpipe's stages), with the same standard attributes,
// level and tags, and about as many bytes.
func TestContractFloorWritesWhatGwpipeWrites(t *testing.T) {
	c, err := NewCorpus(benchConfig(), 2000)
	require.NoError(t, err)
	fl, _ := floorLogs(t, c, true)
	gw := gwpipeLogs(t, c)
	require.Len(t, fl, len(gw))
	var floorBytes, gwBytes, compared int
	for i := range gw {
		f, g := fl[i], gw[i]
		if _, ok := f["apigateway"]; !ok {
			// Not JSON to fastjson (loadgen writes a bare "-" where API
			// Gateway does, which gwpipe's parser reads): the floor writes
			// the message alone, which only makes it cheaper.
			continue
		}
		compared++
		keys := func(m map[string]any) (ks []string) {
			for k := range m {
				ks = append(ks, k)
			}
			return ks
		}
		assert.ElementsMatch(t, keys(g), keys(f), "log %d: top-level fields", i)
		for _, k := range []string{"status", "http", "network", "duration", "message", "id"} {
			assert.Equal(t, g[k], f[k], "log %d: %s", i, k)
		}
		gt, ft := strings.Split(g["ddtags"].(string), ","), strings.Split(f["ddtags"].(string), ",")
		assert.ElementsMatch(t, gt, ft, "log %d: ddtags", i)
		fb, _ := json.Marshal(f)
		gb, _ := json.Marshal(g)
		floorBytes, gwBytes = floorBytes+len(fb), gwBytes+len(gb)
	}
	require.Greater(t, compared, len(gw)*3/4)
	assert.InEpsilon(t, gwBytes, floorBytes, 0.05, "bytes per log: gwpipe %d, floor %d", gwBytes/compared, floorBytes/compared)
	// Without it, the floor's logs are the smaller ones of the probe.
	minimal, _ := floorLogs(t, c, false)
	assert.NotContains(t, minimal[0], "http")
}

func TestRunCountsEvents(t *testing.T) {
	c, err := NewCorpus(benchConfig(), 1000)
	require.NoError(t, err)
	r, err := Run(c, 2, false)
	require.NoError(t, err)
	assert.Equal(t, 2*c.Events, r.Events)
	assert.Positive(t, r.OutBytes)
}

// BenchmarkFloor reports the floor's events per CPU-second (run with -cpu 1).
func BenchmarkFloor(b *testing.B) {
	c, err := NewCorpus(benchConfig(), 20000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var r Result
	for b.Loop() {
		if r, err = Run(c, 1, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.EventsPerCPUSecond(), "events/cpu-s")
}

// gwpipeLogs are the logs gwpipe makes of the corpus's events (decode,
// parse, enrich without AWS, render), as the intake reads them.
func gwpipeLogs(t *testing.T, c *Corpus) []map[string]any {
	t.Helper()
	origin := &record.Origin{Source: "firehose", RequestID: "floor", Account: "123456789012", Region: "us-east-1"}
	raw := &record.Batch{ID: "floor", Origin: origin}
	for _, r := range c.Base64 {
		raw.Records = append(raw.Records, record.Record{Origin: origin, Kind: record.KindRaw, Message: r, Timestamp: 1})
	}
	res := decode.New(decode.DefaultConfig(), nil).Decode(raw)
	require.Nil(t, res.Dead)
	parser, err := apigw.New(apigw.DefaultConfig())
	require.NoError(t, err)
	tagger, err := awstags.NewOffline(awstags.DefaultConfig())
	require.NoError(t, err)
	en, err := enrich.New(tagger, enrich.Config{MaxWait: time.Second})
	require.NoError(t, err)
	var out stagetest.Output
	for _, b := range res.Batches {
		for i := range b.Records {
			parser.Parse(b, &b.Records[i])
		}
		require.NoError(t, en.Handle(context.Background(), b, &out))
	}
	var logs []map[string]any
	for _, b := range out.Emitted() {
		for i := range b.Records {
			var l map[string]any
			require.NoError(t, json.Unmarshal(ddlogs.AppendLog(nil, &b.Records[i], ddlogs.Defaults{Source: "apigateway", Service: "apigateway"}), &l))
			logs = append(logs, l)
		}
	}
	return logs
}
