package s3obj

import (
	"bytes"
	"strconv"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
)

// fastEnvelope is a subscription document as the fast path reads it:
// spans of the document.
type fastEnvelope struct {
	messageType, owner, group, stream []byte
	events                            []byte // the logEvents array, brackets included
}

// fastEvent is one log event's spans. message is still escaped.
type fastEvent struct {
	id      []byte
	ts      int64
	message []byte
	escaped bool
}

// parseEnvelopeFast reads one subscription document in a single pass and
// unescapes each message straight into the batch arena, instead of parsing
// it with a general JSON parser and then copying the messages: the envelope
// is the hot path of a replay. It handles the shape CloudWatch Logs writes
// and reports false for anything else (escaped names, extractedFields,
// surrogate escapes, malformed JSON…), leaving the document, untouched,
// to cwlogs.Parse: it never decides that a document is malformed.
//
// It only collects spans; the reader then unescapes the messages, and
// takes back what it added if an escape turns out to be one it leaves to
// the general parser. FuzzEnvelopeFastPath checks that whatever it accepts,
// cwlogs.Parse reads the same way.
func parseEnvelopeFast(doc []byte, evs []fastEvent) (env fastEnvelope, events []fastEvent, ok bool) {
	p := jparser{b: doc}
	if !p.byte('{') {
		return env, evs, false
	}
	if p.peek('}') {
		p.i++
	} else {
		for {
			key, ok := p.rawString()
			if !ok || !p.byte(':') {
				return env, evs, false
			}
			p.ws()
			var dst *[]byte
			switch string(key) {
			case "messageType":
				dst = &env.messageType
			case "owner":
				dst = &env.owner
			case "logGroup":
				dst = &env.group
			case "logStream":
				dst = &env.stream
			case "logEvents":
				if env.events != nil {
					return env, evs, false // duplicate key: leave it to the parser
				}
				start := p.i
				if evs, ok = p.events(evs[:0]); !ok {
					return env, evs, false
				}
				env.events = doc[start:p.i]
			default:
				if !p.skipValue(0) {
					return env, evs, false
				}
			}
			if dst != nil {
				if *dst != nil {
					return env, evs, false
				}
				s, ok := p.rawString()
				if !ok || bytes.IndexByte(s, '\\') >= 0 {
					return env, evs, false
				}
				if s == nil {
					s = []byte{}
				}
				*dst = s
			}
			p.ws()
			if p.peek(',') {
				p.i++
				continue
			}
			if !p.byte('}') {
				return env, evs, false
			}
			break
		}
	}
	p.ws()
	if p.i != len(doc) || env.messageType == nil {
		return env, evs, false
	}
	if string(env.messageType) == "DATA_MESSAGE" && env.events == nil {
		return env, evs, false // the parser's error to report
	}
	return env, evs, true
}

// jparser is a strict, allocation-free JSON walker over one document.
type jparser struct {
	b []byte
	i int
}

func (p *jparser) ws() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

func (p *jparser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

// byte skips whitespace and consumes c.
func (p *jparser) byte(c byte) bool {
	p.ws()
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

// rawString consumes a string and returns its contents, still escaped.
func (p *jparser) rawString() ([]byte, bool) {
	p.ws()
	if !p.peek('"') {
		return nil, false
	}
	start := p.i + 1
	// A byte loop: the messages of JSON access logs are full of escaped
	// quotes, where a vectorised search per escape costs more than it saves.
	b := p.b
	for i := start; i < len(b); i++ {
		switch b[i] {
		case '"':
			p.i = i + 1
			return b[start:i], true
		case '\\':
			i++ // the escaped byte; \uXXXX digits are plain bytes
		}
	}
	return nil, false
}

// events consumes the logEvents array.
func (p *jparser) events(evs []fastEvent) ([]fastEvent, bool) {
	if !p.byte('[') {
		return evs, false
	}
	if p.byte(']') {
		return evs, true
	}
	for {
		if !p.byte('{') {
			return evs, false
		}
		var ev fastEvent
		var haveMsg, haveID, haveTS bool
		if !p.byte('}') {
			for {
				key, ok := p.rawString()
				if !ok || !p.byte(':') {
					return evs, false
				}
				p.ws()
				switch string(key) {
				case "id":
					if haveID {
						return evs, false
					}
					haveID = true
					if p.peek('"') {
						s, ok := p.rawString()
						if !ok || bytes.IndexByte(s, '\\') >= 0 {
							return evs, false
						}
						ev.id = s
					} else {
						start := p.i
						if !p.number() {
							return evs, false
						}
						ev.id = p.b[start:p.i]
					}
				case "timestamp":
					if haveTS {
						return evs, false
					}
					haveTS = true
					start := p.i
					if !p.number() {
						return evs, false
					}
					n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
					if err != nil {
						return evs, false // a float or a huge number: the parser decides
					}
					ev.ts = n
				case "message":
					if haveMsg {
						return evs, false
					}
					haveMsg = true
					s, ok := p.rawString()
					if !ok {
						return evs, false
					}
					ev.message, ev.escaped = s, bytes.IndexByte(s, '\\') >= 0
				case "extractedFields":
					return evs, false // rare: account and region overrides
				default:
					if !p.skipValue(0) {
						return evs, false
					}
				}
				if p.byte(',') {
					continue
				}
				if !p.byte('}') {
					return evs, false
				}
				break
			}
		}
		if !haveMsg {
			return evs, false
		}
		evs = append(evs, ev)
		if p.byte(',') {
			continue
		}
		if !p.byte(']') {
			return evs, false
		}
		return evs, true
	}
}

// number consumes a JSON number.
func (p *jparser) number() bool {
	start := p.i
	if p.peek('-') {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && (p.b[p.i] >= '0' && p.b[p.i] <= '9' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || p.b[p.i] == '+' || p.b[p.i] == '-') {
		p.i++
	}
	if p.i == digits {
		p.i = start
		return false
	}
	_, err := strconv.ParseFloat(string(p.b[start:p.i]), 64)
	return err == nil || isRangeErr(err)
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// skipValue consumes any value, checking its grammar.
func (p *jparser) skipValue(depth int) bool {
	if depth > 64 {
		return false
	}
	p.ws()
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		s, ok := p.rawString()
		return ok && validEscapes(s)
	case c == '{':
		p.i++
		if p.byte('}') {
			return true
		}
		for {
			if _, ok := p.rawString(); !ok || !p.byte(':') || !p.skipValue(depth+1) {
				return false
			}
			if p.byte(',') {
				continue
			}
			return p.byte('}')
		}
	case c == '[':
		p.i++
		if p.byte(']') {
			return true
		}
		for {
			if !p.skipValue(depth + 1) {
				return false
			}
			if p.byte(',') {
				continue
			}
			return p.byte(']')
		}
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.number()
	}
}

func (p *jparser) literal(s string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

func validEscapes(s []byte) bool { return jsonstr.Valid(s) }
