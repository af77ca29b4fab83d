package decode

import (
	"bytes"

	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
)

// item is one unit of a decoded text record: a line, or one of the JSON
// objects written back to back on a line ({..}{..}, as CloudWatch and
// Firehose concatenate envelopes), or a JSON object that spans lines.
type item struct {
	start, end int // data[start:end]; a line without its '\n' and trailing '\r'
	line       int // 1-based number of the line the item starts on
	// unclosed: the item starts with a '{' that never closes (a truncated
	// document).
	unclosed bool
	// parsed: the item is a line that splitter.whole vouched for, one
	// JSON object alone on its line, which whole's caller holds parsed.
	parsed bool
}

// splitter cuts a decoded text record into items. White space between
// items (blank lines, spaces between objects) separates them and belongs
// to none. Every other byte belongs to exactly one item.
//
// A line that starts with '{' is read as JSON objects when it holds
// nothing else: one object per item, each perhaps spanning lines when it is
// valid JSON (a pretty-printed document). Otherwise the line is one item,
// whatever it holds. Scanning is linear: a failed attempt to read an object
// across lines is not repeated from inside the bytes it already scanned.
type splitter struct {
	data  []byte
	pos   int // next byte to read
	line  int // line number of pos
	queue []item
	// noMultiBefore: no object is read across lines from before this
	// offset (an earlier attempt scanned up to it and failed).
	noMultiBefore int
	// whole, when set, is offered each line that starts with '{' (from
	// the '{', without its '\n') before the line is cut into objects. It
	// returns true only when the line is one valid JSON object and white
	// space (it parsed it, so it knows): the line is then the item, as the
	// scan would have found, and the scan for object ends is skipped. This
	// is decode's one-pass path: an envelope is parsed once, not first
	// scanned for its end and then parsed.
	whole func(line []byte) bool
}

func (s *splitter) reset(data []byte, queue []item) {
	*s = splitter{data: data, line: 1, queue: queue[:0]}
}

// next returns the next item, or false at the end of the data.
func (s *splitter) next() (item, bool) {
	if len(s.queue) > 0 {
		it := s.queue[0]
		s.queue = s.queue[1:]
		return it, true
	}
	d := s.data
	bol, i := s.pos, s.pos
	for ; i < len(d); i++ {
		if c := d[i]; c == '\n' {
			s.line++
			bol = i + 1
		} else if c != ' ' && c != '\t' && c != '\r' {
			break
		}
	}
	if i == len(d) {
		s.pos = i
		return item{}, false
	}
	eol := len(d)
	if n := bytes.IndexByte(d[i:], '\n'); n >= 0 {
		eol = i + n
	}
	unclosed := false
	if d[i] == '{' {
		if s.whole != nil && s.whole(d[i:eol]) {
			s.pos = eol
			return item{start: bol, end: trimCR(d, bol, eol), line: s.line, parsed: true}, true
		}
		var ok bool
		if ok, unclosed = s.objects(i, eol); ok {
			if len(s.queue) == 1 && s.queue[0].line == s.line && s.pos == eol {
				// The usual case, one object alone on its line: the item is
				// the line, exactly as it came.
				s.queue = s.queue[:0]
				return item{start: bol, end: trimCR(d, bol, eol), line: s.line}, true
			}
			it := s.queue[0]
			s.queue = s.queue[1:]
			return it, true
		}
	}
	s.pos = eol
	return item{start: bol, end: trimCR(d, bol, eol), line: s.line, unclosed: unclosed}, true
}

// objects reads the JSON objects written back to back from d[i], a '{'.
// On success they are in s.queue and s.pos is after the last one's line
// content. ok is false when something other than white space or another
// object follows an object on its line, or when an object does not close;
// unclosed tells the latter for the first object.
func (s *splitter) objects(i, eol int) (ok, unclosed bool) {
	d := s.data
	s.queue = s.queue[:0]
	defer func() {
		if !ok {
			s.queue = s.queue[:0] // the line is one item: none of its objects
		}
	}()
	p, line, lineEnd := i, s.line, eol
	for {
		start, startLine := p, line
		n, err := cwlogs.ObjectEnd(d[p:lineEnd])
		if err != nil {
			// Not closed on its line: perhaps a document that spans lines.
			if p < s.noMultiBefore {
				return false, p == i
			}
			if n, err = cwlogs.ObjectEnd(d[p:]); err != nil {
				s.noMultiBefore = len(d)
				return false, p == i
			}
			if fastjson.ValidateBytes(d[p:p+n]) != nil {
				s.noMultiBefore = p + n
				return false, false
			}
			line += bytes.Count(d[p:p+n], []byte{'\n'})
			lineEnd = len(d)
			if k := bytes.IndexByte(d[p+n:], '\n'); k >= 0 {
				lineEnd = p + n + k
			}
		}
		p += n
		s.queue = append(s.queue, item{start: start, end: p, line: startLine})
		for p < lineEnd && (d[p] == ' ' || d[p] == '\t' || d[p] == '\r') {
			p++
		}
		switch {
		case p == lineEnd:
			s.pos, s.line = p, line
			return true, false
		case d[p] != '{':
			if line != s.line {
				s.noMultiBefore = max(s.noMultiBefore, p)
			}
			return false, false
		}
	}
}

func trimCR(d []byte, start, end int) int {
	for end > start && d[end-1] == '\r' {
		end--
	}
	return end
}
