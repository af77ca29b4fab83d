// Package ddhttp holds what every Datadog API client of gwpipe needs the
// same way: reading the reason out of an error answer, keeping the API key
// out of messages, and tracking whether the API refuses the key.
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
