package tap

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
)

// Tapper attaches taps to topics (a *stage.Runtime).
type Tapper interface {
	Tap(topic string, buffer, maxRecords int) *stage.Tap
}

// Status is the tap's own line, {"tap": {…}}: after each second in which
// it dropped events, and last.
type Status struct {
	Topic   string `json:"topic"`
	Events  int64  `json:"events"`  // events written so far
	Dropped int64  `json:"dropped"` // events published while the reader was behind
	// End says why the stream ended, on the last line: "limit" (the
	// events asked for were written) or "stopped" (the pipeline shut
	// down). Empty on the lines before.
	End string `json:"end,omitempty"`
}

// statusLine is the wire form of a Status.
type statusLine struct {
	Tap Status `json:"tap"`
}

const (
	// buffer is the samples (batches) a tap holds for its reader.
	buffer = 8
	// maxTaps bounds the taps served at once: each costs the pipeline a
	// copy of what it samples.
	maxTaps = 4
	// MaxLimit bounds ?limit.
	MaxLimit = 1_000_000
	// statusEvery is how often a stream that drops says so.
	statusEvery = time.Second
)

// Config is what a Handler serves.
type Config struct {
	Tapper Tapper
	// TopicNames maps each of Topics to the configured topic name.
	TopicNames map[string]string
	Defaults   ddlogs.Defaults
	// Scrub is Renderer.Scrub.
	Scrub func(*record.Batch) *record.Batch
}

// Handler serves GET /tap?topic=T[&limit=N]: the events published to T as
// JSON lines (application/x-ndjson), flushed as they come, then a status
// line. Without limit it streams until the client goes away or the
// pipeline stops.
func Handler(cfg Config) http.Handler {
	slots := make(chan struct{}, maxTaps)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		topic := q.Get("topic")
		name, ok := cfg.TopicNames[topic]
		if !ok || !slices.Contains(Topics, topic) {
			http.Error(w, fmt.Sprintf("topic: want one of %s, got %q", strings.Join(Topics, ", "), topic), http.StatusBadRequest)
			return
		}
		var limit int64
		if s := q.Get("limit"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 1 || n > MaxLimit {
				http.Error(w, fmt.Sprintf("limit: want 1..%d, got %q", MaxLimit, s), http.StatusBadRequest)
				return
			}
			limit = n
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			http.Error(w, fmt.Sprintf("%d taps are attached already; try again when one ends", maxTaps), http.StatusServiceUnavailable)
			return
		}
		t := cfg.Tapper.Tap(name, buffer, int(limit))
		defer t.Close()

		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()

		rn := Renderer{Topic: topic, Defaults: cfg.Defaults, Scrub: cfg.Scrub}
		st := Status{Topic: topic}
		var failed bool
		write := func(b []byte) bool {
			if _, err := w.Write(b); err != nil {
				failed = true
			}
			return !failed
		}
		status := func() bool {
			st.Dropped = t.Dropped()
			b, _ := json.Marshal(statusLine{st})
			return write(append(b, '\n')) && rc.Flush() == nil
		}
		tick := time.NewTicker(statusEvery)
		defer tick.Stop()
		var reported int64
		// sample writes a sample's events; false when the stream is over.
		sample := func(s stage.TapSample) bool {
			rn.Records(s.Stage, s.Batch, func(line []byte) bool {
				if !write(line) {
					return false
				}
				st.Events++
				return limit == 0 || st.Events < limit
			})
			if failed {
				return false
			}
			if limit > 0 && st.Events >= limit {
				st.End = "limit"
				status()
				return false
			}
			return rc.Flush() == nil
		}
		for {
			select {
			case s := <-t.C():
				if !sample(s) {
					return
				}
			case <-tick.C:
				if d := t.Dropped(); d > reported {
					reported = d
					if !status() {
						return
					}
				}
			case <-t.Done():
				for len(t.C()) > 0 { // what was sampled before the end
					if !sample(<-t.C()) {
						return
					}
				}
				st.End = "stopped"
				status()
				return
			case <-r.Context().Done():
				return
			}
		}
	})
}
