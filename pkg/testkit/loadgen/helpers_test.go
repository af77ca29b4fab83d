package loadgen

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// The decoding below deliberately uses only the standard library
// (compress/gzip, encoding/json), independently of the generator's code.

var testNow = time.UnixMilli(1_700_000_000_123)

func fixedClock() time.Time { return testNow }

// testConfig is a small, deterministic configuration.
func testConfig() Config {
	return Config{
		Seed:              7,
		Clock:             fixedClock,
		RecordsPerRequest: 8,
		EventsPerRecord:   20,
		Accounts:          2,
		APIs:              4,
		Stages:            2,
	}
}

type firehoseBody struct {
	RequestID string `json:"requestId"`
	Timestamp int64  `json:"timestamp"`
	Records   []struct {
		Data string `json:"data"`
	} `json:"records"`
}

// decoded is one request as an endpoint sees it.
type decoded struct {
	body firehoseBody
	// For CloudWatch traffic: one envelope per record. For direct traffic:
	// the raw record bytes (access-log lines).
	envelopes []corpus.Envelope
	lines     []string
}

func gunzip(t testing.TB, p []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(p))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

// decodeWire decodes a request body as received with its headers.
func decodeWire(t testing.TB, h http.Header, wire []byte, direct bool) decoded {
	t.Helper()
	raw := wire
	if h.Get("Content-Encoding") == "gzip" {
		raw = gunzip(t, wire)
	} else {
		require.Empty(t, h.Get("Content-Encoding"))
	}
	var d decoded
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&d.body), "request body is JSON")
	for _, rec := range d.body.Records {
		data, err := base64.StdEncoding.DecodeString(rec.Data)
		require.NoError(t, err, "record data is base64")
		if direct {
			d.lines = append(d.lines, string(data))
			continue
		}
		require.True(t, len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b, "record is gzip")
		doc := gunzip(t, data)
		require.Less(t, len(data), 1_024_000, "record within Firehose's size limit")
		var env corpus.Envelope
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&env), "envelope is JSON: %s", doc)
		require.False(t, dec.More(), "one envelope per record")
		d.envelopes = append(d.envelopes, env)
	}
	return d
}

func mustGenerator(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := NewGenerator(cfg)
	require.NoError(t, err)
	t.Cleanup(g.Close)
	return g
}

func mustNext(t testing.TB, g *Generator) *Request {
	t.Helper()
	req, err := g.NextRequest()
	require.NoError(t, err)
	return req
}

// collect generates requests until at least n events were produced.
func collect(t testing.TB, g *Generator, n int) []Event {
	t.Helper()
	var evs []Event
	for len(evs) < n {
		evs = append(evs, mustNext(t, g).Events...)
	}
	return evs
}
