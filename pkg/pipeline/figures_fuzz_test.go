package pipeline

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
)

// FuzzFiguresAddUp is the property behind the figure tests, for any
// traffic: every record is counted once at each stage it passes (a counter
// with two owners shows up as a figure that does not add up), what each
// stage emits is what the next one takes in, and the totals match what the
// intake and the archive hold.
//
// The plan is read byte by byte: b%6 picks what the current request gets —
// 0 an envelope of 1 to 4 access logs, 1 a control message, 2 a truncated
// gzip record, 3 a plain line, 4 a record that is not base64, 5 ends the
// request — and a byte ≥ 250 makes Firehose send the previous request again.
func FuzzFiguresAddUp(f *testing.F) {
	f.Add([]byte{0, 6, 5, 1, 3, 5, 2, 4, 0})
	f.Add([]byte{18, 5, 250, 0, 5})
	f.Add([]byte{3})
	f.Fuzz(func(t *testing.T, plan []byte) {
		if len(plan) > 40 {
			plan = plan[:40]
		}
		type request struct {
			id   string
			data []string // the records' "data", as sent
		}
		var (
			reqs                                []request
			cur                                 request
			access, lines, control, bad, resent int
		)
		flush := func() {
			if len(cur.data) > 0 {
				reqs = append(reqs, cur)
			}
			cur = request{id: fmt.Sprint("req-", len(reqs))}
		}
		flush()
		b64 := func(p []byte) string { return base64.StdEncoding.EncodeToString(p) }
		for i, b := range plan {
			if b >= 250 {
				flush()
				if len(reqs) > 0 {
					reqs = append(reqs, reqs[len(reqs)-1])
					resent++
				}
				continue
			}
			switch b % 6 {
			case 0:
				var ids []string
				for j := range int(b/6)%4 + 1 {
					ids = append(ids, fmt.Sprintf("e%d-%d", i, j))
				}
				cur.data = append(cur.data, b64(gz(accessEnvelope(ids...))))
				access += len(ids)
			case 1:
				cur.data = append(cur.data, b64(gz(controlEnvelope())))
				control++
			case 2:
				z := gz(accessEnvelope(fmt.Sprint("t", i)))
				cur.data = append(cur.data, b64(z[:len(z)-8]))
				bad++
			case 3:
				cur.data = append(cur.data, b64([]byte(fmt.Sprint("plain line ", i))))
				lines++
			case 4:
				cur.data = append(cur.data, "not base64!")
				bad++
			case 5:
				flush()
			}
		}
		flush()
		if len(reqs) == 0 {
			t.Skip("no request")
		}

		h := start(t, func(c *config.Config) { c.Metrics.AllowedLateness = time.Hour })
		records := 0
		for i, r := range reqs {
			body := fmt.Sprintf(`{"requestId":%q,"timestamp":%d,"records":[{"data":%q}`, r.id, time.Now().UnixMilli(), r.data[0])
			for _, d := range r.data[1:] {
				body += fmt.Sprintf(`,{"data":%q}`, d)
			}
			body += "]}"
			status, resp := firehoseRequest(t, h.url, r.id, []byte(body), nil)
			require.Equal(t, http.StatusOK, status, "%v", resp)
			if i == 0 || reqs[i-1].id != r.id {
				records += len(r.data)
			}
		}
		h.shutdown(t)

		in := intakeHolds(h.intake)
		dead := archived(t, h.dlqDir)
		st := statusJSON(t, h.p)
		n := func(k string) int { v, _ := st[k].(float64); return int(v) }
		events := access + lines
		admitted := len(reqs) - resent

		assert.Equal(t, len(reqs), n("counters.firehose.status.200"))
		assert.Equal(t, resent, n("counters.firehose.duplicate_requests"))
		assert.Equal(t, admitted, n("stages.ingest.batches"))
		for _, k := range []string{"stages.ingest.records_in", "stages.ingest.records_out", "stages.decode.records_in"} {
			assert.Equal(t, records, n(k), k)
		}
		assert.Equal(t, control, n("stages.decode.dropped"))
		assert.Equal(t, control, n("counters.decode.control_messages"))
		assert.Equal(t, bad, n("stages.decode.dead_lettered"))
		assert.Equal(t, nonZero(map[string]int{"decode": bad}), nonZero(dead))
		for _, k := range []string{"stages.decode.records_out", "stages.parse.records_in", "stages.parse.records_out", "stages.enrich.records_in",
			"stages.enrich.records_out", "stages.deliver-logs.records_in", "stages.derive.records_in", "counters.deliver_logs.logs_submitted", "counters.deliver_logs.logs_accepted"} {
			assert.Equal(t, events, n(k), k)
		}
		assert.Equal(t, events, in.logs)
		assert.Equal(t, access, n("counters.derive.records"))
		assert.Equal(t, lines, n("counters.derive.ignored"))
		points := in.series + in.dists
		for _, k := range []string{"counters.derive.points_emitted", "stages.derive.records_out", "stages.deliver-metrics.records_in", "counters.deliver_metrics.points_submitted"} {
			if access == 0 && st[k] == nil {
				continue // no metric stage ever ran
			}
			assert.Equal(t, points, n(k), k)
		}
		for k, v := range st {
			for _, zero := range []string{".errors", ".in_flight", ".handed_back", ".lost", "logs_dropped", "logs_rejected", "retries"} {
				if strings.HasSuffix(k, zero) {
					assert.Zero(t, v, k)
				}
			}
		}

		sum := summaryLines(t, h.p)
		assert.Equal(t, fmt.Sprintf("%d acknowledged, 0 refused, 0 timed out, 0 failed, 0 handed back, %d duplicates", len(reqs), resent), sum["firehose requests"])
		assert.Equal(t, fmt.Sprint(records), sum["firehose records in"])
		assert.Equal(t, fmt.Sprintf("%d (control messages dropped: %d)", events, control), sum["events decoded"])
		assert.Equal(t, fmt.Sprint(events), sum["logs delivered (2xx)"])
		wantDead := fmt.Sprintf("%d written to %s", bad, h.dlqDir)
		if bad > 0 {
			wantDead += fmt.Sprintf(" (decode %d)", bad)
		}
		assert.Equal(t, wantDead, sum["dead-lettered"])
	})
}

func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
