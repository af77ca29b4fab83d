package ddlogs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func str8(k, v string) record.Attr { return record.StringAttr(k, []byte(v)) }

// checkJSON asserts that b is valid JSON, valid UTF-8, and has no duplicate
// key in any object; it returns b decoded.
func checkJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	require.True(t, json.Valid(b), "invalid JSON: %q", b)
	require.True(t, utf8.Valid(b), "invalid UTF-8: %q", b)
	require.NoError(t, noDuplicateKeys(b), "%s", b)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// noDuplicateKeys walks every object in b and fails on a repeated key.
func noDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("duplicate key %q", key)
				}
				seen[key] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data: %v", err)
	}
	return nil
}

func TestAppendLogGolden(t *testing.T) {
	origin := &record.Origin{Account: "123456789012", LogGroup: "API-Gateway-Execution-Logs_a1b2c3/prod", LogStream: "14ff"}
	d := Defaults{Source: "apigateway", Service: "default-svc", Hostname: "fallback-host", Tags: "env:prod,team:payments"}
	cases := []struct {
		name string
		rec  record.Record
		d    Defaults
		want string
	}{
		{
			name: "access log, attributes merged by prefix",
			rec: record.Record{
				Origin: origin, Timestamp: 1732850000000, Message: []byte(`GET /pets 404`),
				Service: "petstore", Level: record.LevelWarn, Tags: []string{"apiid:a1b2c3", "stage:prod"},
				Attrs: []record.Attr{
					str8("http.method", "GET"),
					record.IntAttr("http.status_code", 404),
					str8("network.client.ip", "203.0.113.7"),
					str8("http.url_details.path", "/pets"),
					record.IntAttr("duration", 31000000),
					record.IntAttr("network.bytes_written", 512),
				},
			},
			d: d,
			want: `{"ddsource":"apigateway","service":"petstore","hostname":"API-Gateway-Execution-Logs_a1b2c3/prod",` +
				`"ddtags":"env:prod,team:payments,apiid:a1b2c3,stage:prod","timestamp":1732850000000,"status":"warn",` +
				`"message":"GET /pets 404",` +
				`"aws":{"awslogs":{"logGroup":"API-Gateway-Execution-Logs_a1b2c3/prod","logStream":"14ff","owner":"123456789012"}},` +
				`"duration":31000000,` +
				`"http":{"method":"GET","status_code":404,"url_details":{"path":"/pets"}},` +
				`"network":{"bytes_written":512,"client":{"ip":"203.0.113.7"}}}`,
		},
		{
			name: "defaults, no origin, no timestamp, no tags",
			rec:  record.Record{Message: []byte("x"), Level: record.LevelError},
			d:    Defaults{Source: "src", Service: "svc", Hostname: "h"},
			want: `{"ddsource":"src","service":"svc","hostname":"h","status":"error","message":"x"}`,
		},
		{
			name: "nothing at all",
			rec:  record.Record{},
			want: `{"status":"info","message":""}`,
		},
		{
			// The default service is the default source's: another source
			// is its own service, as the Datadog Forwarder has it.
			name: "record source overrides default, and is the service",
			rec:  record.Record{Source: "rds", Message: []byte("m"), Timestamp: 5},
			d:    d,
			want: `{"ddsource":"rds","service":"rds","hostname":"fallback-host","ddtags":"env:prod,team:payments","timestamp":5,"status":"info","message":"m"}`,
		},
		{
			name: "a record of the default source takes the default service",
			rec:  record.Record{Source: "apigateway", Message: []byte("m"), Timestamp: 5},
			d:    Defaults{Source: "apigateway", Service: "default-svc"},
			want: `{"ddsource":"apigateway","service":"default-svc","timestamp":5,"status":"info","message":"m"}`,
		},
		{
			name: "a record's own service wins",
			rec:  record.Record{Source: "lambda", Service: "checkout", Message: []byte("m"), Timestamp: 5},
			d:    d,
			want: `{"ddsource":"lambda","service":"checkout","hostname":"fallback-host","ddtags":"env:prod,team:payments","timestamp":5,"status":"info","message":"m"}`,
		},
		{
			name: "reserved keys move under apigateway",
			rec: record.Record{Message: []byte("m"), Attrs: []record.Attr{
				str8("status", "200"), str8("message", "evil"), str8("host", "h"), str8("hostname", "h2"),
				str8("service", "s"), str8("ddsource", "d"), str8("ddtags", "t"), record.IntAttr("timestamp", 1),
				str8("@timestamp", "2024"), str8("source", "src"), str8("status.code", "x"),
				str8("apigateway.stage", "prod"), str8("statusCode", "kept"),
			}},
			want: `{"status":"info","message":"m","apigateway":{"@timestamp":"2024","ddsource":"d","ddtags":"t","host":"h",` +
				`"hostname":"h2","message":"evil","service":"s","source":"src","stage":"prod","status":{"code":"x"},"timestamp":1},"statusCode":"kept"}`,
		},
		{
			name: "duplicates: the later wins; leaf vs object: the object wins",
			rec: record.Record{Message: []byte("m"), Attrs: []record.Attr{
				str8("a.b", "first"), str8("a", "leaf"), str8("a.b", "second"), str8("z", "1"), str8("z", "2"),
				str8("", "empty key skipped"), str8("x.y.z", "deep"), record.IntAttr("x.y", 7),
			}},
			want: `{"status":"info","message":"m","a":{"b":"second"},"x":{"y":{"z":"deep"}},"z":"2"}`,
		},
		{
			name: "segment order keeps groups together",
			rec: record.Record{Message: []byte("m"), Attrs: []record.Attr{
				str8("a.x", "1"), str8("a-b", "2"), str8("a", "3"), str8("a!", "4"), str8("a.a", "5"),
			}},
			want: `{"status":"info","message":"m","a":{"a":"5","x":"1"},"a!":"4","a-b":"2"}`,
		},
		{
			name: "odd keys stay valid",
			rec: record.Record{Message: []byte("m"), Attrs: []record.Attr{
				str8("a..b", "1"), str8(".lead", "2"), str8("trail.", "3"), str8(`q"uo\te`, "4"), str8("ctl\x01", "5"),
			}},
			want: `{"status":"info","message":"m","":{"lead":"2"},"a":{"":{"b":"1"}},"ctl\u0001":"5","q\"uo\\te":"4","trail":{"":"3"}}`,
		},
		{
			name: "value kinds and number validation",
			rec: record.Record{Message: []byte("m"), Attrs: []record.Attr{
				record.IntAttr("i", -42),
				record.NumberAttr("n1", []byte("1.5e3")),
				record.NumberAttr("n2", []byte("-0.25")),
				record.NumberAttr("n3", []byte("01")),
				record.NumberAttr("n4", []byte("1.")),
				record.NumberAttr("n5", []byte("NaN")),
				record.NumberAttr("n6", []byte("")),
				record.NumberAttr("n7", []byte("1e")),
				record.NumberAttr("n8", []byte(" 1")),
				record.BoolAttr("t", true),
				record.BoolAttr("f", false),
				{Key: "null", Kind: record.Null},
				{Key: "unknown", Kind: 200},
				str8("s", ""),
			}},
			want: `{"status":"info","message":"m","f":false,"i":-42,"n1":1.5e3,"n2":-0.25,"n3":"01","n4":"1.","n5":"NaN",` +
				`"n6":"","n7":"1e","n8":" 1","null":null,"s":"","t":true,"unknown":null}`,
		},
		{
			name: "parse error and replay tag",
			rec: record.Record{
				Origin: &record.Origin{LogGroup: "g", Replay: true}, Message: []byte("garbled"), ParseError: "unexpected token at 3",
				Attrs: []record.Attr{str8("gwpipe.stage", "parse"), str8("gwpipe.parse_error", "overwritten")},
			},
			d: Defaults{Tags: "env:prod"},
			want: `{"hostname":"g","ddtags":"env:prod,replay:true","status":"info","message":"garbled",` +
				`"aws":{"awslogs":{"logGroup":"g"}},"gwpipe":{"parse_error":"unexpected token at 3","stage":"parse"}}`,
		},
		{
			name: "replay tag not repeated, empty tags skipped",
			rec:  record.Record{Origin: &record.Origin{Replay: true}, Tags: []string{"", "replay:true", "a:b"}, Message: []byte("m")},
			want: `{"ddtags":"replay:true,a:b","status":"info","message":"m"}`,
		},
		{
			name: "synthetic aws attributes win over user ones, others merge",
			rec: record.Record{
				Origin: &record.Origin{LogGroup: "g", LogStream: "s"}, Message: []byte("m"),
				Attrs: []record.Attr{str8("aws.awslogs.logGroup", "fake"), str8("aws.region", "us-east-1")},
			},
			want: `{"hostname":"g","status":"info","message":"m","aws":{"awslogs":{"logGroup":"g","logStream":"s"},"region":"us-east-1"}}`,
		},
		{
			name: "escaping",
			rec: record.Record{
				Message: []byte("quote\" backslash\\ nl\n cr\r tab\t bs\b ff\f nul\x00 us\x1f del\x7f ls\u2028 ps\u2029 bad\xff\xfe end\xe2\x82 é€😀"),
				Tags:    []string{"k:v\"x"},
				Attrs:   []record.Attr{str8("k", "\x00\"</script>&")},
			},
			want: `{"ddtags":"k:v\"x","status":"info","message":"quote\" backslash\\ nl\n cr\r tab\t bs\b ff\f nul\u0000 us\u001f del` + "\x7f" +
				` ls\u2028 ps\u2029 bad\ufffd\ufffd end\ufffd\ufffd é€😀","k":"\u0000\"</script>&"}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendLog([]byte("prefix"), &tc.rec, tc.d)
			require.True(t, bytes.HasPrefix(got, []byte("prefix")))
			got = got[len("prefix"):]
			assert.Equal(t, tc.want, string(got))
			checkJSON(t, got)
		})
	}
}

func TestAppendLogMessageRoundTrip(t *testing.T) {
	msgs := []string{
		"", "plain", `{"json":"in","json":[1,2]}`, "tab\tand\x01ctl", "\u2028\u2029", "日本語のログ", strings.Repeat("ab\"", 100),
		"ends with multibyte é", "\xc3", "\xe2\x82", "x\x80y", "123456\"8", "1234567\\", "12345678\n",
	}
	for _, m := range msgs {
		got := checkJSON(t, AppendLog(nil, &record.Record{Message: []byte(m)}, Defaults{}))
		assert.Equal(t, strings.ToValidUTF8(m, "\uFFFD") == m, got["message"] == m, "%q", m)
		if utf8.ValidString(m) {
			assert.Equal(t, m, got["message"])
		}
	}
}

func TestAppendLogInvalidUTF8KeysNeverCollide(t *testing.T) {
	rec := &record.Record{Message: []byte("m"), Attrs: []record.Attr{
		str8("k\xff", "1"), str8("k\xfe", "2"), str8("k\uFFFD", "3"), str8("a.\xffb", "4"), str8("a.\xfeb", "5"),
	}}
	got := AppendLog(nil, rec, Defaults{})
	m := checkJSON(t, got)
	assert.Equal(t, "3", m["k\uFFFD"])
	assert.Equal(t, map[string]any{"\uFFFDb": "5"}, m["a"])
}

// The plan cache must never let one record's layout leak into another's.
func TestAppendLogPlanCache(t *testing.T) {
	layouts := [][]string{
		{"http.method", "http.status_code", "network.client.ip"},
		{"b", "a", "a.c"},
		{"status", "x"},
		{"x", "status"},
		{"http.method", "http.status_code"},
		{"http.method", "http.status_code", "network.client.ip", "extra"},
		{},
	}
	origins := []*record.Origin{nil, {LogGroup: "g"}, {LogGroup: "g", LogStream: "s", Account: "1"}}
	var recs []*record.Record
	for i, keys := range layouts {
		for j, o := range origins {
			rec := &record.Record{Origin: o, Message: []byte(fmt.Sprintf("m%d-%d", i, j)), Timestamp: int64(i*10 + j)}
			if j == 1 {
				rec.ParseError = "pe"
			}
			for k, key := range keys {
				rec.Attrs = append(rec.Attrs, str8(key, fmt.Sprintf("v%d%d%d", i, j, k)))
			}
			recs = append(recs, rec)
		}
	}
	// Reference: a fresh renderer per record (no cache).
	want := make([]string, len(recs))
	for i, rec := range recs {
		want[i] = string(new(renderer).withDefaults(Defaults{Source: "s"}, MaxLogBytes).render(rec))
	}
	r := new(renderer).withDefaults(Defaults{Source: "s"}, MaxLogBytes)
	for round := 0; round < 3; round++ {
		for i, rec := range recs {
			require.Equal(t, want[i], string(r.render(rec)), "round %d record %d", round, i)
		}
		for i := len(recs) - 1; i >= 0; i-- {
			require.Equal(t, want[i], string(r.render(recs[i])), "round %d record %d reversed", round, i)
		}
	}
}

func (r *renderer) withDefaults(d Defaults, maxBytes int) *renderer {
	r.d, r.max = d, max(maxBytes, minLogBytes)
	return r
}

func (r *renderer) render(rec *record.Record) []byte {
	b, _ := r.appendLog(nil, rec)
	return b
}

// The header cache must notice tags changed in place and changed defaults.
func TestAppendLogHeaderCache(t *testing.T) {
	tags := []string{"a:1", "b:2"}
	origin := &record.Origin{LogGroup: "g"}
	rec := &record.Record{Origin: origin, Tags: tags, Message: []byte("m")}
	r := new(renderer).withDefaults(Defaults{Tags: "env:prod"}, MaxLogBytes)
	assert.Contains(t, string(r.render(rec)), `"ddtags":"env:prod,a:1,b:2"`)
	tags[1] = "b:3"
	assert.Contains(t, string(r.render(rec)), `"ddtags":"env:prod,a:1,b:3"`)
	origin.Replay = true
	assert.Contains(t, string(r.render(rec)), `"ddtags":"env:prod,a:1,b:3,replay:true"`)
	r.d.Tags = ""
	assert.Contains(t, string(r.render(rec)), `"ddtags":"a:1,b:3,replay:true"`)
	rec.Origin = &record.Origin{LogGroup: "other"}
	assert.Contains(t, string(r.render(rec)), `"hostname":"other","ddtags":"a:1,b:3"`)
	r.d.Service = "svc"
	assert.Contains(t, string(r.render(rec)), `{"service":"svc","hostname":"other"`)
}

func TestAppendLogTruncatesLongMessage(t *testing.T) {
	msg := strings.Repeat("é", MaxLogBytes) // 2 MB, multibyte throughout
	rec := &record.Record{
		Origin: &record.Origin{LogGroup: "g", LogStream: "s", Account: "1"}, Timestamp: 1, Level: record.LevelError,
		Message: []byte(msg), Tags: []string{"t:1"},
		Attrs: []record.Attr{str8("http.method", "GET"), record.IntAttr("http.status_code", 500)},
	}
	got := AppendLog(nil, rec, Defaults{Source: "apigateway", Service: "svc"})
	require.LessOrEqual(t, len(got), MaxLogBytes)
	assert.Greater(t, len(got), MaxLogBytes-16, "the message should use the room left")
	m := checkJSON(t, got)
	assert.True(t, strings.HasPrefix(msg, m["message"].(string)))
	assert.Equal(t, map[string]any{"truncated": true}, m["gwpipe"])
	assert.Equal(t, map[string]any{"method": "GET", "status_code": 500.0}, m["http"])
	assert.Equal(t, "apigateway", m["ddsource"])
	assert.Equal(t, "g", m["hostname"])
	assert.Equal(t, "t:1", m["ddtags"])
	assert.Equal(t, "error", m["status"])
	assert.Equal(t, map[string]any{"awslogs": map[string]any{"logGroup": "g", "logStream": "s", "owner": "1"}}, m["aws"])
}

func TestAppendLogTruncationDropsAttributes(t *testing.T) {
	big := strings.Repeat("x", 700_000)
	rec := &record.Record{
		Message: []byte(strings.Repeat("m", 600_000)), ParseError: strings.Repeat("p", 5000),
		Attrs: []record.Attr{str8("big", big), str8("small", "kept"), str8("dup", "old"), str8("dup", big)},
	}
	got := AppendLog(nil, rec, Defaults{})
	require.LessOrEqual(t, len(got), MaxLogBytes)
	m := checkJSON(t, got)
	assert.Len(t, m["message"], 600_000, "the whole message fits once the big attributes are gone")
	assert.Nil(t, m["big"])
	assert.Nil(t, m["dup"], "dropping a winner must not resurrect an older duplicate")
	assert.Equal(t, "kept", m["small"])
	gw := m["gwpipe"].(map[string]any)
	assert.Equal(t, true, gw["truncated"])
	assert.Len(t, gw["parse_error"], maxParseErrorBytes)

	// Many small attributes: all go, the message stays.
	rec = &record.Record{Message: []byte(strings.Repeat("m", 600_000))}
	for i := range 40_000 {
		rec.Attrs = append(rec.Attrs, str8(fmt.Sprintf("attr.%06d", i), "0123456789"))
	}
	got = AppendLog(nil, rec, Defaults{})
	require.LessOrEqual(t, len(got), MaxLogBytes)
	m = checkJSON(t, got)
	assert.Len(t, m["message"], 600_000)
	assert.Nil(t, m["attr"])
	assert.Equal(t, map[string]any{"truncated": true}, m["gwpipe"])
}

func TestAppendLogTruncationSkeleton(t *testing.T) {
	// Metadata alone is over the limit: only the skeleton is left.
	rec := &record.Record{
		Origin: &record.Origin{LogGroup: strings.Repeat("g", 600_000)}, Tags: []string{strings.Repeat("t", 600_000)},
		Message: []byte(strings.Repeat("\x01", 400_000)), Level: record.LevelWarn, Timestamp: 7,
	}
	got := AppendLog(nil, rec, Defaults{Source: "apigateway"})
	require.LessOrEqual(t, len(got), MaxLogBytes)
	m := checkJSON(t, got)
	assert.Equal(t, "apigateway", m["ddsource"])
	assert.Equal(t, "warn", m["status"])
	assert.Equal(t, 7.0, m["timestamp"])
	assert.Nil(t, m["hostname"])
	assert.NotEmpty(t, m["message"])
	assert.Equal(t, strings.Repeat("\x01", len(m["message"].(string))), m["message"])
}

func TestAppendLogTruncationSmallLimit(t *testing.T) {
	for _, limit := range []int{minLogBytes, 1500, 4096} {
		r := new(renderer).withDefaults(Defaults{Source: "s", Tags: "a:b"}, limit)
		for _, n := range []int{0, 1, 100, 1000, 5000} {
			rec := &record.Record{
				Message: []byte(strings.Repeat("\"é\x00", n)), Origin: &record.Origin{LogGroup: "g"},
				Attrs: []record.Attr{str8("k", strings.Repeat("v", n)), str8("s", "small")},
			}
			got, truncated := r.appendLog(nil, rec)
			require.LessOrEqual(t, len(got), limit, "limit %d n %d", limit, n)
			m := checkJSON(t, got)
			if truncated {
				assert.Equal(t, true, m["gwpipe"].(map[string]any)["truncated"])
			}
		}
	}
}

func TestJoinTags(t *testing.T) {
	assert.Equal(t, "a:1,b:2", JoinTags("a:1", "", ",b:2,"))
	assert.Equal(t, "", JoinTags())
}

func TestEventIDIsRenderedAndWins(t *testing.T) {
	rec := &record.Record{EventID: "31953106606966983378809025079804211143289615424298221568", Message: []byte("m"),
		Attrs: []record.Attr{record.StringAttr("id", []byte("user-id"))}}
	var m map[string]any
	require.NoError(t, json.Unmarshal(AppendLog(nil, rec, Defaults{}), &m))
	assert.Equal(t, rec.EventID, m["id"])
	assert.Equal(t, "user-id", m["apigateway"].(map[string]any)["id"], "an attribute named id moves aside")

	rec.EventID = ""
	m = nil
	require.NoError(t, json.Unmarshal(AppendLog(nil, rec, Defaults{}), &m))
	assert.Equal(t, "user-id", m["id"], "without an event id, id is an ordinary attribute")
}
