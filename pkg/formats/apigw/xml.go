package apigw

import "bytes"

// maxXMLDepth bounds nested elements in XML access logs.
const maxXMLDepth = 8

var varRequestID = knownVars["requestId"]

// parseXML reads an XML access log without a template, e.g. the console's
// `<request id="…"> <ip>…</ip> … </request>`. The root element's id
// attribute is the request id; other attributes and child elements are
// mapped by name (nested names flattened with '.') through the alias table.
// Values are taken verbatim: API Gateway does not escape them, so entities
// are not decoded.
func parseXML(line []byte, s *scratch) bool {
	x := xmlScanner{d: line, s: s}
	n, ok := x.element(0, true)
	return ok && n > 0
}

type xmlScanner struct {
	d   []byte
	pos int
	s   *scratch
}

func (x *xmlScanner) skipSpace() {
	for x.pos < len(x.d) && isSpace(x.d[x.pos]) {
		x.pos++
	}
}

func isNameChar(c byte) bool {
	return isIdentChar(c) || c == '-' || c == '.' || c == ':'
}

// element parses one element at x.pos (after optional spaces) and its
// content. x.s.path holds the parent's name path followed by '.' (empty for
// the root's children; the root's own name is not part of keys). It returns
// the number of values found.
func (x *xmlScanner) element(depth int, root bool) (int, bool) {
	if depth > maxXMLDepth {
		return 0, false
	}
	x.skipSpace()
	d := x.d
	if x.pos >= len(d) || d[x.pos] != '<' {
		return 0, false
	}
	x.pos++
	ns := x.pos
	for x.pos < len(d) && isNameChar(d[x.pos]) {
		x.pos++
	}
	name := d[ns:x.pos]
	if len(name) == 0 {
		return 0, false
	}
	base := len(x.s.path)
	if !root {
		x.s.path = append(x.s.path, name...)
	}
	mine := len(x.s.path)
	defer func() { x.s.path = x.s.path[:base] }()
	n := 0
	// attributes
	for {
		x.skipSpace()
		if x.pos >= len(d) {
			return n, false
		}
		if d[x.pos] == '/' {
			if x.pos+1 < len(d) && d[x.pos+1] == '>' {
				x.pos += 2
				return n, true
			}
			return n, false
		}
		if d[x.pos] == '>' {
			x.pos++
			break
		}
		as := x.pos
		for x.pos < len(d) && isNameChar(d[x.pos]) {
			x.pos++
		}
		an := d[as:x.pos]
		x.skipSpace()
		if len(an) == 0 || x.pos >= len(d) || d[x.pos] != '=' {
			return n, false
		}
		x.pos++
		x.skipSpace()
		if x.pos >= len(d) || (d[x.pos] != '"' && d[x.pos] != '\'') {
			return n, false
		}
		q := d[x.pos]
		x.pos++
		e := bytes.IndexByte(d[x.pos:], q)
		if e < 0 {
			return n, false
		}
		val := d[x.pos : x.pos+e]
		x.pos += e + 1
		if root && string(an) == "id" {
			x.s.setVar(varRequestID, val, false)
		} else {
			x.s.path = x.s.path[:mine]
			if mine > 0 {
				x.s.path = append(x.s.path, '.')
			}
			x.s.path = append(x.s.path, an...)
			setDetected(x.s, x.s.path, val, false)
			x.s.path = x.s.path[:mine]
		}
		n++
	}
	// content: child elements, or text up to the closing tag
	cs := x.pos
	children := 0
	for {
		x.skipSpace()
		if x.pos >= len(d) {
			return n, root && n > 0 // missing root close tag: lenient
		}
		if d[x.pos] == '<' && x.pos+1 < len(d) && d[x.pos+1] == '/' {
			if x.closeTag(name) {
				return n, true // children closed, or an empty element (unset)
			}
			if root {
				return n, false
			}
			// a stray close tag inside text: fall through to text
		} else if d[x.pos] == '<' {
			save, saveN := x.pos, n
			x.s.path = x.s.path[:mine]
			if mine > 0 {
				x.s.path = append(x.s.path, '.')
			}
			c, ok := x.element(depth+1, false)
			x.s.path = x.s.path[:mine]
			if ok {
				n += c
				children++
				continue
			}
			if root || children > 0 {
				return n, false
			}
			x.pos, n = save, saveN // not markup after all: text content
		} else if root {
			return n, false
		}
		if children > 0 {
			return n, false
		}
		// text content: up to "</name>"
		end := x.findClose(cs, name)
		if end < 0 {
			return n, false
		}
		setDetected(x.s, x.s.path[:mine], d[cs:end], false)
		x.pos = end
		x.closeTag(name)
		return n + 1, true
	}
}

// findClose finds "</name>" at or after from.
func (x *xmlScanner) findClose(from int, name []byte) int {
	d := x.d
	for i := from; i < len(d); {
		j := bytes.Index(d[i:], []byte("</"))
		if j < 0 {
			return -1
		}
		k := i + j
		if bytes.HasPrefix(d[k+2:], name) && k+2+len(name) < len(d) && d[k+2+len(name)] == '>' {
			return k
		}
		i = k + 1
	}
	return -1
}

func (x *xmlScanner) closeTag(name []byte) bool {
	d := x.d
	if !bytes.HasPrefix(d[x.pos:], []byte("</")) {
		return false
	}
	p := x.pos + 2
	if !bytes.HasPrefix(d[p:], name) {
		return false
	}
	p += len(name)
	for p < len(d) && isSpace(d[p]) {
		p++
	}
	if p >= len(d) || d[p] != '>' {
		return false
	}
	x.pos = p + 1
	return true
}
