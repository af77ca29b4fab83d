// Package cwlogs reads CloudWatch Logs subscription data: gzip layers
// (multi-member, bounded) and the JSON envelope of DATA_MESSAGE and
// CONTROL_MESSAGE documents, possibly several concatenated in one record.
// A document of another message type is an error (ErrUnknownMessageType),
// for the caller to dead-letter, never data nor a control message. See
// docs/wire-formats.md#cloudwatch-logs-subscription-payload.
package cwlogs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fastjson"
)

// ErrTooLarge is returned when data decompresses beyond the limit.
var ErrTooLarge = errors.New("decompressed data exceeds the limit")

// IsGzip reports whether p starts with the gzip magic bytes.
func IsGzip(p []byte) bool { return len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b }

// maxLayers bounds nested gzip (a record gzipped by CloudWatch inside an
// object gzipped by S3, say); more than this is not real data.
const maxLayers = 4

var readers = sync.Pool{New: func() any { return new(gzip.Reader) }}

// Gunzip removes every gzip layer of src. Concatenated members are read as
// one stream, also when line ends separate them (a delimiter processor's
// "\n" after each record, docs/wire-formats.md#cloudwatch-framings). It fails with ErrTooLarge rather than inflate past limit bytes,
// so a decompression bomb costs at most limit bytes of memory. The result
// is src itself when src is not gzip, and otherwise is built in dst's
// storage (for the first layer) so that a caller can reuse one buffer.
func Gunzip(dst, src []byte, limit int) ([]byte, error) {
	in := src
	for layer := 0; IsGzip(in); layer++ {
		if layer == maxLayers {
			return nil, fmt.Errorf("more than %d gzip layers", maxLayers)
		}
		var buf []byte
		if layer == 0 {
			buf = dst[:0]
		}
		out, err := gunzipMembers(buf, in, limit)
		if err != nil {
			return nil, err
		}
		in = out
	}
	return in, nil
}

// gunzipMembers appends to dst the contents of the gzip members of in, one
// after the other, skipping the line ends between them.
func gunzipMembers(dst, in []byte, limit int) ([]byte, error) {
	zr := readers.Get().(*gzip.Reader)
	defer readers.Put(zr)
	var m Members
	if err := m.Reset(zr, bytes.NewReader(in)); err != nil {
		return nil, fmt.Errorf("gzip header: %w", err)
	}
	return readAllLimit(dst, &m, limit)
}

func readAllLimit(dst []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			if len(dst) > limit {
				return nil, ErrTooLarge
			}
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return nil, ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("truncated gzip: %w", err)
			}
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
}

// Event is one log event of a DATA_MESSAGE. Its byte slices alias the
// parser's memory and are valid only during the callback.
type Event struct {
	ID        []byte
	Timestamp int64 // ms since the epoch; 0 when TimestampError is set
	// TimestampError says why the event's timestamp could not be read
	// (TimestampMissing, TimestampNotANumber, TimestampNotWholeMS,
	// TimestampNotPositive); "" when it was read. A number written as a
	// float or a string of digits is read when that loses nothing.
	TimestampError string
	Message        []byte
	// Account and Region from extractedFields (@aws.account, @aws.region),
	// present when the subscription filter emits system fields.
	Account, Region []byte
}

// Envelope is one subscription document.
type Envelope struct {
	MessageType string
	Owner       string
	LogGroup    string
	LogStream   string
	// Events is the number of logEvents of a DATA_MESSAGE, set once they
	// are checked (before the first onEvent), so that a caller can size
	// its buffers once.
	Events int
}

// Data and Control are the message types.
const (
	Data    = "DATA_MESSAGE"
	Control = "CONTROL_MESSAGE"
)

// ErrNotEnvelope is returned when a document is JSON but not a subscription
// envelope (an access-log line delivered directly, for example).
var ErrNotEnvelope = errors.New("not a CloudWatch Logs subscription document")

// ErrUnknownMessageType is returned for an envelope whose messageType is
// neither DATA_MESSAGE nor CONTROL_MESSAGE. Its events are not read: what
// they mean is unknown, so the caller dead-letters the document (whose
// bytes can be replayed once gwpipe knows the type) rather than deliver or
// drop them.
var ErrUnknownMessageType = errors.New("unknown messageType")

// Parse walks the envelopes concatenated in data ({..}{..} or {..}\n{..}),
// calling onEnvelope once per document and onEvent for each of its events.
// Control messages are reported to onEnvelope only; a document of another
// message type is reported to onEnvelope, then fails with
// ErrUnknownMessageType.
func Parse(p *fastjson.Parser, data []byte, onEnvelope func(*Envelope) error, onEvent func(*Envelope, *Event) error) error {
	rest := data
	for doc := 0; ; doc++ {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			if doc == 0 {
				return ErrNotEnvelope
			}
			return nil
		}
		end, err := ObjectEnd(rest)
		if err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		if err := ParseDocument(p, rest[:end], onEnvelope, onEvent); err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		rest = rest[end:]
	}
}

// ParseDocument reads one subscription document (one JSON object, white
// space around it allowed). It fails with ErrNotEnvelope when doc is a JSON
// object with neither messageType nor logEvents at its top level. A
// DATA_MESSAGE is checked whole before onEvent sees any of its events, so
// that a malformed document produces nothing.
func ParseDocument(p *fastjson.Parser, doc []byte, onEnvelope func(*Envelope) error, onEvent func(*Envelope, *Event) error) error {
	v, err := p.ParseBytes(doc)
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return ParseValue(v, onEnvelope, onEvent)
}

// ParseValue is ParseDocument on a document already parsed, for a caller
// that had to parse it anyway to find where it ends.
func ParseValue(v *fastjson.Value, onEnvelope func(*Envelope) error, onEvent func(*Envelope, *Event) error) error {
	o, err := v.Object()
	if err != nil {
		return ErrNotEnvelope
	}
	mt := o.Get("messageType")
	events := o.Get("logEvents")
	if mt == nil {
		if events != nil {
			// The events of a subscription document without its type:
			// neither a log line nor data whose meaning is known.
			return errors.New("logEvents without messageType")
		}
		return ErrNotEnvelope
	}
	env := Envelope{
		MessageType: string(mt.GetStringBytes()),
		Owner:       string(v.GetStringBytes("owner")),
		LogGroup:    string(v.GetStringBytes("logGroup")),
		LogStream:   string(v.GetStringBytes("logStream")),
	}
	if onEnvelope != nil {
		if err := onEnvelope(&env); err != nil {
			return err
		}
	}
	switch env.MessageType {
	case Data:
	case Control:
		return nil
	default:
		return fmt.Errorf("%w %s (neither %s nor %s)", ErrUnknownMessageType, mt.MarshalTo(nil), Data, Control)
	}
	if events == nil {
		return errors.New("DATA_MESSAGE without logEvents")
	}
	arr, err := events.Array()
	if err != nil {
		return errors.New("logEvents is not an array")
	}
	env.Events = len(arr)
	for i, e := range arr {
		if e.Type() != fastjson.TypeObject {
			return fmt.Errorf("logEvents[%d] is not an object", i)
		}
		if msg := e.Get("message"); msg == nil || msg.Type() != fastjson.TypeString {
			return fmt.Errorf("logEvents[%d] has no message string", i)
		}
	}
	var ev Event
	for _, e := range arr {
		ev = Event{ID: idBytes(e.Get("id")), Message: e.GetStringBytes("message")}
		ev.Timestamp, ev.TimestampError = timestamp(e.Get("timestamp"))
		if xf := e.Get("extractedFields"); xf != nil {
			ev.Account = xf.GetStringBytes("@aws.account")
			ev.Region = xf.GetStringBytes("@aws.region")
		}
		if err := onEvent(&env, &ev); err != nil {
			return err
		}
	}
	return nil
}

// maxExactFloat is the largest integer every smaller one of which a
// float64 holds exactly (2^53).
const maxExactFloat = 1 << 53

// Why an event's timestamp could not be read (Event.TimestampError).
const (
	TimestampMissing     = "missing"
	TimestampNotANumber  = "not_a_number"
	TimestampNotWholeMS  = "not_whole_ms" // a fraction of a millisecond, or beyond what a float holds exactly
	TimestampNotPositive = "not_positive"
)

// timestamp reads an event's timestamp: an integer of milliseconds, as
// CloudWatch sends it, or the same written as a float (1.7e12) or a string
// of digits, when that loses nothing. Anything else gives 0 and why.
// (specs: logEvents[].timestamp is an int64 of epoch milliseconds.)
func timestamp(v *fastjson.Value) (int64, string) {
	if v == nil {
		return 0, TimestampMissing
	}
	var ms int64
	switch v.Type() {
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			ms = n
			break
		}
		f, err := v.Float64()
		if err != nil || f != math.Trunc(f) || math.Abs(f) > maxExactFloat {
			return 0, TimestampNotWholeMS
		}
		ms = int64(f)
	case fastjson.TypeString:
		b := v.GetStringBytes()
		n, err := strconv.ParseInt(string(b), 10, 64)
		// Digits, or a minus and digits (then not positive, as the same
		// number unquoted is); not "+5", nor " 5".
		digits := b
		if len(digits) > 1 && digits[0] == '-' {
			digits = digits[1:]
		}
		if err != nil || len(digits) == 0 || digits[0] < '0' || digits[0] > '9' {
			return 0, TimestampNotANumber
		}
		ms = n
	default:
		return 0, TimestampNotANumber
	}
	if ms <= 0 {
		return 0, TimestampNotPositive
	}
	return ms, ""
}

// idBytes accepts an id as a string, as CloudWatch sends it, or as a number.
func idBytes(v *fastjson.Value) []byte {
	if v == nil {
		return nil
	}
	if v.Type() == fastjson.TypeString {
		return v.GetStringBytes()
	}
	if v.Type() == fastjson.TypeNumber {
		return v.MarshalTo(nil)
	}
	return nil
}

// ErrTruncated is returned by ObjectEnd when p ends before its object does.
var ErrTruncated = errors.New("truncated JSON document")

// ObjectEnd returns the length of the JSON object at the start of p,
// scanning strings and escapes but not validating (a parser does that):
// it is how concatenated documents ({..}{..}) are told apart. It fails with
// ErrNotEnvelope when p does not start with '{' and ErrTruncated when the
// object does not close.
func ObjectEnd(p []byte) (int, error) {
	if len(p) == 0 || p[0] != '{' {
		return 0, ErrNotEnvelope
	}
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '"':
			i++
			for ; i < len(p); i++ {
				if p[i] == '\\' {
					i++
					continue
				}
				if p[i] == '"' {
					break
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, ErrTruncated
}

// ClaimsEnvelope tells whether a JSON object has a messageType or logEvents
// key: a subscription envelope, or a broken one, but never a log line (which
// would deliver an envelope's JSON as a log). It only looks for the keys,
// which may be nested in an object that is not an envelope: ParseDocument
// tells, by the top-level keys. Every reader of source data asks it first.
func ClaimsEnvelope(b []byte) bool {
	return hasKey(b, `"messageType"`) || hasKey(b, `"logEvents"`)
}

func hasKey(b []byte, key string) bool {
	for {
		i := bytes.Index(b, []byte(key))
		if i < 0 {
			return false
		}
		b = bytes.TrimLeft(b[i+len(key):], " \t\r\n")
		if len(b) > 0 && b[0] == ':' {
			return true
		}
	}
}
