// Package ddhttp is the one sender of gwpipe's Datadog API clients (the
// logs intake client, package ddlogs, and the metrics API client, package
// ddmetrics): everything they do the same way lives here, and they keep
// only what differs — what they batch, how they encode and split it, and
// their limits.
//
// A Sender posts a body (request building, DD-API-KEY, headers, a timeout
// per attempt, reading the answer and its reason without ever quoting the
// key), classifies each answer (Classify: Accepted, Retrying, Unauthorized,
// Split or Rejected), keeps the API key's health (KeyHealth: red while the
// API answers 401/403), and retries until the answer is final: exponential
// backoff with jitter (package backoff), never sooner than an answer's
// Retry-After asks, abandoned when the caller's context ends — which is how
// both clients stop retrying at the shutdown deadline. It bounds the
// requests in flight with a semaphore and reports every attempt (Result,
// with its latency) to a hook.
//
// A Codec compresses bodies (gzip, zstd, deflate or none) with pooled
// encoders and buffers, at most Concurrency at once.
//
// This follows the shape of the OpenTelemetry Collector's exporterhelper
// (timeout and retry wrapped around one push) and of the Datadog Agent's
// logs destination (retryable and dropped errors told apart where the
// answer is read, backoff as a policy value, a semaphore for concurrent
// sends).
package ddhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gwpipe/gwpipe/pkg/redact"
)

// ErrorDetail extracts a readable reason from a Datadog error body: the
// logs intake's {"errors":[{"status":"400","title":"Bad Request","detail":"…"}]},
// the metrics API's {"errors":["…"]}, or any text. It is at most about 256
// bytes of valid UTF-8.
func ErrorDetail(status int, body []byte) string {
	var parsed struct {
		Errors []json.RawMessage `json:"errors"`
	}
	var parts []string
	if json.Unmarshal(body, &parsed) == nil {
		for _, raw := range parsed.Errors {
			var s string
			var e struct{ Title, Detail string }
			switch {
			case json.Unmarshal(raw, &s) == nil && s != "":
				parts = append(parts, s)
			case json.Unmarshal(raw, &e) == nil && e.Detail != "":
				parts = append(parts, e.Detail)
			case e.Title != "":
				parts = append(parts, e.Title)
			}
		}
	}
	d := strings.Join(parts, "; ")
	if d == "" {
		d = strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	}
	if d == "" {
		d = http.StatusText(status)
	}
	if len(d) > 256 {
		d = strings.ToValidUTF8(d[:256], "") + "…"
	}
	return d
}

// Redact removes the API key from a message, should anything echo it,
// and the secrets of every URL it quotes (package redact).
func Redact(s, key string) string {
	s = redact.URL(s)
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "<redacted>")
}

// RedactErr is Redact for an error: a transport error quotes the request's
// URL, which may carry a key of its own (…?dd-api-key=).
func RedactErr(err error, key string) error {
	if err == nil {
		return nil
	}
	if key != "" && strings.Contains(err.Error(), key) {
		return errors.New(Redact(err.Error(), key))
	}
	return redact.Err(err)
}

// KeyHealth tracks whether an API refuses our API key (401/403), logging
// once per transition, and clears when a request is authenticated.
type KeyHealth struct {
	// API names the endpoint ("logs intake"), Held what waits ("logs"),
	// Prefix starts the error ("ddlogs").
	API, Held, Prefix string
	Log               *slog.Logger

	mu     sync.Mutex
	status int // 401 or 403 while refused, else 0
	err    error
	bad    atomic.Bool // status != 0, for the lock-free fast path
}

// Err is nil, or why the API refuses us.
func (h *KeyHealth) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Refused records a 401/403.
func (h *KeyHealth) Refused(status int, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status == status {
		return
	}
	h.status = status
	h.bad.Store(true)
	h.err = fmt.Errorf("%s: the Datadog %s refused the API key: HTTP %d %s: %s (%s are kept and retried)",
		h.Prefix, h.API, status, http.StatusText(status), detail, h.Held)
	if h.Log != nil {
		h.Log.Error("datadog "+h.API+" refused the API key; holding "+h.Held+" and retrying", "status", status, "detail", detail)
	}
}

// OK records a request the API authenticated.
func (h *KeyHealth) OK() {
	if !h.bad.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.bad.Load() {
		return
	}
	if h.Log != nil {
		h.Log.Info("datadog "+h.API+" accepts the API key again", "previous_status", h.status)
	}
	h.status, h.err = 0, nil
	h.bad.Store(false)
}

// Outcome is what one HTTP attempt to a Datadog API led to.
type Outcome uint8

const (
	Accepted     Outcome = iota // 2xx: delivered
	Retrying                    // network error, 408, 429, 5xx or another unexpected status: sent again after a backoff
	Unauthorized                // 401/403: the API key is refused; sent again after a backoff
	Split                       // 400/413 on several items: sent again as two halves
	Rejected                    // 400/413 on a single item: permanently rejected
)

// Classify is what one attempt's answer leads to. err is a transport
// error (no answer); canSplit says whether the payload holds more than one
// item, so that a refused body can be halved to isolate what the API
// refuses.
//
//   - 2xx: Accepted.
//   - 400, 413: Split when canSplit, else Rejected (permanently).
//   - 401, 403: Unauthorized: the key is refused; nothing is dropped, it
//     is retried.
//   - a transport error, 408, 429, 5xx and any other status: Retrying.
func Classify(status int, err error, canSplit bool) Outcome {
	switch {
	case err != nil:
		return Retrying
	case status >= 200 && status < 300:
		return Accepted
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		if canSplit {
			return Split
		}
		return Rejected
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Unauthorized
	}
	return Retrying
}

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Retrying:
		return "retrying"
	case Unauthorized:
		return "unauthorized"
	case Split:
		return "split"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}
