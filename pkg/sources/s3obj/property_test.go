package s3obj

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/stages/decode"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// mixedObject is an object of Firehose records of every kind, in any
// order and framing, and what must come out of it.
type mixedObject struct {
	data []byte
	// what must come out, each exactly once
	ids     []string // events of DATA_MESSAGE envelopes
	lines   []string // log lines
	stages  []string // metric-stream datums read: one point each, tagged stage:<s>
	dead    []string // items dead-lettered, by their bytes
	control int
	unknown int
}

// genObject builds an object from choices: each byte picks the next item,
// its framing and the compression, so that a fuzzer explores them all.
func genObject(choices []byte, metrics bool) mixedObject {
	next := func(n int) int {
		if len(choices) == 0 {
			return 0
		}
		c := int(choices[0])
		choices = choices[1:]
		return c % n
	}
	var o mixedObject
	var items []string
	var isObject []bool
	nItems := 1 + next(24)
	for i := range nItems {
		id := func(j int) string { return fmt.Sprintf("%d%02d", i, j) }
		var it string
		obj := true
		switch k := next(11); k {
		case 0, 1: // a DATA_MESSAGE envelope, messages with escapes
			var evs []ev
			for j := range 1 + next(3) {
				evs = append(evs, ev{id(j), int64(i), fmt.Sprintf("m%d-%d \"quoted\" \\ tab\t nl\n é", i, j)})
				o.ids = append(o.ids, id(j))
			}
			it = string(envelopeDoc(group, fmt.Sprint("s", i), evs...))
		case 2:
			it = controlDoc
			o.control++
		case 3: // an unknown messageType, or a broken envelope
			if next(2) == 0 {
				it = fmt.Sprintf(`{"messageType":"DATA_MESSAGE_V2","logEvents":[{"id":"x%d","timestamp":1,"message":"m"}]}`, i)
				o.unknown++
			} else {
				it = fmt.Sprintf(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"x%d","timestamp":1}]}`, i)
			}
			o.dead = append(o.dead, it)
		case 4: // a JSON access log, maybe with a nested messageType
			it = fmt.Sprintf(`{"requestId":"r%d","status":200,"note":{"messageType":"x"}}`, i)
			if next(2) == 0 {
				it = fmt.Sprintf(`{"requestId":"r%d","status":200}`, i)
			}
			o.lines = append(o.lines, it)
		case 5, 6: // a text line: CLF, or one that starts with an unclosed '{'
			obj = false
			it = fmt.Sprintf(`203.0.113.%d - - [04/Mar/2026:05:06:07 +0000] "GET /p%d HTTP/1.1" 200 5`, i, i)
			if k == 6 {
				it = fmt.Sprintf("{ line %d [is] not \"json", i)
			}
			o.lines = append(o.lines, it)
		case 7: // not text
			obj = false
			it = fmt.Sprintf("bin%d \x00\x01\xff\xfe", i)
			o.dead = append(o.dead, it)
		case 8, 9: // a metric-stream datum
			it = datum(fmt.Sprint("st", i), i+1)
			if metrics {
				o.stages = append(o.stages, fmt.Sprint("st", i))
			} else {
				o.dead = append(o.dead, it)
			}
		case 10: // a datum that cannot be read
			it = fmt.Sprintf(`{"metric_stream_name":"m","namespace":"AWS/ApiGateway","metric_name":"Count","n":%d}`, i)
			o.dead = append(o.dead, it)
		}
		items = append(items, it)
		isObject = append(isObject, obj)
	}
	seps := []string{"\n", "\r\n", "\n\n", "\n \t\n"}
	objSeps := append([]string{"", " ", "\t"}, seps...)
	var parts [][]byte
	for i, it := range items {
		p := it
		if i+1 < len(items) {
			if isObject[i] && isObject[i+1] {
				p += objSeps[next(len(objSeps))]
			} else {
				p += seps[next(len(seps))]
			}
		}
		parts = append(parts, []byte(p))
	}
	switch next(4) {
	case 0:
		o.data = concat(parts...)
	case 1:
		o.data = corpus.Gzip(concat(parts...))
	case 2: // one gzip member per record, as Firehose writes CloudWatch's
		for _, p := range parts {
			o.data = append(o.data, corpus.Gzip(p)...)
		}
	case 3:
		o.data = zst(concat(parts...))
	}
	return o
}

// checkAccounting reads an object and checks that events by id, lines,
// metric points and dead letters account for every item that went in,
// each exactly once.
func checkAccounting(t *testing.T, choices []byte) {
	metrics := len(choices) > 0 && choices[0]%2 == 0
	o := genObject(choices, metrics)
	cfg := Config{EventsPerBatch: 3, Decode: decode.Config{MaxRecordBytes: 160}}
	if metrics {
		cfg.Metrics = streams(t)
	}
	out := readObject(t, o.data, Object{Bucket: "b", Key: "k"}, cfg)
	if out.stats.Layout == LayoutBinary {
		// Half the first bytes are not text: the object is named in one
		// dead letter and nothing of it goes on.
		require.Empty(t, out.events)
		require.Empty(t, out.points)
		require.Len(t, out.dead, 1)
		return
	}

	var ids, lines []string
	for _, e := range out.events {
		if e.EventID != "" {
			ids = append(ids, e.EventID)
		} else {
			lines = append(lines, string(e.Message))
		}
	}
	var stages []string
	for _, p := range out.points {
		for _, tag := range p.Tags {
			if s, ok := strings.CutPrefix(tag, "stage:"); ok {
				stages = append(stages, s)
			}
		}
	}
	var dead []string
	for _, d := range out.dead {
		b, err := base64.StdEncoding.DecodeString(string(d.Message))
		require.NoError(t, err)
		if strings.Contains(d.Reason, "not text") || strings.Contains(d.Reason, MetricStreamsOff) {
			// A run of consecutive items, lines joined by '\n'.
			for _, l := range bytes.Split(b, []byte{'\n'}) {
				dead = append(dead, string(l))
			}
			continue
		}
		dead = append(dead, string(b))
	}
	require.Equal(t, nilIfEmpty(o.ids), nilIfEmpty(ids), "events by id, in order, once")
	require.Equal(t, sorted(o.lines), sorted(lines), "lines, once, exactly as they came")
	require.Equal(t, sorted(o.stages), sorted(stages), "a point per datum")
	require.Equal(t, sorted(o.dead), sorted(dead), "dead letters: %v", out.dead)
	require.EqualValues(t, o.control, out.stats.Control)
	require.EqualValues(t, o.unknown, out.stats.Unknown)
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestMixedObjectsAccountForEverything(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(12, 34))
	for i := range 400 {
		choices := make([]byte, 80)
		for j := range choices {
			choices[j] = byte(rng.UintN(256))
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkAccounting(t, choices) })
	}
}

func FuzzMixedObject(f *testing.F) {
	f.Add([]byte{0, 23, 0, 1, 4, 0, 5, 1, 8, 2, 7, 3, 9, 0, 2})
	f.Add([]byte{1, 10, 8, 0, 9, 1, 7, 2, 7, 0, 3, 1, 2})
	f.Fuzz(checkAccounting)
}
