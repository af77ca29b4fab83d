package fakeintake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

const (
	testKey    = "test-key"
	logsPath   = "/api/v2/logs"
	seriesPath = "/api/v2/series"
	distPath   = "/api/v1/distribution_points"
)

// testNow is the injected clock of tests that need one.
var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// start runs a Server on 127.0.0.1 for the test.
func start(t testing.TB, cfg Config) (*Server, *client) {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedClock
	}
	s, url := NewTestServer(t, cfg)
	return s, &client{t: t, base: url}
}

type client struct {
	t    testing.TB
	base string
}

// reply is an HTTP answer as a test sees it.
type reply struct {
	status int
	body   []byte
}

// post sends body to path with DD-API-KEY testKey; hdr holds header pairs
// that override it ("DD-API-KEY", "" removes the key).
func (c *client) post(path string, body []byte, hdr ...string) reply {
	c.t.Helper()
	return c.do(context.Background(), http.MethodPost, path, body, hdr...)
}

func (c *client) do(ctx context.Context, method, path string, body []byte, hdr ...string) reply {
	c.t.Helper()
	r, err := c.try(ctx, method, path, body, hdr...)
	require.NoError(c.t, err)
	return r
}

func (c *client) try(ctx context.Context, method, path string, body []byte, hdr ...string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("DD-API-KEY", testKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, body: b}, nil
}

// zstdEncoder is shared: EncodeAll is safe for concurrent use, and a new
// encoder per call would dominate fuzzing time.
var zstdEncoder, _ = zstd.NewWriter(nil) // cannot fail without options

// encode compresses data as a client would for the given Content-Encoding
// ("deflate-raw": deflate without the zlib wrapper). It returns the body and
// the header value to send.
func encode(t testing.TB, enc string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	header := enc
	switch enc {
	case "", "identity":
		return data, enc
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "deflate-raw":
		fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
		require.NoError(t, err)
		w, header = fw, "deflate"
	case "zstd", "zstd1":
		return zstdEncoder.EncodeAll(data, nil), enc
	default:
		t.Fatalf("unknown test encoding %q", enc)
	}
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes(), header
}

// logsPayload returns n logs as a JSON array, each with a message of about
// msgLen bytes and API Gateway-like attributes.
func logsPayload(n, msgLen int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	pad := strings.Repeat("x", max(msgLen-40, 0))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"message":"request %06d completed with status 200 %s","ddsource":"apigateway",`+
			`"service":"orders-api","hostname":"API-Gateway-Execution-Logs_a1b2c3d4e5/prod",`+
			`"ddtags":"env:prod,apiid:a1b2c3d4e5","status":"info","timestamp":%d,`+
			`"http":{"method":"GET","status_code":200,"url":"/pets/%d"}}`,
			i, pad, testNow.UnixMilli(), i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// seriesPayload returns one gauge series with one point per timestamp.
func seriesPayload(metric string, ts ...int64) []byte {
	points := make([]string, len(ts))
	for i, t := range ts {
		points[i] = fmt.Sprintf(`{"timestamp":%d,"value":%d.5}`, t, i)
	}
	return fmt.Appendf(nil, `{"series":[{"metric":%q,"type":3,"points":[%s],`+
		`"tags":["env:prod"],"resources":[{"name":"api-gw","type":"host"}]}]}`,
		metric, strings.Join(points, ","))
}

func distPayload(metric string, ts int64, values ...float64) []byte {
	vs, _ := json.Marshal(values)
	return fmt.Appendf(nil, `{"series":[{"metric":%q,"host":"h1","tags":["a:b"],"type":"distribution",`+
		`"points":[[%d,%s]]}]}`, metric, ts, vs)
}

// padJSON pads a JSON document with trailing whitespace to exactly size
// bytes.
func padJSON(t testing.TB, doc []byte, size int) []byte {
	t.Helper()
	require.LessOrEqual(t, len(doc), size)
	return append(doc, bytes.Repeat([]byte(" "), size-len(doc))...)
}

// logsError decodes a logs intake error body and returns its single error.
func logsError(t testing.TB, body []byte) (status, title, detail string) {
	t.Helper()
	var e struct {
		Errors []struct{ Status, Title, Detail string }
	}
	require.NoError(t, json.Unmarshal(body, &e), "body %s", body)
	require.Len(t, e.Errors, 1)
	return e.Errors[0].Status, e.Errors[0].Title, e.Errors[0].Detail
}

// apiError decodes a metrics API error body and returns its single error.
func apiError(t testing.TB, body []byte) string {
	t.Helper()
	var e struct{ Errors []string }
	require.NoError(t, json.Unmarshal(body, &e), "body %s", body)
	require.Len(t, e.Errors, 1)
	return e.Errors[0]
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
