package ddhttp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorDetail(t *testing.T) {
	assert.Equal(t, "Malformed payload", ErrorDetail(400, []byte(`{"errors":[{"status":"400","title":"Bad Request","detail":"Malformed payload"}]}`)))
	assert.Equal(t, "Forbidden", ErrorDetail(403, []byte(`{"errors":["Forbidden"]}`)))
	assert.Equal(t, "a; b", ErrorDetail(400, []byte(`{"errors":["a","b"]}`)))
	assert.Equal(t, "Bad Request", ErrorDetail(400, []byte(`{"errors":[{"title":"Bad Request"}]}`)))
	assert.Equal(t, "plain text", ErrorDetail(500, []byte(" plain text\n")))
	assert.Equal(t, "Service Unavailable", ErrorDetail(503, nil))
	assert.LessOrEqual(t, len(ErrorDetail(500, bytes.Repeat([]byte("x"), 10000))), 300)
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "key <redacted> echoed", Redact("key abc123 echoed", "abc123"))
	assert.Equal(t, "unchanged", Redact("unchanged", ""))
	err := RedactErr(errors.New("bad key abc123"), "abc123")
	assert.NotContains(t, err.Error(), "abc123")
	assert.Nil(t, RedactErr(nil, "k"))
}

func TestKeyHealth(t *testing.T) {
	h := &KeyHealth{API: "logs intake", Held: "logs", Prefix: "ddlogs"}
	require.NoError(t, h.Err())
	h.Refused(403, "Forbidden")
	require.Error(t, h.Err())
	assert.Contains(t, h.Err().Error(), "403")
	h.OK()
	assert.NoError(t, h.Err())
}
