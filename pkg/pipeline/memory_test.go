package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// smallBudget scales the memory budget down so that a test's traffic
// overflows it.
func smallBudget(c *config.Config) {
	c.Pipeline.MaxHeldBytes, c.Pipeline.IngestHighWaterBytes = 8<<20, 4<<20
}

func TestManyLargeSendersAreHeldBackThenDeliveredOnce(t *testing.T) {
	h := start(t, smallBudget)
	cfg := loadConfig(h, 120_000, 5)
	cfg.Concurrency = 24
	cfg.RecordsPerRequest, cfg.EventsPerRecord = 200, 50 // ~10,000 events, ~500 KB a request
	rep, err := loadgen.Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, int64(120_000), rep.EventsAcked, "%+v", rep)
	assert.Positive(t, rep.Statuses["429"], "the senders were pushed back: %v", rep.Statuses)

	logs := h.intake.Logs()
	seen := make(map[string]bool, len(logs))
	for _, l := range logs {
		require.False(t, seen[logID(l)], "event %s delivered twice", logID(l))
		seen[logID(l)] = true
	}
	assert.Len(t, seen, 120_000, "every event delivered exactly once")

	st := h.p.Status()
	assert.LessOrEqual(t, st.Gauges["memory.peak_bytes"], int64(8<<20), "the process never held more than its budget")
	assert.Positive(t, st.Counters["memory.refused"])
	assert.Positive(t, st.Counters["firehose.status.429"])
	assertNothingHeld(t, h)
}

// assertNothingHeld waits for the last acknowledgement's hooks (they run
// just after the answer) and checks that the budget is empty.
func assertNothingHeld(t *testing.T, h *harness) {
	t.Helper()
	assert.Eventually(t, func() bool { return h.p.Status().Gauges["memory.held_bytes"] == 0 }, 5*time.Second, time.Millisecond,
		"everything delivered, nothing held: %+v", h.p.Status().Gauges)
}

// bombRecords reads the events of each record of a Firehose request body.
func bombRecords(t *testing.T, body []byte) (datas []string, events []int) {
	t.Helper()
	var req struct{ Records []struct{ Data string } }
	require.NoError(t, json.Unmarshal(body, &req))
	for _, r := range req.Records {
		raw, err := base64.StdEncoding.DecodeString(r.Data)
		require.NoError(t, err)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		require.NoError(t, err)
		dec := json.NewDecoder(zr)
		n := 0
		for {
			var env struct{ LogEvents []json.RawMessage }
			if err := dec.Decode(&env); err == io.EOF {
				break
			} else {
				require.NoError(t, err)
			}
			n += len(env.LogEvents)
		}
		datas, events = append(datas, r.Data), append(events, n)
	}
	return datas, events
}

func TestADecompressionBombIsAnsweredHonestly(t *testing.T) {
	const (
		perRecord  = 1 << 20
		perRequest = 4 << 20
	)
	h := start(t, smallBudget, func(c *config.Config) {
		c.Decode.MaxDecompressedBytes = perRecord
		c.Decode.MaxUnitDecompressedBytes = perRequest
	})
	// Twelve records of well-formed events, each within the per-record
	// limit, 10.8 MB together: the first four fit the request's allowance.
	bomb, total, err := loadgen.Bomb(loadgen.BombConfig{ID: "bomb", Records: 12, RecordBytes: 900_000, AccessKey: firehoseKey})
	require.NoError(t, err)
	datas, events := bombRecords(t, bomb.Body)
	require.Len(t, events, 12)
	fits := events[0] + events[1] + events[2] + events[3]

	sender, err := loadgen.NewSender(loadgen.Config{URL: h.url, AccessKey: firehoseKey, RetryDuration: -1})
	require.NoError(t, err)
	require.NoError(t, sender.Send(context.Background(), bomb), "answered 200: every record was delivered or dead-lettered")
	assert.Equal(t, map[string]int64{"200": 1}, sender.Report().Statuses)

	logs := h.intake.Logs()
	assert.Len(t, logs, fits, "the records within the allowance are delivered")
	dead := readDLQ(t, h.dlqDir)
	require.Len(t, dead, 8, "the others are dead-lettered, each with its reason")
	for i, e := range dead {
		assert.Equal(t, "decode", e.Stage)
		assert.Contains(t, e.Reason, "decode.max_request_decompressed_bytes")
		assert.Equal(t, "raw", e.Kind)
		assert.Equal(t, datas[4+i], string(e.Data), "as Firehose sent it, for a replay")
	}
	assert.Equal(t, total, fits+events[4]+events[5]+events[6]+events[7]+events[8]+events[9]+events[10]+events[11])

	// What the process held: its budget, plus the buffers of the one large
	// record decoded at a time.
	st := h.p.Status()
	assert.LessOrEqual(t, st.Gauges["memory.peak_bytes"], int64(8<<20+3*perRecord))
	assertNothingHeld(t, h)
}

func TestAStalledBodyIsCutAndHoldsNothing(t *testing.T) {
	h := start(t, smallBudget, func(c *config.Config) { c.Sources.Firehose.BodyReadTimeout = 300 * time.Millisecond })
	// A client announces 64 MiB, sends a few bytes and stalls.
	conn, err := net.Dial("tcp", h.p.FirehoseAddr())
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: gwpipe\r\nX-Amz-Firehose-Protocol-Version: 1.0\r\nX-Amz-Firehose-Request-Id: stalled\r\n"+
		"X-Amz-Firehose-Access-Key: %s\r\nContent-Length: %d\r\n\r\n{\"requestId\":\"stalled\",\"records\":[{\"data\":\"QUJD", firehoseKey, 64<<20)

	// Meanwhile legitimate traffic flows: the budget is 8 MiB.
	rep, err := loadgen.Run(context.Background(), loadConfig(h, 5_000, 9))
	require.NoError(t, err)
	assert.Equal(t, int64(5_000), rep.EventsAcked)

	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	line, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 408 Request Timeout", strings.TrimSpace(line))
	assertNothingHeld(t, h)
	// The stalled request, plus any of the generator's that a loaded
	// machine made as slow (cut too, and retried by the generator).
	assert.Equal(t, 1+rep.Statuses["408"], h.p.Status().Counters["firehose.status.408"])
}
