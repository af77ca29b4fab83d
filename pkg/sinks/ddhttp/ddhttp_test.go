package ddhttp

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

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

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	assert.Equal(t, 10*time.Second, RetryAfter(h("10"), now))
	assert.Equal(t, 10*time.Second, RetryAfter(h(" 10 "), now))
	assert.Equal(t, 30*time.Second, RetryAfter(h(now.Add(30*time.Second).Format(http.TimeFormat)), now))
	assert.Equal(t, MaxRetryAfter, RetryAfter(h("999999999999999999999"), now), "delay-seconds beyond int64")
	for _, v := range []string{"", "0", "-5", "soon", now.Add(-time.Minute).Format(http.TimeFormat)} {
		assert.Zero(t, RetryAfter(h(v), now), "%q", v)
	}
	assert.Zero(t, RetryAfter(http.Header{}, now))
	assert.Equal(t, MaxRetryAfter, RetryAfter(h("86400"), now))
	assert.Equal(t, MaxRetryAfter, RetryAfter(h(now.Add(48*time.Hour).Format(http.TimeFormat)), now))
}

func TestRetrierDelay(t *testing.T) {
	b := Backoff{InitialInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond}.WithDefaults()
	r := b.Retrier()
	for range 10 {
		assert.LessOrEqual(t, r.Delay(0), 4*time.Millisecond, "our own pace is capped at MaxInterval")
	}
	assert.Equal(t, 10*time.Second, r.Delay(10*time.Second), "the API's Retry-After wins, beyond MaxInterval")
	assert.Equal(t, MaxRetryAfter, r.Delay(time.Hour))
}

// FuzzRetryAfter: whatever the header says, the wait is within [0,
// MaxRetryAfter], and the retrier never waits less than it asked.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"10", "0", "-1", "Sun, 29 Nov 2026 06:00:30 GMT", "Sunday, 29-Nov-26 06:00:30 GMT", "Sun Nov 29 06:00:30 2026", "1e3", "9223372036854775807", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	b := Backoff{InitialInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond}.WithDefaults()
	f.Fuzz(func(t *testing.T, v string) {
		d := RetryAfter(http.Header{"Retry-After": []string{v}}, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("RetryAfter(%q) = %v out of [0, %v]", v, d, MaxRetryAfter)
		}
		if got := b.Retrier().Delay(d); got < d || got > max(d, b.MaxInterval) {
			t.Fatalf("Delay(%v) = %v", d, got)
		}
	})
}
