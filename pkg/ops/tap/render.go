// Package tap samples live events at a stage boundary for an operator: the
// admin endpoint GET /tap streams them as JSON lines (Handler), and
// `gwpipe tap` reads that stream (Read). The sampling itself is the stage
// runtime's (stage.Tap): bounded, it drops what a slow reader cannot take
// instead of slowing the pipeline, and says how many.
//
// Credentials never appear: attributes named for a key or secret, and the
// API keys, AWS access keys and secrets in the text, are masked
// (redact.Text, redact.SecretAttr), and so is every URL's secret.
package tap

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
)

// Topics are the stage boundaries a tap can sample, in pipeline order.
var Topics = []string{"raw", "decoded", "parsed", "enriched", "metrics", "dlq"}

// rawPreview bounds the text of a raw record shown (decompressed).
const rawPreview = 64 << 10

// Event is one line of a tap: an event as it crossed the boundary.
type Event struct {
	Topic string `json:"topic"`
	Stage string `json:"stage"` // the stage (or source) that published it
	// Log is the Datadog log exactly as it would be delivered, for the
	// parsed topic and later.
	Log json.RawMessage `json:"log,omitempty"`
	// Metric is a metric point (metrics, dlq).
	Metric *dlq.Metric `json:"metric,omitempty"`

	// raw, decoded and dlq: the record as it is.
	Origin    *dlq.Origin `json:"origin,omitempty"`
	EventID   string      `json:"event_id,omitempty"`
	Timestamp int64       `json:"timestamp,omitempty"`
	Kind      string      `json:"kind,omitempty"`
	Reason    string      `json:"reason,omitempty"` // dlq: why it could not go on
	Message   *string     `json:"message,omitempty"`
	// Bytes is a raw record's size as received (a Firehose record's
	// base64 text, or its bytes when ingest decoded it for a broker); Gzip
	// says it was compressed (Message is then its decompressed text, cut
	// at 64 KiB: Truncated). A record that is not text has no Message.
	Bytes     int  `json:"bytes,omitempty"`
	Gzip      bool `json:"gzip,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
}

// Renderer turns samples of one topic into events.
type Renderer struct {
	Topic string
	// Defaults fill a Datadog log's top-level fields (the configuration's
	// source, service and static tags), as the delivery stage does.
	Defaults ddlogs.Defaults
	// Scrub, when set, applies the configuration's scrubbing rules
	// (filters.redact, filters.rules) to what is shown, as they apply to
	// what is delivered (*filter.Filters.Scrub): the addresses and secrets
	// they keep from Datadog are kept from the tap too.
	Scrub func(*record.Batch) *record.Batch
}

// Records renders b's records (or metric points) and calls emit with each
// event line, until emit returns false.
func (rn Renderer) Records(stage string, b *record.Batch, emit func([]byte) bool) {
	if rn.Scrub != nil && rn.Topic != "raw" && len(b.Records) > 0 {
		b = rn.Scrub(b)
	}
	for i := range b.Records {
		r := &b.Records[i]
		var ev Event
		switch rn.Topic {
		case "parsed", "enriched":
			ev = rn.log(r)
		case "raw":
			ev = rn.raw(r)
		default:
			ev = plain(r)
		}
		if rn.Topic == "dlq" {
			ev.Reason = r.Reason
			if ev.Reason == "" {
				ev.Reason = b.Reason
			}
		}
		ev.Topic, ev.Stage = rn.Topic, stage
		if !emit(line(&ev)) {
			return
		}
	}
	for i := range b.Metrics {
		ev := Event{Topic: rn.Topic, Stage: stage, Metric: dlq.MetricOf(&b.Metrics[i])}
		if rn.Topic == "dlq" {
			ev.Reason = b.Reason
		}
		if !emit(line(&ev)) {
			return
		}
	}
}

// line encodes an event as one JSON line, every URL's secret masked.
func line(ev *Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ev) // nothing in an Event fails to encode
	return []byte(redact.URL(buf.String()))
}

// log renders a parsed record as delivered, its secrets masked first.
func (rn Renderer) log(r *record.Record) Event {
	c := *r // a sample is the tap's own copy; its slices are not shared
	for i, a := range c.Attrs {
		if a.Kind == record.String || a.Kind == record.Number {
			if redact.SecretAttr(a.Key) && len(a.Str) > 0 {
				// The key's value goes wherever it appears, the message too.
				c.Message = bytes.ReplaceAll(c.Message, a.Str, []byte(redact.Mask))
				c.Attrs[i] = record.StringAttr(a.Key, []byte(redact.Mask))
				continue
			}
			c.Attrs[i].Str = []byte(redact.Text(string(a.Str)))
		}
	}
	c.Message = []byte(redact.Text(string(c.Message)))
	return Event{Log: ddlogs.AppendLog(nil, &c, rn.Defaults)}
}

// plain shows a record as it is (decoded lines, dead letters).
func plain(r *record.Record) Event {
	o := dlq.OriginOf(r.Origin)
	ev := Event{Origin: &o, EventID: r.EventID, Timestamp: r.Timestamp, Kind: r.Kind.String()}
	if r.Kind == record.KindRaw {
		// A dead letter of raw bytes holds them in base64: shown by size.
		ev.Bytes = len(r.Message)
		return ev
	}
	msg := redact.Text(string(r.Message))
	ev.Message = &msg
	return ev
}

// raw shows a record as a source received it: decoded when it is base64
// (a Firehose record), decompressed when it is gzip, as text when it is
// text.
func (rn Renderer) raw(r *record.Record) Event {
	ev := plain(r)
	ev.Kind, ev.Message = "", nil
	ev.Bytes = len(r.Message)
	data := r.Message
	if d, err := base64.StdEncoding.AppendDecode(nil, data); err == nil && len(d) > 0 {
		data = d
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		ev.Gzip = true
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return ev
		}
		out, err := io.ReadAll(io.LimitReader(zr, rawPreview+1))
		if err != nil && len(out) == 0 {
			return ev
		}
		data = out
	}
	if len(data) > rawPreview {
		data, ev.Truncated = data[:rawPreview], true
	}
	if !text(data) {
		return ev
	}
	if rn.Scrub != nil {
		// Scrubbed as its decoded events will be: the rules' scopes read
		// the record's origin and tags.
		c := *r
		c.Message = data
		data = rn.Scrub(&record.Batch{Records: []record.Record{c}}).Records[0].Message
	}
	msg := redact.Text(strings.ToValidUTF8(string(data), "\uFFFD"))
	ev.Message = &msg
	return ev
}

// text reports whether data reads as text: valid UTF-8 (but for a cut
// last rune) without control bytes other than whitespace.
func text(data []byte) bool {
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if r == utf8.RuneError && n <= 1 && len(data) > utf8.UTFMax {
			return false
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
		data = data[n:]
	}
	return true
}
