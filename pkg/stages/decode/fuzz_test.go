package decode

import (
	"bytes"
	"encoding/base64"
	"sort"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// traceLog collects what the stage reports about one record's parts.
type traceLog struct {
	data  []byte
	parts []part
	whole bool
}

func (l *traceLog) add(data []byte, p part) {
	if p.class == partWhole {
		l.whole = true
		return
	}
	if data != nil && l.data == nil {
		l.data = bytes.Clone(data)
	}
	l.parts = append(l.parts, p)
}

// checkAccounting decodes data as one record and checks that every byte of
// it is accounted for, once: the record is dead-lettered whole (and
// nothing else comes out of it), or its decoded bytes are covered, white
// space between items aside, by disjoint parts, each of which became
// exactly what the outputs show: events, a line (its own bytes), metric
// data, a dead letter (its own bytes), or a control message.
func checkAccounting(t *testing.T, rec record.Record) {
	s, _ := newStage()
	s.WithMetricStreams(fakeMetrics{})
	var log traceLog
	s.trace = log.add
	in := rawBatch()
	rec.Origin = in.Origin
	in.Records = []record.Record{rec}
	res := s.Decode(in)
	recs, dead, pts := all(res), deadRecords(res), points(res)

	if log.whole {
		if len(recs) > 0 || len(pts) > 0 || len(dead) != 1 {
			t.Fatalf("a record dead-lettered whole also gave %d records, %d points, %d dead letters", len(recs), len(pts), len(dead))
		}
		want := rec.Message
		if rec.Kind != record.KindRaw {
			want = base64Of(rec.Message)
		}
		if !bytes.Equal(dead[0].Message, want) || dead[0].Kind != record.KindRaw || dead[0].Reason == "" {
			t.Fatalf("the whole dead letter is not the record as delivered: %+v", dead[0])
		}
		return
	}
	data := log.data

	// Top-level parts are disjoint and cover every byte but the white
	// space that separates items.
	var top []part
	for _, p := range log.parts {
		if p.class != partEmpty && !p.sub {
			top = append(top, p)
		}
	}
	sorted := append([]part(nil), top...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].start < sorted[j].start })
	// A byte-order mark that starts the record is no part of any item.
	at := 0
	if bytes.HasPrefix(data, utf8BOM) {
		at = len(utf8BOM)
	}
	for _, p := range sorted {
		if p.start < at || p.end > len(data) || p.start >= p.end {
			t.Fatalf("part %+v overlaps the previous one (which ended at %d) or is out of %d bytes", p, at, len(data))
		}
		if gap := bytes.Trim(data[at:p.start], " \t\r\n"); len(gap) > 0 {
			t.Fatalf("bytes %d..%d (%q) belong to no part", at, p.start, data[at:p.start])
		}
		at = p.end
	}
	if gap := bytes.Trim(data[at:], " \t\r\n"); len(gap) > 0 {
		t.Fatalf("bytes from %d (%q) belong to no part", at, data[at:])
	}
	if len(top) == 0 && len(bytes.Trim(bytes.TrimPrefix(data, utf8BOM), " \t\r\n")) > 0 {
		t.Fatalf("%d bytes and no part", len(data))
	}

	// Outputs follow the parts, in order: no event twice, none dropped.
	next := 0
	deadNext := 0
	var metricSpans []part
	for _, p := range log.parts {
		switch p.class {
		case partEvents:
			if next+p.events > len(recs) {
				t.Fatalf("an envelope of %d events, %d records left", p.events, len(recs)-next)
			}
			next += p.events
		case partLine:
			if next >= len(recs) || !bytes.Equal(recs[next].Message, data[p.start:p.end]) || recs[next].EventID != "" {
				t.Fatalf("line part %q is not the next record", data[p.start:p.end])
			}
			next++
		case partMetric:
			metricSpans = append(metricSpans, p)
		case partDead:
			if deadNext >= len(dead) {
				t.Fatalf("dead part %q is not dead-lettered", data[p.start:p.end])
			}
			got, err := base64.StdEncoding.DecodeString(string(dead[deadNext].Message))
			if err != nil || !bytes.Equal(got, data[p.start:p.end]) || dead[deadNext].Reason == "" {
				t.Fatalf("dead letter %d is %q (%v), the part %q", deadNext, got, err, data[p.start:p.end])
			}
			if p.sub && !within(data, p, metricSpans) {
				t.Fatalf("a bad metric part %+v outside metric data", p)
			}
			deadNext++
		}
	}
	if next != len(recs) {
		t.Fatalf("%d records emitted, %d accounted for by parts", len(recs), next)
	}
	if deadNext != len(dead) {
		t.Fatalf("%d dead letters, %d accounted for by parts", len(dead), deadNext)
	}
	if len(pts) > 0 && len(metricSpans) == 0 {
		t.Fatalf("%d points without metric data", len(pts))
	}
}

// within tells whether p lies in metric data: spans given to the metric
// decoder, one after the other (a run of them is decoded at once).
func within(data []byte, p part, spans []part) bool {
	for i := 0; i < len(spans); i++ {
		start, end := spans[i].start, spans[i].end
		for i+1 < len(spans) && len(bytes.Trim(data[end:spans[i+1].start], " \t\r\n")) == 0 {
			i++
			end = spans[i].end
		}
		if p.start >= start && p.end <= end {
			return true
		}
	}
	return false
}

func FuzzDecode(f *testing.F) {
	f.Add(b64(gz(env)), false)
	f.Add(b64(gz(control+env)), false)
	f.Add([]byte("AAAA"), false)
	f.Add(b64([]byte("line one\nline two")), false)
	f.Add([]byte(env+"\n"+`{"requestId":"r","status":-}`+env), true)
	f.Add([]byte(`{"messageType":"X","logEvents":[]}`+"\n"+`{"metric_stream_name":"s"}{"metric_stream_name":"bad"}`+"\nok\n\xff\xfe"), true)
	f.Add([]byte("{\n \"messageType\": \"DATA_MESSAGE\",\n \"logEvents\": []\n}\n{\n"), true)
	f.Add(append(append([]byte{}, fakeFrames...), "\x00bad"...), true)
	f.Add([]byte("\xef\xbb\xbf"+`{"metric_stream_name":"s"}`+"\nok"), true)
	f.Add([]byte("\xef\xbb\xbf \n"), true)
	f.Fuzz(func(t *testing.T, data []byte, decoded bool) {
		rec := record.Record{Kind: record.KindRaw, Message: data, Timestamp: 42}
		if decoded {
			rec.Kind = record.KindLine
		}
		checkAccounting(t, rec)
		checkOnePass(t, rec)
	})
}
