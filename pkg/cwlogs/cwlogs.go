// Package cwlogs reads CloudWatch Logs subscription data: gzip layers
// (multi-member, bounded) and the JSON envelope of DATA_MESSAGE and
// CONTROL_MESSAGE documents, possibly several concatenated in one record.
// See specs §1.
package cwlogs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
// one stream. It fails with ErrTooLarge rather than inflate past limit bytes,
// so a decompression bomb costs at most limit bytes of memory. The result
// is src itself when src is not gzip, and otherwise is built in dst's
// storage (for the first layer) so that a caller can reuse one buffer.
func Gunzip(dst, src []byte, limit int) ([]byte, error) {
	in := src
	for layer := 0; IsGzip(in); layer++ {
		if layer == maxLayers {
			return nil, fmt.Errorf("more than %d gzip layers", maxLayers)
		}
		zr := readers.Get().(*gzip.Reader)
		if err := zr.Reset(bytes.NewReader(in)); err != nil {
			readers.Put(zr)
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		var buf []byte
		if layer == 0 {
			buf = dst[:0]
		}
		out, err := readAllLimit(buf, zr, limit)
		readers.Put(zr)
		if err != nil {
			return nil, err
		}
		in = out
	}
	return in, nil
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
	Timestamp int64
	Message   []byte
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
}

// Data and Control are the message types.
const (
	Data    = "DATA_MESSAGE"
	Control = "CONTROL_MESSAGE"
)

// LooksLikeEnvelope reports whether p (after any gzip layers) starts a JSON
// document that could be a subscription envelope, before paying for a parse.
func LooksLikeEnvelope(p []byte) bool {
	p = bytes.TrimLeft(p, " \t\r\n")
	if len(p) == 0 || p[0] != '{' {
		return false
	}
	head := p[:min(len(p), 512)]
	return bytes.Contains(head, []byte(`"messageType"`)) || bytes.Contains(head, []byte(`"logEvents"`)) ||
		bytes.Contains(p, []byte(`"messageType"`))
}

// ErrNotEnvelope is returned when a document is JSON but not a subscription
// envelope (an access-log line delivered directly, for example).
var ErrNotEnvelope = errors.New("not a CloudWatch Logs subscription document")

// Parse walks the envelopes concatenated in data ({..}{..} or {..}\n{..}),
// calling onEnvelope once per document and onEvent for each of its events.
// Documents of other message types are reported to onEnvelope only.
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
		end, err := valueEnd(rest)
		if err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		if err := parseOne(p, rest[:end], onEnvelope, onEvent); err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
		rest = rest[end:]
	}
}

func parseOne(p *fastjson.Parser, doc []byte, onEnvelope func(*Envelope) error, onEvent func(*Envelope, *Event) error) error {
	v, err := p.ParseBytes(doc)
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return ErrNotEnvelope
	}
	mt := o.Get("messageType")
	if mt == nil {
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
	if env.MessageType != Data {
		return nil
	}
	events := v.Get("logEvents")
	if events == nil {
		return errors.New("DATA_MESSAGE without logEvents")
	}
	arr, err := events.Array()
	if err != nil {
		return errors.New("logEvents is not an array")
	}
	var ev Event
	for i, e := range arr {
		if e.Type() != fastjson.TypeObject {
			return fmt.Errorf("logEvents[%d] is not an object", i)
		}
		msg := e.Get("message")
		if msg == nil || msg.Type() != fastjson.TypeString {
			return fmt.Errorf("logEvents[%d] has no message string", i)
		}
		ev = Event{ID: idBytes(e.Get("id")), Timestamp: e.GetInt64("timestamp"), Message: msg.GetStringBytes()}
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

// valueEnd returns the length of the JSON object at the start of p, scanning
// strings and escapes but not validating (the parser does that).
func valueEnd(p []byte) (int, error) {
	if p[0] != '{' {
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
	return 0, errors.New("truncated JSON document")
}
