package fakeintake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogsPayloadValidation(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	tests := []struct {
		name   string
		body   []byte
		status int
		detail string // substring of the error detail
	}{
		{"array", []byte(`[{"message":"a"},{"message":"b","x":{"y":[1,2.5,null,true]}}]`), 202, ""},
		{"single object", []byte(`{"message":"a"}`), 202, ""},
		{"empty message", []byte(`[{"message":""}]`), 202, ""},
		{"whitespace around", []byte(" \n[ {\"message\" : \"a\"} ]\n"), 202, ""},
		{"exactly 1000 entries", logsPayload(MaxLogEntries, 10), 202, ""},
		{"1001 entries", logsPayload(MaxLogEntries+1, 10), 400, "too many log entries"},
		{"empty array", []byte(`[]`), 400, "no log entries"},
		{"empty body", nil, 400, "malformed JSON"},
		{"malformed", []byte(`[{"message":"a"`), 400, "malformed JSON"},
		{"trailing garbage", []byte(`[{"message":"a"}] x`), 400, "malformed JSON"},
		{"two documents", []byte(`{"message":"a"}{"message":"b"}`), 400, "malformed JSON"},
		{"bad escape", []byte(`[{"message":"a\q"}]`), 400, "malformed JSON"},
		{"raw control char", []byte("[{\"message\":\"a\x01\"}]"), 400, "malformed JSON"},
		{"raw control char before an escape", []byte("[{\"message\":\"\v\\b\"}]"), 400, "control character"},
		{"raw control char in a key", []byte("[{\"message\":\"a\",\"k\x01\\n\":1}]"), 400, "control character"},
		{"raw newline in a string", []byte("[{\"message\":\"a\n\\t\"}]"), 400, "malformed JSON"},
		{"NaN", []byte(`[{"message":"a","v":NaN}]`), 400, "malformed JSON"},
		{"bad number", []byte(`[{"message":"a","v":1-2}]`), 400, "malformed JSON"},
		{"too deep", []byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000)), 400, "malformed JSON"},
		{"not an array", []byte(`"message"`), 400, "JSON array of log objects"},
		{"item not an object", []byte(`[{"message":"a"},"b"]`), 400, "log 1: not a JSON object"},
		{"no message", []byte(`[{"msg":"a"}]`), 400, `log 0: missing string field "message"`},
		{"message not a string", []byte(`[{"message":42}]`), 400, `log 0: missing string field "message"`},
		{"message null", []byte(`[{"message":null}]`), 400, `missing string field "message"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.post(logsPath, tt.body)
			require.Equal(t, tt.status, r.status, "body %s", r.body)
			if tt.status == http.StatusAccepted {
				assert.Equal(t, `{}`, string(r.body))
				return
			}
			status, title, detail := logsError(t, r.body)
			assert.Equal(t, "400", status)
			assert.Equal(t, "Bad Request", title)
			assert.Contains(t, detail, tt.detail)
		})
	}
}

func TestLogsNothingRecordedOnRejection(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	// The first log is fine, the second is not: nothing may be kept.
	r := c.post(logsPath, []byte(`[{"message":"ok"},{"nomessage":true}]`))
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Empty(t, s.Logs())
	assert.Zero(t, s.Stats().LogsAccepted)
}

// sizedLogs returns a logs payload of exactly size bytes, made of logs small
// enough not to be truncated.
func sizedLogs(t testing.TB, size int) []byte {
	t.Helper()
	const perLog = 512 << 10
	var b bytes.Buffer
	b.WriteByte('[')
	for b.Len()+perLog < size {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(`{"message":"`)
		b.WriteString(strings.Repeat("m", perLog-len(`{"message":""},`)))
		b.WriteString(`"}`)
	}
	b.WriteByte(']')
	return padJSON(t, b.Bytes(), size)
}

func TestLogsSizeLimits(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	tests := []struct {
		name   string
		size   int
		enc    string
		status int
	}{
		{"identity at the limit", MaxLogsPayloadBytes, "identity", 202},
		{"identity one byte over", MaxLogsPayloadBytes + 1, "identity", 413},
		{"gzip decompressing to the limit", MaxLogsPayloadBytes, "gzip", 202},
		{"gzip decompressing one byte over", MaxLogsPayloadBytes + 1, "gzip", 413},
		{"zstd decompressing one byte over", MaxLogsPayloadBytes + 1, "zstd", 413},
		{"deflate decompressing one byte over", MaxLogsPayloadBytes + 1, "deflate", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, header := encode(t, tt.enc, sizedLogs(t, tt.size))
			r := c.post(logsPath, body, "Content-Encoding", header)
			require.Equal(t, tt.status, r.status, "body %.200s", r.body)
			if tt.status == http.StatusRequestEntityTooLarge {
				status, title, _ := logsError(t, r.body)
				assert.Equal(t, "413", status)
				assert.Equal(t, "Request Entity Too Large", title)
			}
		})
	}
}

// TestLogsCompressionBomb checks that a small body decompressing to far more
// than the limit is refused with 413 without being decompressed in full.
func TestLogsCompressionBomb(t *testing.T) {
	const bombSize = 64 << 20 // 64 MiB of spaces compresses to about 64 KiB
	plain := bytes.Repeat([]byte(" "), bombSize)
	bombs := map[string][]byte{}
	headers := map[string]string{}
	for _, enc := range []string{"gzip", "deflate", "deflate-raw", "zstd"} {
		bombs[enc], headers[enc] = encode(t, enc, plain)
		require.Less(t, len(bombs[enc]), MaxLogsPayloadBytes, enc)
	}
	plain = nil //nolint:ineffassign // release before measuring
	_, c := start(t, Config{})

	for enc, body := range bombs {
		t.Run(enc, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := c.post(logsPath, body, "Content-Encoding", headers[enc])
			runtime.ReadMemStats(&after)
			require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "body %s", r.body)
			_, _, detail := logsError(t, r.body)
			assert.Contains(t, detail, "decompressed body exceeds")
			// The 5 MiB limit plus buffer growth and decoder state; far below
			// the 64 MiB or more a full decompression would take.
			allocated := after.TotalAlloc - before.TotalAlloc
			assert.Less(t, allocated, uint64(48<<20), "allocated %d MiB", allocated>>20)
			t.Logf("allocated %d MiB", allocated>>20)
		})
	}
}

func TestLogsOversizedContentLength(t *testing.T) {
	t.Parallel()
	_, c := start(t, Config{})
	// The server refuses on the declared length, before reading the body.
	r := c.post(logsPath, make([]byte, MaxLogsPayloadBytes+100))
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.status)
}

func TestLogsTruncation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		unit     string // repeated to build the message
		extra    string // other attributes, JSON members with a leading comma
		wantMsg  func(t *testing.T, msg string)
		wantSize func(t *testing.T, raw int)
	}{
		{
			name: "ascii message",
			unit: "a",
			wantMsg: func(t *testing.T, msg string) {
				assert.Greater(t, len(msg), MaxLogBytes-100, "keeps as much as fits")
			},
		},
		{
			name:  "multi-byte runes are not split",
			unit:  "é€😀",
			extra: `,"service":"svc","http":{"status_code":200}`,
			wantMsg: func(t *testing.T, msg string) {
				assert.True(t, utf8.ValidString(msg))
			},
		},
		{
			name: "escaped characters count at their encoded size",
			unit: "\"\\\n\u0001",
			wantMsg: func(t *testing.T, msg string) {
				assert.True(t, strings.HasPrefix(msg, "\"\\\n\u0001"), "len %d %q", len(msg), msg[:min(len(msg), 20)])
			},
		},
		{
			name:  "attributes alone over the limit empty the message",
			unit:  "a",
			extra: `,"big":"` + strings.Repeat("b", MaxLogBytes) + `"`,
			wantMsg: func(t *testing.T, msg string) {
				assert.Empty(t, msg)
			},
			wantSize: func(t *testing.T, raw int) {
				assert.Greater(t, raw, MaxLogBytes)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := start(t, Config{})
			msg := strings.Repeat(tt.unit, (3*MaxLogBytes/2)/len(tt.unit)+1)
			big, err := json.Marshal(map[string]any{"message": msg})
			require.NoError(t, err)
			big = append(big[:len(big)-1], tt.extra+`,"after":"kept"}`...)
			body := append(append([]byte(`[{"message":"small"},`), big...), ']')
			gz, header := encode(t, "gzip", body)

			r := c.post(logsPath, gz, "Content-Encoding", header)
			require.Equal(t, http.StatusAccepted, r.status, "body %s", r.body)

			logs := s.Logs()
			require.Len(t, logs, 2)
			assert.False(t, logs[0].Truncated)
			assert.Equal(t, "small", logs[0].Message)

			l := logs[1]
			assert.True(t, l.Truncated)
			assert.True(t, json.Valid(l.Raw), "truncated log is valid JSON")
			assert.True(t, strings.HasPrefix(msg, l.Message), "message is a prefix of the original")
			assert.LessOrEqual(t, len(l.Message), MaxLogBytes)
			if tt.wantSize != nil {
				tt.wantSize(t, len(l.Raw))
			} else {
				assert.LessOrEqual(t, len(l.Raw), MaxLogBytes)
			}
			tt.wantMsg(t, l.Message)
			after, ok := l.Lookup("after")
			assert.True(t, ok)
			assert.Equal(t, "kept", after, "other attributes survive")
			assert.Equal(t, int64(1), s.Stats().LogsTruncated)
		})
	}
}

func TestLogFields(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	body := []byte(`[
	 {"message":"m1","status":"error","ddsource":"apigateway","service":"orders","hostname":"gw/prod",
	  "ddtags":"env:prod, apiid:abc,,","timestamp":1700000000123,"http":{"status_code":502}},
	 {"message":"m2","host":"fallback-host","timestamp":"2026-03-14T15:09:26.5Z"},
	 {"message":"m3","timestamp":"1700000000999"}
	]`)
	r := c.post(logsPath+"?ddtags=team:payments", body)
	require.Equal(t, http.StatusAccepted, r.status)

	logs := s.Logs()
	require.Len(t, logs, 3)
	l := logs[0]
	assert.Equal(t, "m1", l.Message)
	assert.Equal(t, "error", l.Status)
	assert.Equal(t, "apigateway", l.Source)
	assert.Equal(t, "orders", l.Service)
	assert.Equal(t, "gw/prod", l.Hostname)
	assert.Equal(t, []string{"env:prod", "apiid:abc", "team:payments"}, l.Tags)
	assert.Equal(t, time.UnixMilli(1700000000123).UTC(), l.Timestamp)
	assert.Equal(t, testNow, l.Received)
	code, ok := l.Lookup("http", "status_code")
	assert.True(t, ok)
	assert.Equal(t, 502.0, code)
	_, ok = l.Lookup("http", "nope")
	assert.False(t, ok)
	assert.JSONEq(t, `{"message":"m1","status":"error","ddsource":"apigateway","service":"orders",
	  "hostname":"gw/prod","ddtags":"env:prod, apiid:abc,,","timestamp":1700000000123,"http":{"status_code":502}}`,
		string(l.Raw))

	assert.Equal(t, "fallback-host", logs[1].Hostname)
	assert.Equal(t, time.Date(2026, 3, 14, 15, 9, 26, 5e8, time.UTC), logs[1].Timestamp)
	assert.Equal(t, []string{"team:payments"}, logs[1].Tags)
	assert.Equal(t, time.UnixMilli(1700000000999).UTC(), logs[2].Timestamp)
}

func TestRawPreservesEscapes(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	// Escapes fastjson would re-encode with Go rules (\u0000 → \x00) must
	// survive verbatim.
	body := []byte(`[{"message":"nul \u0000 and \u2028 \"q\" <tag>","k\u0000ey":"v"}]`)
	require.Equal(t, http.StatusAccepted, c.post(logsPath, body).status)
	logs := s.Logs()
	require.Len(t, logs, 1)
	assert.Equal(t, `{"message":"nul \u0000 and \u2028 \"q\" <tag>","k\u0000ey":"v"}`, string(logs[0].Raw))
	assert.Equal(t, "nul \x00 and \u2028 \"q\" <tag>", logs[0].Message)
	assert.Equal(t, "v", logs[0].Attrs["k\x00ey"])
}

func TestWaitLogs(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})

	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() { errs <- s.WaitLogs(waitCtx(t), 3) })
	for i := range 3 {
		require.Equal(t, http.StatusAccepted, c.post(logsPath, []byte(`{"message":"`+itoa(i)+`"}`)).status)
	}
	wg.Wait()
	require.NoError(t, <-errs)

	// Already satisfied: returns at once.
	require.NoError(t, s.WaitLogs(context.Background(), 3))

	// Not satisfied before the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.WaitLogs(ctx, 4)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled))
	assert.Contains(t, err.Error(), "4 logs (have 3)")

	// Reset restarts the count.
	s.Reset()
	err = s.WaitLogs(ctx, 1)
	assert.Contains(t, err.Error(), "1 logs (have 0)")
}

func TestWaitWakesOnEachRequest(t *testing.T) {
	t.Parallel()
	s, c := start(t, Config{})
	done := make(chan error, 1)
	go func() {
		done <- s.Wait(waitCtx(t), func(st Stats) bool { return st.Responses[http.StatusBadRequest] >= 2 })
	}()
	c.post(logsPath, []byte(`x`))
	c.post(logsPath, []byte(`y`))
	require.NoError(t, <-done)
}

func TestHasControlChar(t *testing.T) {
	t.Parallel()
	naive := func(b []byte) bool { return bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 }) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short clean", []byte(`{"a":1}`)},
		{"long clean", []byte(`{"message":"all printable ASCII ~ and é and 😀"}`)},
		{"0x1f at start", []byte("\x1f{\"message\":\"aaaaaaaaaaaaaaaaaa\"}")},
		{"0x00 in the middle", []byte("{\"message\":\"aaaaaaa\x00aaaaaaaaaa\"}")},
		{"0x1f in the tail", []byte("{\"message\":\"aaaaa\x1f\"}")},
		{"0x20 and 0x7f and 0x80 only", []byte("    \x7f\x7f\x7f\x80\x80\x80\xff\xff\xff    ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, naive(tt.in), hasControlChar(tt.in))
		})
	}
	// Every byte value at every offset of a 16-byte word.
	for c := range 256 {
		for off := range 16 {
			b := bytes.Repeat([]byte("a"), 16)
			b[off] = byte(c)
			require.Equal(t, c < 0x20, hasControlChar(b), "byte %#x at %d", c, off)
		}
	}
}
