package apigw

import (
	"bytes"
	"time"
)

// parseIntLoose parses a decimal integer, accepting and truncating a
// fractional part ("12.7" → 12). It rejects anything else and overflow.
func parseIntLoose(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	i := 0
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i++
		if i == len(b) {
			return 0, false
		}
	}
	var n int64
	start := i
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '9' {
			break
		}
		if n > (1<<62)/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if i == start {
		return 0, false
	}
	if i < len(b) {
		if b[i] != '.' {
			return 0, false
		}
		for i++; i < len(b); i++ {
			if b[i] < '0' || b[i] > '9' {
				return 0, false
			}
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// msToNanos converts a millisecond value (integer or decimal) to nanoseconds.
func msToNanos(b []byte) (int64, bool) {
	n, ok := parseIntLoose(b)
	if !ok || n < 0 || n > 1<<40 {
		return 0, false
	}
	// keep up to 6 fractional digits
	return n*int64(time.Millisecond) + fraction(b, 100000), true
}

// fraction is the value of the digits after b's first '.' (parseIntLoose
// has checked them), the first worth unit, each next a tenth of the one
// before, as long as that is a whole number; 0 without a '.'.
func fraction(b []byte, unit int64) int64 {
	i := bytes.IndexByte(b, '.')
	if i < 0 {
		return 0
	}
	var v int64
	for j := i + 1; j < len(b) && unit > 0; j++ {
		v += int64(b[j]-'0') * unit
		unit /= 10
	}
	return v
}

// epochMillis interprets an all-digit epoch value. API Gateway documents
// requestTimeEpoch in milliseconds; values that look like seconds (< 1e11,
// i.e. before 1973 in ms) are scaled up, values that look like micro- or
// nanoseconds are scaled down.
func epochMillis(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	n, ok := parseIntLoose(b)
	if !ok || n <= 0 {
		return 0, false
	}
	// "1700000000.123" seconds with a fraction
	frac := fraction(b, 100)
	switch {
	case n < 1e11:
		return n*1000 + frac, true
	case n < 1e14:
		return n, true
	case n < 1e17:
		return n / 1000, true
	default:
		return n / 1e6, true
	}
}

// parseCLFTime parses "02/Jan/2006:15:04:05 -0700" into epoch milliseconds.
func parseCLFTime(b []byte) (int64, bool) {
	// 0         1         2
	// 012345678901234567890123456
	// 29/Jun/2023:12:01:02 +0000
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' {
		return 0, false
	}
	d, ok1 := dig2(b[0], b[1])
	mon := monthOf(b[3], b[4], b[5])
	y1, ok2 := dig2(b[7], b[8])
	y2, ok3 := dig2(b[9], b[10])
	hh, ok4 := dig2(b[12], b[13])
	mm, ok5 := dig2(b[15], b[16])
	ss, ok6 := dig2(b[18], b[19])
	oh, ok7 := dig2(b[22], b[23])
	om, ok8 := dig2(b[24], b[25])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8) || mon == 0 || (b[21] != '+' && b[21] != '-') {
		return 0, false
	}
	if d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || oh > 23 || om > 59 {
		return 0, false
	}
	t := time.Date(y1*100+y2, time.Month(mon), d, hh, mm, ss, 0, time.UTC).Unix()
	off := int64(oh*3600 + om*60)
	if b[21] == '+' {
		t -= off
	} else {
		t += off
	}
	return t * 1000, true
}

func dig2(a, b byte) (int, bool) {
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

func monthOf(a, b, c byte) int {
	k := uint32(a|0x20)<<16 | uint32(b|0x20)<<8 | uint32(c|0x20)
	for i, m := range monthKeys {
		if m == k {
			return i + 1
		}
	}
	return 0
}

var monthKeys = func() (k [12]uint32) {
	for i, m := range [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"} {
		k[i] = uint32(m[0])<<16 | uint32(m[1])<<8 | uint32(m[2])
	}
	return
}()

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
