package pipeline

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// TestCorpusEndToEnd sends every request of the corpus (pkg/testkit/corpus:
// realistic Firehose requests of CloudWatch Logs envelopes, direct API
// Gateway access logs, metric streams, and bad records) to gwpipe over
// HTTP, one after the other, and checks what reached the fake intake and
// the dead-letter archive against the request's manifest: the logs (by
// event id, or by content for lines without one), the metric-stream points
// by name, the dead letters with their reasons and bytes, and the decode
// stage's counters. The acknowledgement comes after delivery, so once a
// request is answered 200 all of it is there.
func TestCorpusEndToEnd(t *testing.T) {
	h := start(t)
	corpus.EachRequest(t, func(t *testing.T, r corpus.Request, now time.Time) {
		m := r.Manifest
		reqID := "corpus-" + r.Name
		body := r.Body(reqID, now)
		headers := map[string]string{"X-Amz-Firehose-Source-Arn": r.SourceARN}
		if r.ContentEncoding == "gzip" {
			body = gz(body)
			headers["Content-Encoding"] = "gzip"
		}
		logs0, series0, counters0 := len(h.intake.Logs()), len(h.intake.Series()), h.p.Status().Counters

		status, resp := firehoseRequest(t, h.url, reqID, body, headers)
		require.Equal(t, http.StatusOK, status, "%v", resp)

		var ids, lines []string
		for _, l := range h.intake.Logs()[logs0:] {
			id := logID(l)
			if id == "" {
				lines = append(lines, l.Message)
				continue
			}
			ids = append(ids, id)
			if e, ok := m.Event(id); ok && e.Account != "" {
				assert.Contains(t, l.Tags, "aws_account:"+e.Account, "event %s", id)
			}
			if e, ok := m.Event(id); ok && e.Region != "" {
				assert.Contains(t, l.Tags, "region:"+e.Region, "event %s", id)
			}
		}
		assert.ElementsMatch(t, m.EventIDs(), ids, "each event delivered once")
		assert.ElementsMatch(t, m.Lines, lines, "each line delivered once, unchanged")

		points := map[string]int{}
		for _, p := range h.intake.Series()[series0:] {
			if strings.HasPrefix(p.Metric, "aws.") { // metric streams; apigateway.logs.* are derived from the logs
				points[p.Metric]++
			}
		}
		if len(m.MetricPoints) == 0 {
			assert.Empty(t, points)
		} else {
			assert.Equal(t, m.MetricPoints, points, "metric-stream points by name")
		}

		dead := deadLetters(t, h.dlqDir, reqID)
		require.Len(t, dead, len(m.DeadLetters), "dead letters: %+v", dead)
		for i, want := range m.DeadLetters {
			d := dead[i]
			assert.Equal(t, "decode", d.Stage)
			assert.Equal(t, "raw", d.Kind, "replayable: the decode stage reads it again")
			assert.Contains(t, d.Reason, want.Reason)
			data, err := r.DeadData(i)
			require.NoError(t, err)
			assert.Equal(t, data, string(d.Data), "dead letter %d: record %d as Firehose delivered it, or its part", i, want.Record)
		}

		counters := h.p.Status().Counters
		for name, want := range m.Counters() {
			assert.EqualValues(t, want, counters[name]-counters0[name], name)
		}
	})
}

// deadLetters are the archive's entries of one Firehose request, in the
// order they were written.
func deadLetters(t *testing.T, dir, requestID string) []dlq.Entry {
	var out []dlq.Entry
	for _, e := range readDLQ(t, dir) {
		if e.Origin.RequestID == requestID {
			out = append(out, e)
		}
	}
	return out
}
