package fakeintake

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Log is one accepted log with its reserved attributes decoded.
type Log struct {
	// Raw is the log object as accepted (compacted; after truncation, the
	// truncated object). It is what logs.jsonl holds.
	Raw json.RawMessage
	// Message, Status, Source (ddsource), Service and Hostname (hostname, or
	// host when hostname is absent) are the string attributes of those
	// names; empty when absent or not strings.
	Message  string
	Status   string
	Source   string
	Service  string
	Hostname string
	// Tags are the ddtags attribute and the ddtags query parameter, split on
	// commas.
	Tags []string
	// Timestamp is the timestamp attribute: a number is Unix milliseconds, a
	// string RFC 3339 or Unix milliseconds. Zero when absent or unreadable.
	Timestamp time.Time
	// Attrs is the whole object decoded by encoding/json (numbers are
	// float64). Nil if encoding/json cannot represent it (e.g. 1e400).
	Attrs map[string]any
	// Truncated reports that the log exceeded MaxLogBytes and its message was
	// shortened.
	Truncated bool
	// Received is the server time the payload was accepted.
	Received time.Time
}

// Lookup returns the attribute at path (e.g. "http", "status_code") in Attrs.
func (l Log) Lookup(path ...string) (any, bool) {
	var cur any = l.Attrs
	for _, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// logEntry is a log as kept in memory: just its bytes, so intake stays cheap;
// Logs decodes the rest on demand.
type logEntry struct {
	raw       []byte // aliases the buffer shared by the logs of one payload
	meta      *logMeta
	truncated bool
}

// logMeta is shared by all logs of one payload.
type logMeta struct {
	received  time.Time
	queryTags []string
}

var parserPool fastjson.ParserPool

// parseLogs validates a logs payload: a JSON array of objects (or one
// object), each with a string message.
func parseLogs(body []byte, r *http.Request, now time.Time) (*batch, error) {
	p := parserPool.Get()
	defer parserPool.Put(p)
	root, err := parseJSON(p, body)
	if err != nil {
		return nil, err
	}
	var items []*fastjson.Value
	switch root.Type() {
	case fastjson.TypeArray:
		items, _ = root.Array() // cannot fail on an array
	case fastjson.TypeObject:
		items = []*fastjson.Value{root}
	default:
		return nil, fmt.Errorf("payload must be a JSON array of log objects, got %s", root.Type())
	}
	if len(items) == 0 {
		return nil, errors.New("no log entries")
	}
	if len(items) > MaxLogEntries {
		return nil, errors.New("too many log entries")
	}

	meta := &logMeta{received: now, queryTags: splitTags(r.URL.Query().Get("ddtags"))}
	// One allocation holds every log of the payload: compacted JSON is not
	// longer than its source. (Should a truncated log's re-escaped keys make
	// it grow, earlier entries keep pointing at the old array, which is fine.)
	buf := make([]byte, 0, len(body))
	b := &batch{logs: make([]logEntry, 0, len(items))}
	for i, item := range items {
		e := logEntry{meta: meta}
		start := len(buf)
		if buf, e.truncated, err = appendLog(buf, item); err != nil {
			return nil, fmt.Errorf("log %d: %w", i, err)
		}
		e.raw = buf[start:len(buf):len(buf)]
		if e.truncated {
			b.truncated++
		}
		b.logs = append(b.logs, e)
	}
	return b, nil
}

// appendLog validates one log and appends its JSON to buf, truncated if
// over MaxLogBytes, reporting whether it was.
func appendLog(buf []byte, item *fastjson.Value) ([]byte, bool, error) {
	if item.Type() != fastjson.TypeObject {
		return buf, false, errors.New("not a JSON object")
	}
	// Copy before reading any field: fastjson re-escapes the strings it has
	// decoded with Go's quoting rules, not JSON's; values not yet read are
	// copied verbatim.
	start := len(buf)
	buf = item.MarshalTo(buf)
	if hasControlChar(buf[start:]) {
		return buf, false, errControlChar
	}
	if msg := item.Get("message"); msg == nil || msg.Type() != fastjson.TypeString {
		return buf, false, errors.New(`missing string field "message"`)
	}
	if len(buf)-start <= MaxLogBytes {
		return buf, false, nil
	}
	return append(buf[:start], truncateLog(item, MaxLogBytes)...), true, nil
}

// parseJSON parses body strictly. fastjson's parser bounds nesting depth
// (its validator does not, so it must come second) and the validator
// rejects what the lazy parser lets through: bad escapes, control
// characters, malformed numbers, NaN.
func parseJSON(p *fastjson.Parser, body []byte) (*fastjson.Value, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if err := fastjson.ValidateBytes(body); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	return v, nil
}

var errControlChar = errors.New("malformed JSON: control character in string")

// hasControlChar reports whether compact JSON, as fastjson's MarshalTo
// writes it (no whitespace between tokens), holds a raw control character.
// There it can only be inside a string, where JSON forbids it. fastjson's
// validator misses those that precede an escape sequence in the same string.
//
// It tests eight bytes at a time ("hasless" from Bit Twiddling Hacks): a
// byte below 0x20 borrows when 0x20 is subtracted from it and has no high
// bit of its own, so it shows in the 0x80 mask. Borrows can set more mask
// bits, but only when some byte is below 0x20, so the answer is exact.
func hasControlChar(compact []byte) bool {
	const (
		spaces = 0x2020202020202020
		highs  = 0x8080808080808080
	)
	for len(compact) >= 8 {
		x := binary.LittleEndian.Uint64(compact)
		if (x-spaces)&^x&highs != 0 {
			return true
		}
		compact = compact[8:]
	}
	for _, c := range compact {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// truncateLog re-encodes the object item with its message shortened so the
// whole log fits in limit bytes, keeping at most limit bytes of message; if
// the other attributes alone exceed limit, the message becomes empty. The
// message is cut at a UTF-8 boundary.
func truncateLog(item *fastjson.Value, limit int) []byte {
	obj, _ := item.Object() // the caller checked it is an object
	msg := string(item.GetStringBytes("message"))

	// Members before and after the (first) message, each with its comma.
	var head, tail []byte
	seen := false
	obj.Visit(func(key []byte, v *fastjson.Value) {
		switch {
		case !seen && string(key) == "message":
			seen = true
		case !seen:
			head = appendMember(head, key, v)
			head = append(head, ',')
		default:
			tail = append(tail, ',')
			tail = appendMember(tail, key, v)
		}
	})
	const msgKey = `"message":`
	budget := limit - (len("{}") + len(head) + len(msgKey) + len(tail)) // for the encoded message

	keep := min(len(msg), limit, budget-len(`""`))
	for {
		keep = runeBoundary(msg, max(keep, 0))
		enc := appendJSONString(nil, msg[:keep])
		if len(enc) > budget && keep > 0 {
			// Escapes make the encoding longer than the message: shrink in
			// proportion, which converges in a few rounds.
			keep = min(int(int64(keep)*int64(budget)/int64(len(enc))), keep-1)
			continue
		}
		out := make([]byte, 0, limit-budget+len(enc))
		out = append(out, '{')
		out = append(out, head...)
		out = append(out, msgKey...)
		out = append(out, enc...)
		out = append(out, tail...)
		return append(out, '}')
	}
}

func appendMember(dst, key []byte, v *fastjson.Value) []byte {
	dst = appendJSONString(dst, string(key))
	dst = append(dst, ':')
	return v.MarshalTo(dst) // other values were not read, so this copies them verbatim
}

// appendJSONString appends s as a JSON string with encoding/json's rules,
// minus HTML escaping, which would only lengthen a truncated log.
func appendJSONString(dst []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(fmt.Sprintf("fakeintake: encode string: %v", err)) // cannot happen for a string
	}
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// runeBoundary returns the largest n' <= n that does not split a UTF-8
// sequence of s.
func runeBoundary(s string, n int) int {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

func splitTags(s string) []string {
	if s == "" {
		return nil
	}
	var tags []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// decodeLogs turns kept entries into Logs. It runs without the server lock.
func decodeLogs(entries []logEntry) []Log {
	var p fastjson.Parser
	logs := make([]Log, len(entries))
	for i, e := range entries {
		logs[i] = e.decode(&p)
	}
	return logs
}

func (e logEntry) decode(p *fastjson.Parser) Log {
	l := Log{Raw: json.RawMessage(e.raw), Truncated: e.truncated, Received: e.meta.received}
	v, err := p.ParseBytes(e.raw)
	if err != nil {
		return l // cannot happen: raw was validated at intake
	}
	str := func(key string) string { return string(v.GetStringBytes(key)) }
	l.Message = str("message")
	l.Status = str("status")
	l.Source = str("ddsource")
	l.Service = str("service")
	if l.Hostname = str("hostname"); l.Hostname == "" {
		l.Hostname = str("host")
	}
	l.Tags = append(splitTags(str("ddtags")), e.meta.queryTags...)
	l.Timestamp = logTimestamp(v.Get("timestamp"))
	if err := json.Unmarshal(e.raw, &l.Attrs); err != nil {
		l.Attrs = nil
	}
	return l
}

// logTimestamp reads a timestamp attribute as the real intake does: numbers
// are Unix milliseconds, strings RFC 3339 (or milliseconds).
func logTimestamp(v *fastjson.Value) time.Time {
	if v == nil {
		return time.Time{}
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		if ms, err := v.Int64(); err == nil {
			return time.UnixMilli(ms).UTC()
		}
		if f, err := v.Float64(); err == nil && math.Abs(f) < 1e15 {
			return time.UnixMicro(int64(f * 1000)).UTC()
		}
	case fastjson.TypeString:
		s := string(v.GetStringBytes())
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.UnixMilli(ms).UTC()
		}
	}
	return time.Time{}
}
