package ddlogs

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/sinks/ddhttp"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// TestRetryAfterIsHonoured: the intake answers 429 or 503 with
// Retry-After; no attempt comes sooner than it asked (delay-seconds or an
// HTTP-date), however short our own backoff, and the logs arrive once.
// The waits are recorded by the sleeper instead of spent.
func TestRetryAfterIsHonoured(t *testing.T) {
	date := time.Now().Add(12 * time.Second).UTC().Format(http.TimeFormat)
	dateT, err := http.ParseTime(date)
	require.NoError(t, err)
	cases := []struct {
		name     string
		status   int
		header   string
		min, max time.Duration
	}{
		{"429 seconds", http.StatusTooManyRequests, "10", 10 * time.Second, 10 * time.Second},
		{"503 seconds", http.StatusServiceUnavailable, "7", 7 * time.Second, 7 * time.Second},
		{"503 HTTP-date", http.StatusServiceUnavailable, date, -1, 12 * time.Second}, // min: until the date
		{"absurd", http.StatusTooManyRequests, "86400", ddhttp.MaxRetryAfter, ddhttp.MaxRetryAfter},
		{"none", http.StatusTooManyRequests, "", 0, 4 * time.Millisecond}, // our backoff alone
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{testKey}, Keep: 100})
			const failures = 3
			require.NoError(t, srv.SetFailure(fakeintake.Failure{Status: c.status, Count: failures, RetryAfter: c.header,
				Endpoints: []fakeintake.Endpoint{fakeintake.EndpointLogs}}))
			var logs logBuffer
			cfg := testConfig(t, base+"/api/v2/logs", &logs)
			cfg.Linger = 0
			var (
				mu    sync.Mutex
				waits []time.Duration
			)
			cfg.Backoff.Sleep = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				waits = append(waits, d)
				mu.Unlock()
				return ctx.Err()
			}
			cl := newClient(t, cfg, &logs)
			rejected, err := cl.Deliver(context.Background(), batch("ra", 5))
			require.NoError(t, err)
			assert.Empty(t, rejected)

			st := srv.Stats()
			assert.EqualValues(t, failures, st.FailuresInjected)
			assert.EqualValues(t, 5, st.LogsAccepted, "delivered once")
			if c.min < 0 {
				// Each wait was computed when its attempt was sent, before now.
				c.min = time.Until(dateT)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, waits, failures, "one wait per refused attempt")
			for i, w := range waits {
				assert.GreaterOrEqual(t, w, c.min, "wait %d came sooner than Retry-After %q", i, c.header)
				assert.LessOrEqual(t, w, c.max, "wait %d", i)
			}
		})
	}
}
