package cwlogs

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
)

// Scanner reads the usual DATA_MESSAGE document in one pass: strings are
// unescaped as they are found, straight into one buffer, and no tree of
// values is built. It is the hot path of decoding (a JSON access log in an
// envelope is a string full of escaped quotes, which a general parser
// scans twice: once for its end, once to unescape it).
//
// It accepts a strict subset of what ParseDocument accepts and declines
// everything else (Scan returns false), for the caller to take the general
// path: any other message type, keys written with escapes, a key twice,
// an id that is not a string, a timestamp that is missing or not a plain
// positive integer,
// numbers outside strict JSON, nested objects other than extractedFields,
// \u escapes of surrogates or with bad hex, and anything malformed. So a
// document is never read differently by the two paths: on what Scan
// accepts, Emit calls back exactly as ParseDocument would
// (FuzzScannerAgreesWithParse holds it to that).
type Scanner struct {
	env    Envelope
	events []scannedEvent
	buf    []byte // the unescaped strings of the document scanned last
	// The envelope's strings of the previous document, reused when the next
	// has the same: consecutive documents mostly share their log stream.
	owner, group, stream string
}

// span is a part of Scanner.buf.
type span struct{ off, end int32 }

// scannedEvent is one log event; a field it lacks is an empty span, which
// Emit gives as an empty slice: the readers of Event treat both alike.
type scannedEvent struct {
	ts                       int64
	id, msg, account, region span
}

// maxScanned bounds what Scanner takes on: spans are 32-bit offsets.
const maxScanned = 1 << 30

// Scan reads doc, one JSON object with white space around it allowed, and
// reports whether it is a DATA_MESSAGE that the scanner reads (see
// Scanner). Only then may Emit be called.
func (s *Scanner) Scan(doc []byte) bool {
	if len(doc) >= maxScanned {
		return false
	}
	s.events = s.events[:0]
	s.buf = s.buf[:0]
	if cap(s.buf) < len(doc)+8 { // str writes into the room, see there
		s.buf = make([]byte, 0, len(doc)+8)
	}
	r := scanReader{p: doc, s: s}
	r.ws()
	const (
		seenType = 1 << iota
		seenOwner
		seenGroup
		seenStream
		seenEvents
	)
	var seen int
	var owner, group, stream span
	ok := r.object(func(key []byte) bool {
		bit, ok := 0, false
		switch string(key) {
		case "messageType":
			bit = seenType
			var mt span
			mt, ok = r.str()
			ok = ok && string(s.buf[mt.off:mt.end]) == Data
		case "owner":
			bit = seenOwner
			owner, ok = r.str()
		case "logGroup":
			bit = seenGroup
			group, ok = r.str()
		case "logStream":
			bit = seenStream
			stream, ok = r.str()
		case "logEvents":
			bit = seenEvents
			ok = r.events()
		default:
			ok = r.skip(0)
		}
		return once(&seen, bit, ok)
	})
	if !ok {
		return false
	}
	r.ws()
	if r.i != len(doc) || seen&seenType == 0 || seen&seenEvents == 0 {
		return false
	}
	s.owner = s.reuse(s.owner, owner)
	s.group = s.reuse(s.group, group)
	s.stream = s.reuse(s.stream, stream)
	s.env = Envelope{MessageType: Data, Owner: s.owner, LogGroup: s.group, LogStream: s.stream}
	return true
}

// Trim lets go of the scanner's buffers when they grew beyond limit bytes
// (after a large document), so that a scanner kept for reuse does not hold
// the largest document it ever read.
func (s *Scanner) Trim(limit int) {
	if cap(s.buf) > limit {
		s.buf = nil
	}
	if cap(s.events)*int(unsafe.Sizeof(scannedEvent{})) > limit {
		s.events = nil
	}
}

func (s *Scanner) reuse(prev string, sp span) string {
	b := s.buf[sp.off:sp.end]
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// Size is the length of the unescaped strings of the document Scan
// accepted last: what keeping all of its events' ids and messages takes at
// most.
func (s *Scanner) Size() int { return len(s.buf) }

func (s *Scanner) bytes(sp span) []byte { return s.buf[sp.off:sp.end:sp.end] }

// Emit calls back for the document Scan accepted, as ParseValue does: the
// event slices alias the scanner's buffer and are valid until the next Scan.
func (s *Scanner) Emit(onEnvelope func(*Envelope) error, onEvent func(*Envelope, *Event) error) error {
	env := s.env
	if onEnvelope != nil {
		if err := onEnvelope(&env); err != nil {
			return err
		}
	}
	env.Events = len(s.events)
	var ev Event
	for i := range s.events {
		e := &s.events[i]
		ev = Event{ID: s.bytes(e.id), Timestamp: e.ts, Message: s.bytes(e.msg), Account: s.bytes(e.account), Region: s.bytes(e.region)}
		if err := onEvent(&env, &ev); err != nil {
			return err
		}
	}
	return nil
}

type scanReader struct {
	p []byte
	i int
	s *Scanner
}

func (r *scanReader) ws() {
	for r.i < len(r.p) {
		switch r.p[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *scanReader) eat(c byte) bool {
	if r.i < len(r.p) && r.p[r.i] == c {
		r.i++
		return true
	}
	return false
}

// key reads an object key written without escapes.
func (r *scanReader) key() ([]byte, bool) {
	if !r.eat('"') {
		return nil, false
	}
	for j := r.i; j < len(r.p); j++ {
		switch r.p[j] {
		case '"':
			k := r.p[r.i:j]
			r.i = j + 1
			return k, true
		case '\\':
			return nil, false
		}
	}
	return nil, false
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// quotes and backslashes return the exact masks (the high bit of each
// byte) of the quotes and of the backslashes in w: no borrow crosses
// bytes, so every set bit is one.
func quotes(w uint64) uint64 { return zeroBytes(w ^ ones*'"') }

func backslashes(w uint64) uint64 { return zeroBytes(w ^ ones*'\\') }

func zeroBytes(x uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	return ^((x&low7 + low7) | x) & highs
}

// str reads a JSON string, appending it unescaped to the scanner's buffer.
//
// It writes a word at a time into the buffer's capacity, never through
// append: Scan makes the capacity 8 bytes more than the document's length,
// and unescaping never writes more bytes than it has read (an escape is
// longer than what it stands for), so the output, which starts behind the
// input, stays behind it: a word stored at the output, at most 7 bytes
// past where the input's word starts, lies within the room whenever a word
// can be read at the input.
func (r *scanReader) str() (span, bool) {
	if !r.eat('"') {
		return span{}, false
	}
	p, buf := r.p, r.s.buf
	start := len(buf)
	out := buf[:cap(buf)]
	o, i := start, r.i
	for {
		if i+8 <= len(p) {
			w := binary.LittleEndian.Uint64(p[i:])
			m := quotes(w) | backslashes(w)
			binary.LittleEndian.PutUint64(out[o:], w)
			if m == 0 {
				i += 8
				o += 8
				continue
			}
			// Every quote and backslash of the word, in order: the
			// escapes of a JSON text (\" above all, a few bytes apart)
			// in place; the first quote not escaped ends the string; any
			// other escape leaves the word to the code below.
			prev := 0 // bytes of the word read
			for ; m != 0; m &= m - 1 {
				k := bits.TrailingZeros64(m) >> 3
				if k < prev {
					continue // the character of an escape
				}
				binary.LittleEndian.PutUint64(out[o:], w>>(8*prev))
				o += k - prev
				prev = k
				if byte(w>>(8*k)) == '"' {
					break
				}
				if i+k+1 < len(p) {
					if c := p[i+k+1]; c == '"' || c == '\\' || c == '/' {
						out[o] = c
						o++
						prev = k + 2
						continue
					}
				}
				break
			}
			if m == 0 { // no quote, no other escape: the word is read
				if prev < 8 {
					binary.LittleEndian.PutUint64(out[o:], w>>(8*prev))
					o += 8 - prev
					prev = 8
				}
				i += prev
				continue
			}
			i += prev
		} else {
			for i < len(p) && p[i] != '"' && p[i] != '\\' {
				out[o] = p[i]
				i++
				o++
			}
			if i == len(p) {
				return span{}, false
			}
		}
		if p[i] == '"' {
			r.i = i + 1
			r.s.buf = out[:o]
			return span{int32(start), int32(o)}, true
		}
		// A backslash: the escapes of a JSON text (\" most of all) in
		// place, the others as jsonstr reads them.
		if i+1 < len(p) {
			if c := p[i+1]; c == '"' || c == '\\' || c == '/' {
				out[o] = c
				o++
				i += 2
				continue
			}
		}
		b, n := jsonstr.AppendEscape(out[:o], p[i:])
		if n == 0 {
			return span{}, false // a surrogate half or not JSON
		}
		out, o = b[:cap(b)], len(b)
		i += n
	}
}

// skipStr steps over a string that is not read (its end found as any JSON
// parser finds it: a quote not escaped).
func (r *scanReader) skipStr() bool {
	if !r.eat('"') {
		return false
	}
	for j := r.i; j < len(r.p); j++ {
		switch r.p[j] {
		case '"':
			r.i = j + 1
			return true
		case '\\':
			j++
		}
	}
	return false
}

// int reads a plain JSON integer of at most 18 digits: what GetInt64 reads
// the same way whatever the parser.
func (r *scanReader) int() (int64, bool) {
	neg := r.eat('-')
	start := r.i
	var v int64
	for r.i < len(r.p) && r.p[r.i] >= '0' && r.p[r.i] <= '9' {
		v = v*10 + int64(r.p[r.i]-'0')
		r.i++
	}
	n := r.i - start
	if n == 0 || n > 18 || (n > 1 && r.p[start] == '0') {
		return 0, false
	}
	if r.i < len(r.p) {
		switch r.p[r.i] {
		case '.', 'e', 'E', '+', '-':
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// skipNumber steps over a number of strict JSON grammar.
func (r *scanReader) skipNumber() bool {
	r.eat('-')
	start := r.i
	digits := func() int {
		n := 0
		for r.i < len(r.p) && r.p[r.i] >= '0' && r.p[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	n := digits()
	if n == 0 || (n > 1 && r.p[start] == '0') {
		return false
	}
	if r.eat('.') && digits() == 0 {
		return false
	}
	if r.eat('e') || r.eat('E') {
		if !r.eat('+') {
			r.eat('-')
		}
		if digits() == 0 {
			return false
		}
	}
	if r.i < len(r.p) {
		switch c := r.p[r.i]; {
		case c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-':
			return false
		}
	}
	return true
}

func (r *scanReader) literal(lit string) bool {
	if len(r.p)-r.i >= len(lit) && string(r.p[r.i:r.i+len(lit)]) == lit {
		r.i += len(lit)
		return true
	}
	return false
}

// skip steps over a value that is not read: a string, number, literal or
// array of them. Objects are left to the general path.
func (r *scanReader) skip(depth int) bool {
	if r.i == len(r.p) || depth > 8 {
		return false
	}
	switch c := r.p[r.i]; {
	case c == '"':
		return r.skipStr()
	case c == '-' || (c >= '0' && c <= '9'):
		return r.skipNumber()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case c == '[':
		return r.list('[', ']', func() bool { return r.skip(depth + 1) })
	}
	return false
}

// once adds a key's bit to seen, for a value read (ok) of a key not seen
// before; it reports whether it did (a key twice is left to the general
// parser, which keeps the first).
func once(seen *int, bit int, ok bool) bool {
	if !ok || *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// list reads a JSON array or object: open, items separated by commas
// (item reads one, at its first byte), close.
func (r *scanReader) list(open, close byte, item func() bool) bool {
	if !r.eat(open) {
		return false
	}
	r.ws()
	if r.eat(close) {
		return true
	}
	for {
		if !item() {
			return false
		}
		r.ws()
		if r.eat(close) {
			return true
		}
		if !r.eat(',') {
			return false
		}
		r.ws()
	}
}

// object reads an object whose keys are written without escapes, calling
// value for each key with the reader at its value, which value must read.
func (r *scanReader) object(value func(key []byte) bool) bool {
	return r.list('{', '}', func() bool {
		key, ok := r.key()
		if !ok {
			return false
		}
		r.ws()
		if !r.eat(':') {
			return false
		}
		r.ws()
		return value(key)
	})
}

// events reads the logEvents array.
func (r *scanReader) events() bool { return r.list('[', ']', r.event) }

func (r *scanReader) event() bool {
	const (
		seenID = 1 << iota
		seenTS
		seenMsg
		seenXF
	)
	var seen int
	var e scannedEvent
	ok := r.object(func(key []byte) bool {
		bit, ok := 0, false
		switch string(key) {
		case "id":
			bit = seenID
			e.id, ok = r.str()
		case "timestamp":
			bit = seenTS
			e.ts, ok = r.int()
		case "message":
			bit = seenMsg
			e.msg, ok = r.str()
		case "extractedFields":
			bit = seenXF
			ok = r.extracted(&e)
		default:
			ok = r.skip(0)
		}
		return once(&seen, bit, ok)
	})
	// A timestamp missing or not positive is the general path's to report
	// (Event.TimestampError).
	if !ok || seen&seenMsg == 0 || seen&seenTS == 0 || e.ts <= 0 {
		return false
	}
	r.s.events = append(r.s.events, e)
	return true
}

// extracted reads extractedFields, an object of strings, keeping the
// account and region system fields.
func (r *scanReader) extracted(e *scannedEvent) bool {
	const (
		seenAccount = 1 << iota
		seenRegion
	)
	var seen int
	return r.object(func(key []byte) bool {
		switch string(key) {
		case "@aws.account":
			var ok bool
			e.account, ok = r.str()
			return once(&seen, seenAccount, ok)
		case "@aws.region":
			var ok bool
			e.region, ok = r.str()
			return once(&seen, seenRegion, ok)
		}
		return r.skipStr()
	})
}
