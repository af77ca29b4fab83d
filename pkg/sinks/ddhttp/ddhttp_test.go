package ddhttp

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

func TestErrorDetail(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "Malformed payload", ErrorDetail(400, []byte(`{"errors":[{"status":"400","title":"Bad Request","detail":"Malformed payload"}]}`)))
	assert.Equal(t, "Forbidden", ErrorDetail(403, []byte(`{"errors":["Forbidden"]}`)))
	assert.Equal(t, "a; b", ErrorDetail(400, []byte(`{"errors":["a","b"]}`)))
	assert.Equal(t, "Bad Request", ErrorDetail(400, []byte(`{"errors":[{"title":"Bad Request"}]}`)))
	assert.Equal(t, "plain text", ErrorDetail(500, []byte(" plain text\n")))
	assert.Equal(t, "Service Unavailable", ErrorDetail(503, nil))
	assert.LessOrEqual(t, len(ErrorDetail(500, bytes.Repeat([]byte("x"), 10000))), 300)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "key <redacted> echoed", Redact("key abc123 echoed", "abc123"))
	assert.Equal(t, "unchanged", Redact("unchanged", ""))
	err := RedactErr(errors.New("bad key abc123"), "abc123")
	assert.NotContains(t, err.Error(), "abc123")
	assert.Nil(t, RedactErr(nil, "k"))
}

func TestKeyHealth(t *testing.T) {
	t.Parallel()
	h := &KeyHealth{API: "logs intake", Held: "logs", Prefix: "ddlogs"}
	require.NoError(t, h.Err())
	h.Refused(403, "Forbidden")
	require.Error(t, h.Err())
	assert.Contains(t, h.Err().Error(), "403")
	h.OK()
	assert.NoError(t, h.Err())
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
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

func TestOutcomeString(t *testing.T) {
	t.Parallel()
	for o, s := range map[Outcome]string{Accepted: "accepted", Retrying: "retrying", Unauthorized: "unauthorized", Split: "split", Rejected: "rejected", 99: "unknown"} {
		assert.Equal(t, s, o.String())
	}
}

// FuzzRetryAfter: whatever the header says, the wait is within [0,
// MaxRetryAfter], and the sender never waits less than it asked nor more
// than the longer of it and its own cap.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"10", "0", "-1", "Sun, 29 Nov 2026 06:00:30 GMT", "Sunday, 29-Nov-26 06:00:30 GMT", "Sun Nov 29 06:00:30 2026", "1e3", "9223372036854775807", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	p := backoff.Exponential(time.Millisecond, 4*time.Millisecond)
	f.Fuzz(func(t *testing.T, v string) {
		d := RetryAfter(http.Header{"Retry-After": []string{v}}, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("RetryAfter(%q) = %v out of [0, %v]", v, d, MaxRetryAfter)
		}
		if got := nextDelay(p.Start(), d); got < d || got > max(d, p.MaxInterval) {
			t.Fatalf("nextDelay(%v) = %v", d, got)
		}
	})
}
