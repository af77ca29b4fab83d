package loadgen

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBombIsSmallOnTheWireAndValidOnceDecoded(t *testing.T) {
	t.Parallel()
	const recordBytes = 3 << 20
	req, events, err := Bomb(BombConfig{ID: "b", Records: 2, RecordBytes: recordBytes, AccessKey: "k"})
	require.NoError(t, err)
	assert.Equal(t, "b", req.Header.Get(HeaderRequestID))
	assert.Equal(t, "k", req.Header.Get(HeaderAccessKey))
	assert.Less(t, len(req.Body), recordBytes/20, "a bomb: small on the wire")

	var body struct {
		RequestID string
		Records   []struct{ Data string }
	}
	require.NoError(t, json.Unmarshal(req.Body, &body))
	require.Len(t, body.Records, 2)
	got := 0
	for _, r := range body.Records {
		raw, err := base64.StdEncoding.DecodeString(r.Data)
		require.NoError(t, err)
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		require.NoError(t, err)
		data, err := io.ReadAll(zr)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(data), recordBytes, "within the size asked for: at a per-record limit, it passes")
		assert.Greater(t, len(data), recordBytes-5000)
		dec := json.NewDecoder(bytes.NewReader(data))
		for dec.More() {
			var env struct {
				MessageType string
				LogEvents   []struct {
					ID      string
					Message string
				}
			}
			require.NoError(t, dec.Decode(&env), "concatenated envelopes, each valid")
			assert.Equal(t, "DATA_MESSAGE", env.MessageType)
			for _, e := range env.LogEvents {
				assert.True(t, json.Valid([]byte(e.Message)), "each event a JSON access log")
				got++
			}
		}
	}
	assert.Equal(t, events, got)
}
