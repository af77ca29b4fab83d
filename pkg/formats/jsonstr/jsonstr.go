// Package jsonstr reads and writes the body of a JSON string (what stands
// between the quotes). gwpipe's hand-written scanners (access logs, S3
// envelopes, metric streams) decode with it and its Datadog encoders
// (logs, metrics) write with it, on their hot paths, without
// encoding/json.
package jsonstr

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// Append appends the decoding of the JSON string body s to dst. It never
// fails: an escape JSON does not define is kept as written, a lone
// surrogate becomes U+FFFD (as encoding/json does). ok reports whether s
// was a valid JSON string body. The result is never longer than s.
func Append(dst, s []byte) (out []byte, ok bool) {
	ok = true
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return append(dst, s...), ok
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		var n int
		if dst, n = AppendEscape(dst, s); n > 0 {
			s = s[n:]
			continue
		}
		if len(s) < 2 {
			return append(dst, s...), false
		}
		r, good := Hex4(s[2:])
		if s[1] != 'u' || !good {
			dst, ok = append(dst, s[:2]...), false
			s = s[2:]
			continue
		}
		// A surrogate: a pair makes one character, a lone half U+FFFD.
		n = 6
		r2, pair := rune(0), false
		if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			r2, pair = Hex4(s[8:])
		}
		if dec := utf16.DecodeRune(r, r2); pair && dec != utf8.RuneError {
			r, n = dec, 12
		} else {
			r = utf8.RuneError
		}
		dst = utf8.AppendRune(dst, r)
		s = s[n:]
	}
	return dst, ok
}

// AppendEscape decodes the escape that s starts with (s[0] is '\\') when
// it stands for one character on its own, that is any escape JSON defines
// but half of a surrogate pair: it appends the character to dst and
// returns how many bytes of s the escape spans, or 0 (dst unchanged) for
// a surrogate half or what JSON does not define.
func AppendEscape(dst, s []byte) ([]byte, int) {
	if len(s) < 2 {
		return dst, 0
	}
	switch e := s[1]; e {
	case '"', '\\', '/':
		return append(dst, e), 2
	case 'b':
		return append(dst, '\b'), 2
	case 'f':
		return append(dst, '\f'), 2
	case 'n':
		return append(dst, '\n'), 2
	case 'r':
		return append(dst, '\r'), 2
	case 't':
		return append(dst, '\t'), 2
	case 'u':
		if r, ok := Hex4(s[2:]); ok && !utf16.IsSurrogate(r) {
			return utf8.AppendRune(dst, r), 6
		}
	}
	return dst, 0
}

// Valid reports whether s is a valid JSON string body's escapes, without
// decoding it.
func Valid(s []byte) bool {
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return true
		}
		s = s[i:]
		if len(s) < 2 {
			return false
		}
		switch s[1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s = s[2:]
		case 'u':
			if _, ok := Hex4(s[2:]); !ok {
				return false
			}
			s = s[6:]
		default:
			return false
		}
	}
}

// Hex4 reads the four hexadecimal digits at the start of b.
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
