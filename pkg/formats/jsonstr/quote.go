package jsonstr

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf8"
	"unsafe"
)

// The other direction: writing a JSON string. The Datadog log renderer
// writes every string of every log with it, the metrics API encoder every
// name and tag, and the floor probe of make bench its logs, so that one set
// of rules decides what gwpipe sends.
//
// Escaping is written for the hot path: the bytes before the first that
// needs escaping are found eight at a time and copied in one append; from
// there on the text is written a word at a time, the quotes and
// backslashes of a word escaped in place.
//
// Output is always valid JSON and valid UTF-8: '"', '\\' and control
// characters are escaped, U+2028 and U+2029 are escaped (JavaScript line
// terminators), and every byte that is not part of a valid UTF-8 sequence is
// replaced by \ufffd. Valid UTF-8 is otherwise copied unchanged, so escaping
// is injective on valid UTF-8 (distinct keys stay distinct).

const hexDigits = "0123456789abcdef"

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// specialMask returns a mask whose lowest set bit is the high bit of the
// first byte of w (little endian) that needs attention: a control character,
// '"', '\\' or a byte >= 0x80; 0 when there is none. Bits above the lowest may
// be spurious (a subtraction that underflows at a special byte borrows from
// the next), never below it.
func specialMask(w uint64) uint64 {
	return ((w - 0x20*lo8) | (w ^ '"'*lo8 - lo8) | (w ^ '\\'*lo8 - lo8) | w) & hi8
}

// bytesOf views s as a byte slice without copying; never written to.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// AppendQuoted appends s as a quoted JSON string.
func AppendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

// safeByte[b] is true for bytes copied as they are: ASCII from 0x20 but '"'
// and '\\'.
var safeByte = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// shortEscape[b] is the letter of b's two-byte escape (\" \\ \n \r \t \b \f), or 0.
var shortEscape = [256]byte{'"': '"', '\\': '\\', '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f'}

// nextSpecial returns the index of the first byte at or after i that needs
// attention (see specialMask), or len(sb). Clean bytes are skipped eight at a
// time.
func nextSpecial(sb []byte, i int) int {
	for i+8 <= len(sb) {
		if m := specialMask(binary.LittleEndian.Uint64(sb[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(sb) && safeByte[sb[i]] {
		i++
	}
	return i
}

// AppendEscaped appends the JSON-escaped contents of s, without quotes.
// Clean runs are copied with one append each.
func AppendEscaped(dst []byte, s string) []byte {
	sb := bytesOf(s)
	i := nextSpecial(sb, 0)
	if i >= len(sb) {
		return append(dst, sb...) // nothing to escape: one copy
	}
	// From the first special on, JSON text (an access log in a message: a
	// quote every few bytes) is written a word at a time, each quote or
	// backslash of the word escaped in place, into room made ahead: one
	// append per escape between short runs costs twice as much.
	dst = append(dst, sb[:i]...)
	n := len(dst) // written; dst[n:cap(dst)] is the room
	for i < len(sb) {
		if cap(dst)-n < 24 { // a word writes at most 16 bytes, and stores 8 past them
			left := len(sb) - i
			dst = slices.Grow(dst[:n], left+left/8+24)
		}
		out := dst[:cap(dst)]
		if i+8 > len(sb) {
			switch b := sb[i]; {
			case safeByte[b]:
				out[n] = b
				n, i = n+1, i+1
			case b == '"' || b == '\\':
				out[n], out[n+1] = '\\', b
				n, i = n+2, i+1
			default:
				dst, i = appendUnit(dst[:n], sb, i)
				n = len(dst)
			}
			continue
		}
		w := binary.LittleEndian.Uint64(sb[i:])
		q, other := specials(w)
		// The word up to its first byte that is neither safe nor a quote
		// or backslash (all of it when there is none) goes here.
		end := 8
		if other != 0 {
			end = bits.TrailingZeros64(other) >> 3
			q &= 1<<(8*end) - 1
		}
		prev := 0 // bytes of the word written
		for ; q != 0; q &= q - 1 {
			k := bits.TrailingZeros64(q) >> 3
			binary.LittleEndian.PutUint64(out[n:], w>>(8*prev))
			n += k - prev
			out[n], out[n+1] = '\\', byte(w>>(8*k))
			n += 2
			prev = k + 1
		}
		binary.LittleEndian.PutUint64(out[n:], w>>(8*prev)) // a shift by 64 stores zeros, none counted
		n += end - prev
		i += end
		if end < 8 {
			dst, i = appendUnit(dst[:n], sb, i)
			n = len(dst)
		}
	}
	return dst[:n]
}

// specials returns the exact masks (the high bit of each byte) of the bytes
// of w that are '"' or '\\', and of the other bytes that need attention:
// control characters and bytes >= 0x80. Exact, unlike specialMask: no
// borrow crosses bytes, so every set bit can be acted on.
func specials(w uint64) (quotes, other uint64) {
	const lo7 = 0x7f7f7f7f7f7f7f7f
	x := w ^ '"'*lo8
	y := w ^ '\\'*lo8
	quotes = (^((x&lo7 + lo7) | x) | ^((y&lo7 + lo7) | y)) & hi8
	other = (^((w&lo7 + 0x60*lo8) | w) | w) & hi8
	return quotes, other
}

// appendUnit appends the escape of the unit at sb[i], a byte that is not
// safe, and returns where the next unit starts.
func appendUnit(dst, sb []byte, i int) ([]byte, int) {
	b := sb[i]
	if b < utf8.RuneSelf {
		if e := shortEscape[b]; e != 0 {
			return append(dst, '\\', e), i + 1
		}
		return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF]), i + 1
	}
	r, size := utf8.DecodeRune(sb[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return append(dst, `\ufffd`...), i + 1
	case r == '\u2028' || r == '\u2029':
		return append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF]), i + size
	}
	return append(dst, sb[i:i+size]...), i + size
}

// escapedUnit returns how many input bytes the next escape unit at s[i]
// spans and how many output bytes it produces.
func escapedUnit(s string, i int) (in, out int) {
	b := s[i]
	if b < utf8.RuneSelf {
		if safeByte[b] {
			return 1, 1
		}
		if shortEscape[b] != 0 {
			return 1, 2
		}
		return 1, 6
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return 1, 6
	case r == '\u2028' || r == '\u2029':
		return size, 6
	}
	return size, size
}

// EscapedLen is len(AppendEscaped(nil, s)), counted without writing.
func EscapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		in, out := escapedUnit(s, i)
		i += in
		n += out
	}
	return n
}

// AppendEscapedLimit appends the escaped contents of s, stopping before the
// output would exceed limit bytes. It cuts only between escape units, that is
// at a UTF-8 boundary of s (an invalid byte is a unit of its own), so the
// output is always valid. It reports how many bytes of s were consumed.
func AppendEscapedLimit(dst []byte, s string, limit int) ([]byte, int) {
	n, i := 0, 0
	for i < len(s) {
		// Copy safe ASCII runs in bulk.
		j := i
		for j < len(s) && j-i < limit-n && safeByte[s[j]] {
			j++
		}
		if j > i {
			dst = append(dst, s[i:j]...)
			n += j - i
			i = j
			continue
		}
		in, out := escapedUnit(s, i)
		if n+out > limit {
			break
		}
		dst = AppendEscaped(dst, s[i:i+in])
		n += out
		i += in
	}
	return dst, i
}
