package ddhttp

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter bounds how long one Retry-After answer holds a payload
// back, so that a broken or hostile header cannot stall delivery for
// hours. Datadog asks for seconds.
const MaxRetryAfter = 5 * time.Minute

// RetryAfter reads a Retry-After header (RFC 9110 §10.2.3): delay-seconds,
// or an HTTP-date taken relative to now. It is 0 when the header is absent,
// malformed or in the past, and at most MaxRetryAfter.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	secs, err := strconv.ParseInt(v, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && v[0] != '-':
		return MaxRetryAfter
	case err == nil:
		if secs <= 0 {
			return 0
		}
		if secs >= int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	default:
		t, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// answer is what one attempt got back from a Datadog API.
type answer struct {
	Status int
	// Detail is a short, key-free description of a non-2xx answer.
	Detail string
	// RetryAfter is how long the API asked us to wait (Retry-After).
	RetryAfter time.Duration
}

// readAnswer reads a response's status, and for a non-2xx answer its
// reason and Retry-After, draining the body (bounded) so that the
// connection can be reused. It does not close the body.
func readAnswer(resp *http.Response, apiKey string, now time.Time) answer {
	a := answer{Status: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return a
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	a.Detail = Redact(ErrorDetail(resp.StatusCode, msg), apiKey)
	a.RetryAfter = RetryAfter(resp.Header, now)
	return a
}
