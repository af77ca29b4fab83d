package decode

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// choices reads decisions from fuzz bytes (0 once they run out), so that
// the fuzzer explores records by mutating what they are made of.
type choices struct{ b []byte }

func (c *choices) pick(n int) int {
	if len(c.b) == 0 || n <= 1 {
		return 0
	}
	v := int(c.b[0]) % n
	c.b = c.b[1:]
	return v
}

// genKind is a kind of item a record may hold.
type genKind int

const (
	genData       genKind = iota // DATA_MESSAGE: its events
	genControl                   // CONTROL_MESSAGE: counted, dropped
	genUnknown                   // unknown messageType: dead
	genBroken                    // DATA_MESSAGE with an event without message: dead
	genAccessJSON                // access log with "-" numbers (invalid JSON): a line
	genCLF                       // text access log: a line
	genNested                    // valid JSON, messageType nested, not an envelope: a line
	genMetric                    // metric-stream line: a point
	genBadMetric                 // metric-stream line that cannot be read: dead
	genNotText                   // invalid UTF-8: dead alone
	genPretty                    // pretty-printed DATA_MESSAGE: its events
	genKinds
)

// isObject: the item is one JSON object that may share its line with
// other such objects ({..}{..}). Metric lines do not (a real metric
// stream writes one per line; the fake decoder reads by line).
func (k genKind) isObject() bool {
	switch k {
	case genData, genControl, genUnknown, genBroken, genAccessJSON, genNested:
		return true
	}
	return false
}

// genRecord is a decoded record built from items, and what must come out.
type genRecord struct {
	payload []byte
	events  []string // ids, in order
	out     []string // emitted records in order: "id:<id>" or "line:<text>"
	dead    []string // dead parts' bytes, in order
	points  int
	control int64
	unknown int64
	nonText int64
	whole   bool // nothing can come out but dead letters: the record is dead whole
	empty   bool
}

var eventTexts = []string{
	`plain`, `{\"requestId\":\"r\",\"status\":200}`, `brace }{ inside`, `line\nbreak`, `caf\u00e9 \ud83d\ude00`,
	`{\"messageType\":\"DATA_MESSAGE\"}`, `(id) Method completed with status: 200`, ``,
}

func generate(c *choices) genRecord {
	var g genRecord
	var sb strings.Builder
	var notTextItems []string
	total, bad, good, ids := 0, 0, 0, 0
	n := c.pick(9)
	prev := genKinds
	for i := 0; i < n; i++ {
		k := genKind(c.pick(int(genKinds)))
		if i > 0 {
			seps := []string{"\n", "\r\n", "\n\n", "\n \t\n"}
			if k.isObject() && prev.isObject() {
				seps = append(seps, "", " ", "\t ")
			}
			sb.WriteString(seps[c.pick(len(seps))])
		}
		prev = k
		var item string
		switch k {
		case genData, genPretty:
			var evs []string
			for range c.pick(4) {
				ids++
				id := fmt.Sprintf("e%d", ids)
				msg := eventTexts[c.pick(len(eventTexts))]
				evs = append(evs, fmt.Sprintf(`{"id":%q,"timestamp":%d,"message":"%s"}`, id, 1700000000000+ids, msg))
				g.events = append(g.events, id)
				g.out = append(g.out, "id:"+id)
			}
			item = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[` + strings.Join(evs, ",") + `]}`
			if k == genPretty {
				item = strings.ReplaceAll(item, `,"`, ",\n  \"")
			}
			good++
		case genControl:
			item = control
			g.control++
			good++
		case genUnknown:
			item = `{"messageType":"SOMETHING_NEW","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"u","timestamp":1,"message":"m"}]}`
			g.dead = append(g.dead, item)
			g.unknown++
		case genBroken:
			item = `{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"x","timestamp":1}]}`
			g.dead = append(g.dead, item)
		case genAccessJSON:
			item = fmt.Sprintf(`{"requestId":"r-%d","status":200,"responseLength":-}`, i)
			g.out = append(g.out, "line:"+item)
			good++
		case genCLF:
			item = fmt.Sprintf(`203.0.113.7 - - [29/Jun/2023:12:01:02 +0000] "GET /pets/%d HTTP/1.1" 200 5 r-%d`, i, i)
			g.out = append(g.out, "line:"+item)
			good++
		case genNested:
			item = fmt.Sprintf(`{"level":"info","n":%d,"event":{"messageType":"DATA_MESSAGE","logEvents":[]}}`, i)
			g.out = append(g.out, "line:"+item)
			good++
		case genMetric:
			item = fmt.Sprintf(`{"metric_stream_name":"s","namespace":"AWS/ApiGateway","metric_name":"Count","n":%d}`, i)
			g.points++
			good++
		case genBadMetric:
			item = `{"metric_stream_name":"s","namespace":"bad"}`
			g.dead = append(g.dead, item)
		case genNotText:
			item = fmt.Sprintf("caf\xe9 %d \xff", i)
			notTextItems = append(notTextItems, item)
			bad += len(item)
			g.nonText++
		}
		total += len(item)
		sb.WriteString(item)
	}
	if c.pick(2) == 1 {
		sb.WriteString("\n")
	}
	g.payload = []byte(sb.String())
	g.dead = append(g.dead, notTextItems...)
	switch {
	case total == 0:
		g.empty = true
	case bad > 0 && 2*bad >= total:
		g.whole = true
		g.control, g.unknown, g.nonText = 0, 0, 0
	case good == 0:
		g.whole = true
	}
	return g
}

// frame wraps a payload as a source may deliver it: plain, gzip, or gzip
// members cut anywhere; base64 text (KindRaw) or bytes (KindLine).
func frame(c *choices, payload []byte) record.Record {
	data := payload
	switch c.pick(3) {
	case 1:
		data = gz(string(payload))
	case 2:
		var out []byte
		for rest := payload; ; {
			n := min(len(rest), 1+c.pick(len(rest)+1))
			out = append(out, gz(string(rest[:n]))...)
			rest = rest[n:]
			if len(rest) == 0 {
				break
			}
		}
		data = out
	}
	if c.pick(4) == 0 {
		return record.Record{Kind: record.KindLine, Message: data, Timestamp: 42}
	}
	return record.Record{Kind: record.KindRaw, Message: b64(data), Timestamp: 42}
}

// checkGenerated decodes a generated record and checks that what comes out
// is exactly what went in: every event once, in order, every line once,
// every bad part dead-lettered with its bytes, the counters exact.
func checkGenerated(t *testing.T, c *choices) {
	g := generate(c)
	rec := frame(c, g.payload)
	s, reg := newStage()
	s.WithMetricStreams(fakeMetrics{})
	in := rawBatch()
	rec.Origin = in.Origin
	in.Records = []record.Record{rec}
	res := s.Decode(in)
	checkOnePass(t, rec)

	dead := deadRecords(res)
	if g.whole {
		require.Empty(t, all(res), "payload %q", g.payload)
		require.Empty(t, points(res))
		require.Len(t, dead, 1, "payload %q", g.payload)
		want := rec.Message
		if rec.Kind != record.KindRaw {
			want = b64(rec.Message)
		}
		require.Equal(t, want, dead[0].Message, "dead whole, as delivered")
	} else {
		var out []string
		for _, r := range all(res) {
			if r.EventID != "" {
				out = append(out, "id:"+r.EventID)
			} else {
				out = append(out, "line:"+string(r.Message))
			}
		}
		require.Equal(t, g.out, out, "payload %q", g.payload)
		require.Len(t, points(res), g.points, "payload %q", g.payload)
		var gotDead []string
		for _, d := range dead {
			require.Equal(t, record.KindRaw, d.Kind)
			b, err := base64.StdEncoding.DecodeString(string(d.Message))
			require.NoError(t, err)
			gotDead = append(gotDead, string(b))
		}
		require.Equal(t, g.dead, nilIfEmpty(gotDead), "payload %q", g.payload)
	}
	require.Equal(t, g.control, reg.Value("decode.control_messages"), "payload %q", g.payload)
	require.Equal(t, g.unknown, reg.Value("decode.unknown_message_types"), "payload %q", g.payload)
	require.Equal(t, g.nonText, reg.Value("decode.non_text_lines"), "payload %q", g.payload)
	if g.empty {
		require.EqualValues(t, 1, reg.Value("decode.empty_records"))
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// For any concatenation of envelopes, lines and metric-stream lines, gzip
// or not, what comes out is what went in (issue 12, items 1 to 4).
func TestAnyConcatenationComesOutAsItWentIn(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 12))
	for range 3000 {
		checkGenerated(t, &choices{randomBytes(rng, 64)})
	}
}

func FuzzMixedRecords(f *testing.F) {
	rng := rand.New(rand.NewPCG(2, 12))
	for range 8 {
		f.Add(randomBytes(rng, 48))
	}
	f.Add(bytes.Repeat([]byte{byte(genNotText)}, 20))
	f.Fuzz(func(t *testing.T, b []byte) { checkGenerated(t, &choices{b}) })
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}
