package loadgen

import (
	"encoding/binary"
	"slices"
	"strconv"
)

// Allocation-free append helpers used on the hot path instead of fmt and
// encoding/json.

const (
	hexDigits   = "0123456789abcdef"
	lowerAlnum  = "abcdefghijklmnopqrstuvwxyz0123456789"
	mixedAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	monthAbbrev = "JanFebMarAprMayJunJulAugSepOctNovDec"
	dayAbbrev   = "SunMonTueWedThuFriSat"
)

// jsonEscape[c] is true for bytes that must be escaped inside a JSON string.
var jsonEscape = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// appendJSONString appends s, escaped for use inside a JSON string (without
// the surrounding quotes). s must be valid UTF-8; non-ASCII is kept verbatim.
// It writes byte by byte into pre-grown capacity: generated messages are full
// of quotes, so appending runs between escapes would cost more.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 2*len(s))
	buf, n := escapeRun(dst[:cap(dst)], n, s, 0)
	return buf[:n]
}

// appendJSONBytes is appendJSONString for the hot path: it also checks 8
// bytes at a time and copies words that need no escaping whole.
func appendJSONBytes(dst []byte, s []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 2*len(s))
	buf := dst[:cap(dst)]
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if needsEscape8(binary.LittleEndian.Uint64(s[i:])) {
			buf, n = escapeRun(buf, n, s[i:i+8], len(s)-i-8)
		} else {
			copy(buf[n:n+8], s[i:i+8])
			n += 8
		}
	}
	buf, n = escapeRun(buf, n, s[i:], 0)
	return buf[:n]
}

// escapeRun writes s at buf[n], escaping the bytes that need it, and
// returns the new end. buf has room for 2 bytes per input byte; after is
// the number of input bytes that follow s.
func escapeRun[S ~string | ~[]byte](buf []byte, n int, s S, after int) ([]byte, int) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !jsonEscape[c] {
			buf[n] = c
			n++
		} else {
			buf, n = escapeByte(buf, n, c, len(s)-i-1+after)
		}
	}
	return buf, n
}

// escapeByte writes the escape of c (a byte that needs one) at buf[n]. buf
// has room for 2 bytes per input byte; rest is the number of bytes after c.
func escapeByte(buf []byte, n int, c byte, rest int) ([]byte, int) {
	switch c {
	case '"', '\\':
		buf[n], buf[n+1] = '\\', c
	case '\n':
		buf[n], buf[n+1] = '\\', 'n'
	case '\r':
		buf[n], buf[n+1] = '\\', 'r'
	case '\t':
		buf[n], buf[n+1] = '\\', 't'
	default:
		// 6 bytes instead of the 2 reserved: make room for the rest.
		if len(buf)-n < 6+2*rest {
			buf = slices.Grow(buf[:n], 6+2*rest)
			buf = buf[:cap(buf)]
		}
		buf[n], buf[n+1], buf[n+2], buf[n+3] = '\\', 'u', '0', '0'
		buf[n+4], buf[n+5] = hexDigits[c>>4], hexDigits[c&0xf]
		return buf, n + 6
	}
	return buf, n + 2
}

// needsEscape8 reports whether any of the 8 bytes of w is below 0x20, '"' or
// '\\' (the classic "has zero byte / has less than" bit tricks; exact for
// existence, bytes >= 0x80 never match).
func needsEscape8(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	less := (w - lo*0x20) & ^w & hi
	q := w ^ (lo * '"')
	bs := w ^ (lo * '\\')
	return less|((q-lo)&^q&hi)|((bs-lo)&^bs&hi) != 0
}

// appendUint appends v in decimal, left-padded with zeros to width digits.
func appendUint(dst []byte, v uint64, width int) []byte {
	var b [20]byte
	i := len(b)
	for v >= 10 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	b[i] = byte('0' + v)
	for n := len(b) - i; n < width; n++ {
		dst = append(dst, '0')
	}
	return append(dst, b[i:]...)
}

func appendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

// append2 appends a two-digit, zero-padded number (0..99).
func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// appendHex appends the n low nibbles of v as lowercase hex (n <= 16).
func appendHex(dst []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(v>>(uint(i)*4))&0xf])
	}
	return dst
}

// appendUUID appends a version-4 UUID built from two random words.
func appendUUID(dst []byte, hi, lo uint64) []byte {
	hi = hi&^0xf000 | 0x4000                     // version 4
	lo = lo&^(0xc000<<48) | 0x8000<<48           // RFC 4122 variant
	dst = appendHex(dst, hi>>32, 8)              // time_low
	dst = append(dst, '-')                       //
	dst = appendHex(dst, hi>>16, 4)              // time_mid
	dst = append(dst, '-')                       //
	dst = appendHex(dst, hi, 4)                  // time_hi_and_version
	dst = append(dst, '-')                       //
	dst = appendHex(dst, lo>>48, 4)              // clock_seq
	dst = append(dst, '-')                       //
	return appendHex(dst, lo&0xffffffffffff, 12) // node
}

// civil is a calendar date and time of day in UTC.
type civil struct {
	year, month, day, hour, min, sec, weekday int
}

// civilFromMillis converts epoch milliseconds (UTC) to a calendar date
// (Howard Hinnant's days-from-civil inverse), without going through time.Time.
func civilFromMillis(ms int64) civil {
	secs := ms / 1000
	if ms%1000 < 0 {
		secs--
	}
	days := secs / 86400
	rem := secs % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	c := civil{hour: int(rem / 3600), min: int(rem % 3600 / 60), sec: int(rem % 60)}
	c.weekday = int((days%7 + 11) % 7) // 1970-01-01 was a Thursday (4)
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	c.year, c.month, c.day = int(y), int(m), int(d)
	return c
}

// appendCLFTime appends dd/MMM/yyyy:HH:mm:ss +0000 ($context.requestTime).
func appendCLFTime(dst []byte, ms int64) []byte {
	dst = civilFromMillis(ms).appendDateTime(dst, '/', ':')
	return append(dst, " +0000"...)
}

// appendHTTPDate appends an RFC 1123 date: Thu, 29 Jun 2023 12:01:02 GMT.
func appendHTTPDate(dst []byte, ms int64) []byte {
	c := civilFromMillis(ms)
	dst = append(dst, dayAbbrev[c.weekday*3:c.weekday*3+3]...)
	dst = append(dst, ", "...)
	dst = c.appendDateTime(dst, ' ', ' ')
	return append(dst, " GMT"...)
}

// appendDateTime appends dd<sep>MMM<sep>yyyy<before>HH:mm:ss, the part the
// CLF and HTTP date forms share.
func (c civil) appendDateTime(dst []byte, sep, before byte) []byte {
	dst = append2(dst, c.day)
	dst = append(dst, sep)
	dst = append(dst, monthAbbrev[(c.month-1)*3:c.month*3]...)
	dst = append(dst, sep)
	dst = appendUint(dst, uint64(c.year), 4)
	dst = append(dst, before)
	dst = append2(dst, c.hour)
	dst = append(dst, ':')
	dst = append2(dst, c.min)
	dst = append(dst, ':')
	return append2(dst, c.sec)
}

// appendAmzDate appends the SigV4 X-Amz-Date form: 20230629T120102Z.
func appendAmzDate(dst []byte, ms int64) []byte {
	c := civilFromMillis(ms)
	dst = appendUint(dst, uint64(c.year), 4)
	dst = append2(dst, c.month)
	dst = append2(dst, c.day)
	dst = append(dst, 'T')
	dst = append2(dst, c.hour)
	dst = append2(dst, c.min)
	dst = append2(dst, c.sec)
	return append(dst, 'Z')
}
