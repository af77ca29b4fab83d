package apigw

import (
	"encoding/binary"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
)

// hasByte reports (non-zero) whether any byte of w equals b (SWAR).
func hasByte(w uint64, b byte) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	x := w ^ (lo * uint64(b))
	return (x - lo) &^ x & hi
}

// maxJSONDepth bounds nested objects in access-log JSON.
const maxJSONDepth = 16

// jsonIter walks one lenient JSON object and yields its leaf values with their
// flattened key paths ("a.b" for {"a":{"b":…}}). It accepts what API Gateway
// templates really produce: unquoted numbers, bare "-", empty bare values,
// unescaped quotes inside string values (a quote ends a string only when a
// ',', '}' , ']' or the end follows it), unquoted keys, a missing closing
// brace, and trailing bytes after the object. It never allocates on the flat
// path: keys and values alias the input.
type jsonIter struct {
	data  []byte
	pos   int
	depth int
	stack [maxJSONDepth]int
	path  []byte // prefix "a.b." of the current nesting level; scratch-owned
	kbuf  []byte // unescaped keys
	err   string
}

// jsonKV is one leaf: key path and raw value. For quoted values val excludes
// the quotes and esc says whether it contains backslash escapes.
type jsonKV struct {
	key    []byte
	val    []byte
	quoted bool
	esc    bool
}

// start positions the iterator inside the top-level object; false when data
// is not a JSON object.
func (it *jsonIter) start(data []byte, path []byte) bool {
	it.data = data
	it.pos = 0
	it.depth = 0
	it.path = path[:0]
	it.err = ""
	for it.pos < len(data) && isSpace(data[it.pos]) {
		it.pos++
	}
	if it.pos >= len(data) || data[it.pos] != '{' {
		return false
	}
	it.pos++
	it.depth = 1
	it.stack[0] = 0
	return true
}

func (it *jsonIter) skipSpace() {
	d := it.data
	for it.pos < len(d) && isSpace(d[it.pos]) {
		it.pos++
	}
}

// next yields the next leaf, or false at the end of the object (or on a
// syntax error it cannot recover from, with it.err set).
func (it *jsonIter) next(kv *jsonKV) bool {
	d := it.data
	for {
		it.skipSpace()
		if it.pos >= len(d) {
			return false // unterminated object: lenient, keep what we have
		}
		if it.depth == 0 {
			return false
		}
		var key []byte
		var kesc bool
		switch c := d[it.pos]; c {
		case ',':
			it.pos++
			continue
		case '}':
			it.pos++
			it.depth--
			if it.depth > 0 {
				it.path = it.path[:it.stack[it.depth]]
			}
			continue
		case '"':
			it.pos++
			key, kesc = it.readString(true)
		default:
			// unquoted key
			s := it.pos
			for it.pos < len(d) && d[it.pos] != ':' && d[it.pos] != ',' && d[it.pos] != '}' {
				it.pos++
			}
			key = trimSpace(d[s:it.pos])
			if len(key) == 0 || it.pos >= len(d) || d[it.pos] != ':' {
				it.err = "expected a key"
				return false
			}
		}
		it.skipSpace()
		if it.pos >= len(d) {
			return false // line cut inside a key: keep what we have
		}
		if d[it.pos] != ':' {
			it.err = "expected ':' after key"
			return false
		}
		it.pos++
		it.skipSpace()
		if kesc {
			it.kbuf, _ = jsonstr.Append(it.kbuf[:0], key)
			key = it.kbuf
		}
		if it.pos >= len(d) {
			kv.key, kv.val, kv.quoted, kv.esc = it.fullKey(key), nil, false, false
			return true
		}
		switch d[it.pos] {
		case '"':
			it.pos++
			v, esc := it.readString(false)
			kv.key, kv.val, kv.quoted, kv.esc = it.fullKey(key), v, true, esc
			return true
		case '{':
			if it.depth >= maxJSONDepth {
				it.err = "objects nested too deeply"
				return false
			}
			it.pos++
			it.stack[it.depth] = len(it.path)
			it.path = append(it.path, key...)
			it.path = append(it.path, '.')
			it.depth++
			continue
		case '[':
			s := it.pos
			it.skipArray()
			kv.key, kv.val, kv.quoted, kv.esc = it.fullKey(key), d[s:it.pos], false, false
			return true
		default:
			s := it.pos
			for it.pos < len(d) && d[it.pos] != ',' && d[it.pos] != '}' {
				it.pos++
			}
			v := trimSpace(d[s:it.pos])
			if string(v) == "null" {
				v = nil // JSON null: not set
			}
			kv.key, kv.val, kv.quoted, kv.esc = it.fullKey(key), v, false, false
			return true
		}
	}
}

func (it *jsonIter) fullKey(key []byte) []byte {
	if len(it.path) == 0 {
		return key
	}
	plen := len(it.path)
	full := append(it.path, key...)
	it.path = full[:plen]
	return full
}

// readString reads a string body after its opening quote. A quote ends the
// string only if what follows is a plausible continuation (':' for keys;
// ',', '}', ']' or the end for values, where ',' must itself be followed by a
// key or the end), so unescaped quotes inside values survive. An unterminated
// string takes the rest of the input.
func (it *jsonIter) readString(isKey bool) ([]byte, bool) {
	d := it.data
	start := it.pos
	esc := false
	i := start
	for {
		// short strings (keys, most values): a table-driven byte loop; long
		// ones (user agents, messages) continue 8 bytes at a time
		lim := i + 16
		if lim > len(d) {
			lim = len(d)
		}
		for i < lim && !strStop[d[i]] {
			i++
		}
		if i == lim {
			for i+8 <= len(d) {
				w := binary.LittleEndian.Uint64(d[i:])
				if hasByte(w, '"')|hasByte(w, '\\') != 0 {
					break
				}
				i += 8
			}
			for i < len(d) && !strStop[d[i]] {
				i++
			}
		}
		if i >= len(d) {
			break
		}
		if d[i] == '\\' {
			esc = true
			i += 2
			continue
		}
		if it.stringEnds(i+1, isKey) {
			it.pos = i + 1
			return d[start:i], esc
		}
		i++
	}
	it.pos = len(d)
	return trimSpace(d[start:]), esc
}

// strStop marks the bytes that interrupt a string scan.
var strStop = [256]bool{'"': true, '\\': true}

func (it *jsonIter) stringEnds(k int, isKey bool) bool {
	d := it.data
	if k+1 < len(d) {
		// fast paths: `",“` and `"}` for values, `":` for keys
		switch d[k] {
		case ',':
			if !isKey && d[k+1] == '"' {
				return true
			}
		case '}':
			return !isKey
		case ':':
			return isKey
		}
	}
	for k < len(d) && isSpace(d[k]) {
		k++
	}
	if k >= len(d) {
		return true
	}
	switch d[k] {
	case ':':
		return isKey
	case '}', ']':
		return !isKey
	case ',':
		if isKey {
			return false
		}
		k++
		for k < len(d) && isSpace(d[k]) {
			k++
		}
		return k >= len(d) || d[k] == '"' || d[k] == '}'
	}
	return false
}

// skipArray skips a balanced [...] value, honouring strings.
func (it *jsonIter) skipArray() {
	d := it.data
	depth := 0
	for it.pos < len(d) {
		switch d[it.pos] {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				it.pos++
				return
			}
		case '"':
			it.pos++
			for it.pos < len(d) && d[it.pos] != '"' {
				if d[it.pos] == '\\' {
					it.pos++
				}
				it.pos++
			}
		}
		it.pos++
	}
	// An unterminated string, or a backslash ending the line, steps past
	// the end: the array is the rest of the line, no more.
	it.pos = min(it.pos, len(d))
}
