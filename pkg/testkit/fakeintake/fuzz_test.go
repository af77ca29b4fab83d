package fakeintake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzEncodings are how FuzzLogsPayload sends its input: the Content-Encoding
// header, and whether the input is compressed first (exercising the JSON
// checks) or sent as is (exercising the decoders on garbage).
var fuzzEncodings = []struct {
	header   string
	compress string // encode's name; empty sends the input as is
}{
	{"", ""},
	{"gzip", ""},
	{"gzip", "gzip"},
	{"deflate", ""},
	{"deflate", "deflate"},
	{"deflate", "deflate-raw"},
	{"zstd", ""},
	{"zstd", "zstd"},
}

// FuzzLogsPayload drives the logs handler in-process with arbitrary bodies:
// it must never panic, must answer 202 or 4xx with a well-formed body, and
// must keep only valid JSON objects with a string message.
func FuzzLogsPayload(f *testing.F) {
	seeds := [][]byte{
		[]byte(`[{"message":"hello","ddtags":"env:prod","timestamp":1700000000000}]`),
		[]byte(`{"message":"single"}`),
		[]byte(`[{"message":"a"},{"message":"b","http":{"status_code":200,"x":[1,2.5e3,null,true]}}]`),
		[]byte(`[{"message":"esc \u0000 \" \\ \u2028","k\u00e9y":"v"}]`),
		[]byte(`[]`),
		[]byte(`[{"msg":"no message"}]`),
		[]byte(`[{"message":1}]`),
		[]byte(`[{"message":"a"},"b"]`),
		[]byte(`[{"message":"a","n":NaN}]`),
		[]byte(`[[[[[[[[[[`),
		{0x1f, 0x8b, 0x08, 0x00},
		{0x78, 0x9c, 0x00},
		{0x28, 0xb5, 0x2f, 0xfd},
	}
	for _, seed := range seeds {
		for i := range fuzzEncodings {
			f.Add(seed, uint8(i))
		}
	}
	s, err := New(Config{Keep: 1000, Now: fixedClock})
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, input []byte, encIndex uint8) {
		enc := fuzzEncodings[int(encIndex)%len(fuzzEncodings)]
		body := input
		if enc.compress != "" {
			body, _ = encode(t, enc.compress, input)
		}
		s.Reset() // iterations run one at a time within a fuzz worker

		req := httptest.NewRequest(http.MethodPost, logsPath, bytes.NewReader(body))
		req.Header.Set("DD-API-KEY", testKey)
		if enc.header != "" {
			req.Header.Set("Content-Encoding", enc.header)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)

		switch {
		case rec.Code == http.StatusAccepted:
			require.Equal(t, `{}`, rec.Body.String())
			logs := s.Logs()
			require.NotEmpty(t, logs)
			require.LessOrEqual(t, len(logs), MaxLogEntries)
			for _, l := range logs {
				require.True(t, json.Valid(l.Raw), "kept log is not valid JSON: %q", l.Raw)
				require.Equal(t, byte('{'), l.Raw[0])
				require.True(t, len(l.Raw) <= MaxLogBytes || l.Truncated)
			}
		case rec.Code >= 400 && rec.Code < 500:
			_, _, detail := logsError(t, rec.Body.Bytes())
			require.NotEmpty(t, detail)
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	})
}
