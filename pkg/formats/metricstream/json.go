package metricstream

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// decodeJSON decodes newline-separated metric-stream objects. Each line is
// decoded on its own, so a bad line costs only itself. Objects written one
// after the other on a line are read too.
func (d *Decoder) decodeJSON(sc *scratch, data []byte, fn func(record.Metric)) (n int, bad []BadPart) {
	line := 0
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += off
		}
		line++
		ln := data[off:end]
		start := off
		off = end + 1
		for i := skipWS(ln, 0); i < len(ln); i = skipWS(ln, i) {
			sc.str, sc.dims, sc.pcts = sc.str[:0], sc.dims[:0], sc.pcts[:0]
			var rd rawDatum
			next, err := parseDatum(sc, ln, i, &rd)
			if err == nil {
				var k int
				k, err = d.m.mapRaw(sc, &rd, fn)
				n += k
			}
			if err != nil {
				bad = append(bad, BadPart{Offset: start, Line: line, Data: ln, Err: err})
				break
			}
			i = next
		}
	}
	return n, bad
}

// jsonError is a syntax error at a byte offset of a line.
type jsonError struct {
	at  int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("offset %d: %s", e.at, e.msg) }

func errAt(at int, format string, args ...any) error {
	return &jsonError{at: at, msg: fmt.Sprintf(format, args...)}
}

// parseDatum reads one metric-stream object starting at b[i] into rd and
// returns the offset after it. Unknown fields are skipped; the fields that
// are known must have their documented types.
func parseDatum(sc *scratch, b []byte, i int, rd *rawDatum) (int, error) {
	if b[i] != '{' {
		return i, errAt(i, "expected '{', found %q", b[i])
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		key, j, err := parseString(sc, b, i)
		if err != nil {
			return j, err
		}
		if i = skipWS(b, j); i >= len(b) || b[i] != ':' {
			return i, errAt(i, "expected ':' after %q", key)
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return i, errAt(i, "no value for %q", key)
		}
		switch string(key) {
		case "account_id":
			rd.account, i, err = parseStringField(sc, b, i, "account_id")
		case "region":
			rd.region, i, err = parseStringField(sc, b, i, "region")
		case "namespace":
			rd.namespace, i, err = parseStringField(sc, b, i, "namespace")
		case "metric_name":
			rd.metric, i, err = parseStringField(sc, b, i, "metric_name")
		case "unit":
			rd.unit, i, err = parseStringField(sc, b, i, "unit")
		case "dimensions":
			i, err = parseDimensions(sc, b, i, rd)
		case "timestamp":
			var ms float64
			if ms, i, err = parseNumber(b, i); err == nil {
				// Milliseconds; Datadog takes seconds. The period start
				// is whole minutes, so nothing is lost.
				rd.ts = int64(math.Floor(ms / 1000))
			}
		case "value":
			i, err = parseValues(sc, b, i, rd)
		default: // metric_stream_name, and fields AWS may add
			i, err = skipValue(b, i, 0)
		}
		if err != nil {
			return i, err
		}
		var end bool
		if i, end, err = nextMember(b, i, "object"); err != nil || end {
			return i, err
		}
	}
}

// nextMember reads what follows an object member: a ',' (more members; the
// offset of the next one) or the closing '}' (end, the offset after it).
func nextMember(b []byte, i int, what string) (int, bool, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return i, false, errAt(i, "%s: unterminated object", what)
	}
	switch b[i] {
	case ',':
		return skipWS(b, i+1), false, nil
	case '}':
		return i + 1, true, nil
	}
	return i, false, errAt(i, "%s: expected ',' or '}', found %q", what, b[i])
}

func parseStringField(sc *scratch, b []byte, i int, name string) ([]byte, int, error) {
	if b[i] != '"' {
		return nil, i, errAt(i, "%s: expected a string", name)
	}
	return parseString(sc, b, i)
}

// parseDimensions reads {"Name":"Value",...}.
func parseDimensions(sc *scratch, b []byte, i int, rd *rawDatum) (int, error) {
	if b[i] != '{' {
		return i, errAt(i, "dimensions: expected an object")
	}
	sc.dims = sc.dims[:0]
	rd.dims = nil
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		name, j, err := parseString(sc, b, i)
		if err != nil {
			return j, err
		}
		if i = skipWS(b, j); i >= len(b) || b[i] != ':' {
			return i, errAt(i, "dimensions: expected ':'")
		}
		if i = skipWS(b, i+1); i >= len(b) || b[i] != '"' {
			return i, errAt(i, "dimension %q: expected a string", name)
		}
		var value []byte
		if value, i, err = parseString(sc, b, i); err != nil {
			return i, err
		}
		sc.dims = append(sc.dims, rawDim{name: name, value: value})
		var end bool
		if i, end, err = nextMember(b, i, "dimensions"); err != nil {
			return i, err
		}
		if end {
			rd.dims = sc.dims
			return i, nil
		}
	}
}

// parseValues reads {"count":…,"sum":…,"max":…,"min":…,"p99":…,…}. Extra
// statistics that are not percentiles (TM(10%:90%), IQM…) are skipped, as
// are nulls.
func parseValues(sc *scratch, b []byte, i int, rd *rawDatum) (int, error) {
	if b[i] != '{' {
		return i, errAt(i, "value: expected an object")
	}
	sc.pcts = sc.pcts[:0]
	rd.has, rd.pcts = 0, nil
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		stat, j, err := parseString(sc, b, i)
		if err != nil {
			return j, err
		}
		if i = skipWS(b, j); i >= len(b) || b[i] != ':' {
			return i, errAt(i, "value: expected ':'")
		}
		if i = skipWS(b, i+1); i >= len(b) {
			return i, errAt(i, "value: no value for %q", stat)
		}
		var (
			v   float64
			has Has
		)
		switch {
		case b[i] == 'n':
			i, err = skipValue(b, i, 0) // null: not computed
		case string(stat) == "count":
			v, i, err = parseNumber(b, i)
			rd.count, has = v, HasCount
		case string(stat) == "sum":
			v, i, err = parseNumber(b, i)
			rd.sum, has = v, HasSum
		case string(stat) == "min":
			v, i, err = parseNumber(b, i)
			rd.min, has = v, HasMin
		case string(stat) == "max":
			v, i, err = parseNumber(b, i)
			rd.max, has = v, HasMax
		case isPercentile(stat):
			if v, i, err = parseNumber(b, i); err == nil {
				sc.pcts = append(sc.pcts, rawPct{stat: stat, value: v})
			}
		default:
			i, err = skipValue(b, i, 0)
		}
		if err != nil {
			return i, fmt.Errorf("value %q: %w", stat, err)
		}
		rd.has |= has
		var end bool
		if i, end, err = nextMember(b, i, "value"); err != nil {
			return i, err
		}
		if end {
			rd.pcts = sc.pcts
			return i, nil
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// parseString reads the JSON string at b[i]. Without escapes the result
// aliases b; with them it is unescaped into sc.str. The strings of a
// metric stream are short: a plain loop beats bytes.IndexByte's setup.
func parseString(sc *scratch, b []byte, i int) ([]byte, int, error) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, errAt(i, "expected a string")
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return b[i+1 : j], j + 1, nil
		case '\\':
			return unescape(sc, b, i+1)
		}
	}
	return nil, len(b), errAt(i, "unterminated string")
}

// unescape decodes the string whose content starts at b[i].
func unescape(sc *scratch, b []byte, i int) ([]byte, int, error) {
	j := i
	for j < len(b) && b[j] != '"' {
		if b[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(b) {
		return nil, len(b), errAt(i, "unterminated string")
	}
	start := len(sc.str)
	out, ok := jsonstr.Append(sc.str, b[i:j])
	if !ok {
		return nil, i, errAt(i, "invalid escape in string")
	}
	sc.str = out
	return sc.str[start:len(sc.str):len(sc.str)], j + 1, nil
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber reads the JSON number at b[i]. Numbers of at most 15
// significant digits without exponent (all a metric stream writes: 22.0,
// 1611929698000) are computed directly, exactly as strconv would (the
// mantissa and the power of ten are exact, the one division rounds
// correctly); others go through strconv.ParseFloat.
func parseNumber(b []byte, i int) (float64, int, error) {
	j := i
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	var mant uint64
	digits, frac := 0, -1
	for ; j < len(b); j++ {
		c := b[j]
		if c >= '0' && c <= '9' {
			mant = mant*10 + uint64(c-'0')
			digits++
			continue
		}
		if c == '.' && frac < 0 {
			frac = j
			continue
		}
		break
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') || digits > 15 {
		return parseNumberSlow(b, i)
	}
	start := i
	if neg {
		start++
	}
	if digits == 0 || frac == start || frac == j-1 {
		return 0, i, errAt(i, "expected a number")
	}
	v := float64(mant)
	if frac >= 0 {
		v /= pow10[j-frac-1]
	}
	if neg {
		v = -v
	}
	return v, j, nil
}

func parseNumberSlow(b []byte, i int) (float64, int, error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := j
	for j < len(b) {
		c := b[j]
		if c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			j++
			continue
		}
		break
	}
	if j == digits || b[digits] < '0' || b[digits] > '9' {
		return 0, i, errAt(i, "expected a number")
	}
	// The string does not outlive the call: ParseFloat copies what it puts
	// in its errors.
	v, err := strconv.ParseFloat(unsafe.String(&b[i], j-i), 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, i, errAt(i, "number out of range")
		}
		return 0, i, errAt(i, "invalid number")
	}
	return v, j, nil
}

// skipValue skips the JSON value at b[i].
func skipValue(b []byte, i, depth int) (int, error) {
	const maxDepth = 64
	if i >= len(b) {
		return i, errAt(i, "expected a value")
	}
	switch c := b[i]; {
	case c == '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}
		return len(b), errAt(i, "unterminated string")
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, errAt(i, "nested too deep")
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, errAt(i, "expected a key")
				}
				if i, err = skipValue(b, i, depth+1); err != nil {
					return i, err
				}
				if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
					return i, errAt(i, "expected ':'")
				}
				i = skipWS(b, i+1)
			}
			if i, err = skipValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, errAt(i, "unterminated %c", c)
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case closer:
				return i + 1, nil
			default:
				return i, errAt(i, "expected ',' or %q", closer)
			}
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	default:
		_, j, err := parseNumber(b, i)
		return j, err
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, errAt(i, "invalid literal")
	}
	return i + len(lit), nil
}
