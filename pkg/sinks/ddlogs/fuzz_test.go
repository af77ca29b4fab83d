package ddlogs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// FuzzAppendLog renders random records: the output must always be valid
// JSON without duplicate keys, never exceed the limit, and keep the message
// unchanged when it is valid UTF-8 and the log was not truncated.
//
// keys holds attribute keys separated by '|'; each takes its value from
// value, with a kind chosen by kinds. limitSel picks the per-log limit, small
// ones so that truncation is exercised with small inputs.
func FuzzAppendLog(f *testing.F) {
	f.Add([]byte("GET /pets 200"), "http.method|http.status_code|network.client.ip", []byte("GET"), "apiid:x|stage:prod", "g", "", uint8(0), uint8(0), false)
	f.Add([]byte("\"\\\x00\u2028\xff"), "a|a.b|a|status|.|..|a.", []byte("1.5e3"), "", "", "parse", uint8(0x1b), uint8(1), true)
	f.Add([]byte(strings.Repeat("é\"", 700)), "x.y|x|x.y.z|message|@timestamp", []byte("\x01\xfe"), "t:\"", "grp\n", "", uint8(0xe4), uint8(2), false)
	f.Add([]byte{}, "", []byte{}, "", "", "", uint8(0), uint8(3), false)
	f.Add([]byte("m"), "k\xff|k\xfe|k\uFFFD", []byte("NaN"), "", "", "", uint8(0x92), uint8(0), true)

	limits := []int{MaxLogBytes, minLogBytes, 1100, 2048}
	f.Fuzz(func(t *testing.T, msg []byte, keys string, value []byte, tags, logGroup, parseErr string, kinds, limitSel uint8, replay bool) {
		rec := &record.Record{
			Message: msg, Timestamp: int64(len(msg)) * 1000, Level: record.Level(kinds % 3),
			ParseError: parseErr,
			Origin:     &record.Origin{LogGroup: logGroup, LogStream: tags, Account: keys, Replay: replay},
		}
		if tags != "" {
			rec.Tags = strings.Split(tags, "|")
		}
		if keys != "" {
			for i, k := range strings.Split(keys, "|") {
				a := record.Attr{Key: k, Kind: record.ValueKind((int(kinds) + i) % 6), Str: value, Int: int64(i) - 1}
				rec.Attrs = append(rec.Attrs, a)
			}
		}
		limit := limits[int(limitSel)%len(limits)]
		r := new(renderer).withDefaults(Defaults{Source: "apigateway", Service: string(value), Tags: "env:fuzz"}, limit)
		for range 2 { // twice: the second time through the plan and header caches
			out, truncated := r.appendLog([]byte("x"), rec)
			out = out[1:]
			require.LessOrEqual(t, len(out), limit)
			require.True(t, json.Valid(out), "%q", out)
			require.True(t, utf8.Valid(out))
			require.NoError(t, noDuplicateKeys(out), "%s", out)
			if !truncated && utf8.Valid(msg) {
				var m struct{ Message string }
				require.NoError(t, json.Unmarshal(out, &m))
				require.Equal(t, string(msg), m.Message)
			}
		}
		// The public entry point agrees with the renderer at the default limit.
		if limit == MaxLogBytes {
			out, _ := new(renderer).withDefaults(Defaults{Source: "apigateway", Service: string(value), Tags: "env:fuzz"}, limit).appendLog(nil, rec)
			require.Equal(t, string(out), string(AppendLog(nil, rec, Defaults{Source: "apigateway", Service: string(value), Tags: "env:fuzz"})))
		}
	})
}
