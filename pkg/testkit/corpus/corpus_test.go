package corpus

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The corpus renders, its bodies are Firehose requests, and its event ids
// are unique across cases (the delivery stage drops repeated ids, so a
// shared id would hide a loss in the end-to-end test).
func TestCorpusRenders(t *testing.T) {
	t.Parallel()
	cases, err := Cases()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cases), 10)
	now := time.Now()
	ids := map[string]string{}
	for _, c := range cases {
		r, err := c.Render(now)
		require.NoError(t, err, c.Name)
		require.NotEmpty(t, r.Data, c.Name)
		require.NotEmpty(t, r.Manifest.Description, c.Name)
		require.Contains(t, r.SourceARN, ":deliverystream/", c.Name)
		var body struct {
			RequestID string `json:"requestId"`
			Timestamp int64  `json:"timestamp"`
			Records   []struct {
				Data *string `json:"data"`
			} `json:"records"`
		}
		require.NoError(t, json.Unmarshal(r.Body("req-"+c.Name, now), &body))
		assert.Equal(t, "req-"+c.Name, body.RequestID)
		assert.Equal(t, now.UnixMilli(), body.Timestamp)
		require.Len(t, body.Records, len(r.Data))
		for i, rec := range body.Records {
			require.NotNil(t, rec.Data, "%s record %d", c.Name, i)
			assert.Equal(t, r.Data[i], *rec.Data)
		}
		for _, e := range r.Manifest.Events {
			prev, dup := ids[e.ID]
			require.False(t, dup, "event id %s in %s and %s", e.ID, prev, c.Name)
			ids[e.ID] = c.Name
		}
		for _, d := range r.Manifest.DeadLetters {
			_, err := d.PartBytes()
			require.NoError(t, err)
			require.True(t, d.Whole != (d.Part != "" || d.PartBase64 != ""), "%s: a dead letter is whole or names its part", c.Name)
		}
	}

	// The object cases too: the SQS test reads them all into one intake.
	objects, err := ObjectCases()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(objects), 6)
	lines := map[string]string{}
	for _, c := range objects {
		o, err := c.Render(now)
		require.NoError(t, err, c.Name)
		require.NotEmpty(t, o.Body, c.Name)
		require.NotEmpty(t, o.Key, c.Name)
		require.NotEmpty(t, o.Manifest.Layout, c.Name)
		for _, e := range o.Manifest.Events {
			prev, dup := ids[e.ID]
			require.False(t, dup, "event id %s in %s and %s", e.ID, prev, c.Name)
			ids[e.ID] = c.Name
		}
		for _, l := range o.Manifest.Lines {
			prev, dup := lines[l]
			require.False(t, dup, "line %s in %s and %s", l, prev, c.Name)
			lines[l] = c.Name
		}
		for i, d := range o.Manifest.DeadLetters {
			n := 0
			for _, set := range []bool{d.Whole, d.NoData, d.Part != "" || d.PartBase64 != ""} {
				if set {
					n++
				}
			}
			require.Equal(t, 1, n, "%s: a dead letter is whole, holds nothing, or names its part", c.Name)
			_, _, err := o.DeadData(i)
			require.NoError(t, err)
		}
	}
}

func TestObjectTemplates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	c := ObjectCase{Name: "t", source: "key: a/${hour -3600}/s-1-${stamp 0}-x\ncompression: gzip\nmembers: true\nparts: [{data: a}, {data: b}]", want: "description: x"}
	o, err := c.Render(now)
	require.NoError(t, err)
	assert.Equal(t, "a/2026/03/04/04/s-1-2026-03-04-05-06-07-x", o.Key)
	assert.Equal(t, [][]byte{[]byte("a"), []byte("b")}, o.Parts)
	assert.Equal(t, Gzip(append(Gzip([]byte("a")), Gzip([]byte("b"))...)), o.Body, "gzip members, then the whole object gzipped")
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)
	c := Case{Name: "t", source: `records: [{data: "${ms -60} ${minute 0} ${clf -1} ${range $i := seq 3}${$i}${end}"}]`, want: `description: x`}
	r, err := c.Render(now)
	require.NoError(t, err)
	require.Len(t, r.Data, 1)
	got, err := base64.StdEncoding.DecodeString(r.Data[0])
	require.NoError(t, err)
	// 05:05:07.008, 05:06:00.000 and 05:06:06 on 4 March 2026.
	assert.Equal(t, "1772600707008 1772600760000 04/Mar/2026:05:06:06 +0000 012", string(got))
	assert.Equal(t, []byte("caf\xe9\x00"), unescape(`caf\xe9\x00`))
}
