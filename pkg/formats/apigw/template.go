package apigw

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// Format is a compiled access-log format (a $context template). It is
// immutable and safe for concurrent use.
type Format struct {
	src  string
	json *jsonTemplate // set for JSON templates
	seq  *seqTemplate  // set for every other template
	vars []*varInfo
}

// String returns the format's source text.
func (f *Format) String() string { return f.src }

// Variables lists the $context variable names (without "context.") the
// format renders, in order of first appearance.
func (f *Format) Variables() []string {
	out := make([]string, len(f.vars))
	for i, v := range f.vars {
		out[i] = v.name
	}
	return out
}

// IsJSON reports whether the format is a JSON object template.
func (f *Format) IsJSON() bool { return f.json != nil }

// Extract parses line with the format and calls fn for each variable value
// it recovers (unset "-" values included, JSON escapes decoded). It reports
// whether the line matched. It allocates; the pipeline uses Parser.Parse.
func (f *Format) Extract(line []byte, fn func(name string, value []byte)) bool {
	s := getScratch(nil)
	s.beginOwn()
	defer putScratch(s)
	ok := f.extract(line, s, func(v *varInfo, val []byte, esc bool) {
		if esc {
			val, _ = jsonstr.Append(nil, val)
		}
		fn(v.name, val)
	})
	return ok
}

// parseInto applies the format to line, filling s. It reports whether the
// line matched the format.
func (f *Format) parseInto(line []byte, s *scratch) bool {
	if f.json != nil {
		return f.json.parse(line, s)
	}
	return f.seq.parse(trimSpace(line), s)
}

// extract is the allocation-tolerant variant used by Extract and tests.
func (f *Format) extract(line []byte, s *scratch, fn func(v *varInfo, val []byte, esc bool)) bool {
	if f.json != nil {
		var it jsonIter
		var kv jsonKV
		if !it.start(line, s.path) {
			return false
		}
		hint := 0
		for it.next(&kv) {
			fl := f.json.lookup(kv.key, &hint)
			if fl == nil {
				continue
			}
			if fl.v != nil {
				fn(fl.v, kv.val, kv.esc)
				continue
			}
			val := kv.val
			if kv.esc {
				val, _ = jsonstr.Append(nil, val)
			}
			sp, ok := fl.sub.match(val, s.spans[:0])
			if !ok {
				continue
			}
			for i, g := range fl.sub.segs {
				fn(g.v, val[sp[i].start:sp[i].end], false)
			}
		}
		return it.err == ""
	}
	line = trimSpace(line)
	sp, ok := f.seq.match(line, s.spans[:0])
	if !ok {
		return false
	}
	for i, g := range f.seq.segs {
		fn(g.v, line[sp[i].start:sp[i].end], false)
	}
	return true
}

// ErrNoVariables is returned for a format without any $context variable.
var ErrNoVariables = errors.New("apigw: format has no $context variable")

// ErrMalformedVariable is returned (wrapped, with the column) for a
// "$context." or "${context" that does not complete a variable reference.
var ErrMalformedVariable = errors.New("apigw: malformed $context variable")

// maxFormatLen bounds format strings (API Gateway's own limit is 3 KB).
const maxFormatLen = 16 << 10

// CompileFormat compiles an access-log format string. Variables are written
// $context.name or ${context.name}; names are dotted identifiers, and the
// property families (authorizer.*, requestOverride.*, responseOverride.*)
// also allow '-' and a ['quoted'] last segment. A format whose trimmed text
// starts with '{' and ends with '}' is a JSON template: each key maps to the
// variable(s) in its value. Anything else is a sequence of literals and
// variables matched left to right.
func CompileFormat(format string) (*Format, error) {
	if len(format) > maxFormatLen {
		return nil, fmt.Errorf("apigw: format longer than %d bytes", maxFormatLen)
	}
	if err := checkVarRefs(format); err != nil {
		return nil, err
	}
	src := format
	f := strings.TrimSpace(format)
	out := &Format{src: src}
	if len(f) >= 2 && f[0] == '{' && f[len(f)-1] == '}' {
		jt, err := compileJSON(f)
		if err == nil {
			out.json = jt
			out.vars = jt.vars
			if len(out.vars) == 0 {
				return nil, ErrNoVariables
			}
			return out, nil
		}
		// not parseable as a JSON template: fall back to a literal template
	}
	st, err := compileSeq(f)
	if err != nil {
		return nil, err
	}
	out.seq = st
	for _, g := range st.segs {
		out.vars = appendVarOnce(out.vars, g.v)
	}
	if len(out.vars) == 0 {
		return nil, ErrNoVariables
	}
	return out, nil
}

func appendVarOnce(vs []*varInfo, v *varInfo) []*varInfo {
	for _, x := range vs {
		if x == v {
			return vs
		}
	}
	return append(vs, v)
}

// ---------------------------------------------------------------------------
// Sequence templates: literal, var, literal, var, …, literal.

type seqTemplate struct {
	prefix []byte
	segs   []seqSeg
}

// seqSeg is one variable and the literal that follows it (possibly empty).
type seqSeg struct {
	v   *varInfo
	lit []byte
	// min is the value's least length: 1 right after another variable,
	// where an empty value could not be told from a split one.
	min int
}

// maxMatchSteps bounds backtracking per line.
const maxMatchSteps = 4096

func compileSeq(f string) (*seqTemplate, error) {
	t := &seqTemplate{}
	var lit []byte
	cur := -1 // index of the segment the literal belongs to; -1 = prefix
	flush := func() {
		if cur < 0 {
			t.prefix = append([]byte(nil), lit...)
		} else {
			t.segs[cur].lit = append([]byte(nil), lit...)
		}
		lit = lit[:0]
	}
	for i := 0; i < len(f); {
		name, n := scanVar(f, i)
		if n == 0 {
			lit = append(lit, f[i])
			i++
			continue
		}
		flush()
		t.segs = append(t.segs, seqSeg{v: lookupVar(name)})
		cur = len(t.segs) - 1
		i += n
	}
	flush()
	if len(t.segs) == 0 {
		return nil, ErrNoVariables
	}
	for i := 1; i < len(t.segs); i++ {
		if len(t.segs[i-1].lit) == 0 {
			t.segs[i].min = 1
		}
	}
	return t, nil
}

// maxVarName bounds a variable's name so that its attribute key
// (apigateway.<name>) is one the package keeps (maxKeyLen).
const maxVarName = maxKeyLen - len("apigateway.")

// checkVarRefs refuses a reference begun and not completed: compiled as
// literal text it would make every line fail to match, with nothing to say
// why. "$context.status}" is not one: API Gateway renders the variable and
// keeps the '}', and so does the template.
func checkVarRefs(f string) error {
	for i := 0; i < len(f); i++ {
		if f[i] != '$' {
			continue
		}
		j := i + 1
		braced := j < len(f) && f[j] == '{'
		if braced {
			j++
		}
		if !strings.HasPrefix(f[j:], "context.") && !(braced && strings.HasPrefix(f[j:], "context")) {
			continue // other text with a '$' ("$stageVariables.x", "$5")
		}
		if name, n := scanVar(f, i); n > 0 {
			if len(name) > maxVarName {
				return fmt.Errorf("%w at column %d: the name is longer than %d bytes", ErrMalformedVariable, i+1, maxVarName)
			}
			i += n - 1
			continue
		}
		k := j + len("context.")
		why := "no variable name after \"context.\""
		if k > len(f) || f[k-1] != '.' {
			k = j + len("context")
			why = "no '.' and variable name after \"${context\""
		} else if k < len(f) && isIdentStart(f[k]) {
			why = "no '}' after the variable name"
		}
		end := k
		for end < len(f) && end-i < 48 && !isSpace(f[end]) && f[end] != '"' {
			end++
		}
		return fmt.Errorf("%w at column %d: %q: %s", ErrMalformedVariable, i+1, f[i:end], why)
	}
	return nil
}

// scanVar recognises a variable reference at f[i:], returning its name
// (without "context.") and the length consumed, or 0.
func scanVar(f string, i int) (string, int) {
	if f[i] != '$' {
		return "", 0
	}
	j := i + 1
	braced := false
	if j < len(f) && f[j] == '{' {
		braced = true
		j++
	}
	const ctx = "context."
	if !strings.HasPrefix(f[j:], ctx) {
		return "", 0
	}
	j += len(ctx)
	start := j
	var name strings.Builder
	for {
		// one identifier segment
		s := j
		if j < len(f) && isIdentStart(f[j]) {
			j++
			prop := isPropertyFamily(f[start:s])
			for j < len(f) && (isIdentChar(f[j]) || (prop && f[j] == '-' && j+1 < len(f) && isIdentChar(f[j+1]))) {
				j++
			}
			name.WriteString(f[s:j])
		} else if j+1 < len(f) && f[j] == '[' && (f[j+1] == '\'' || f[j+1] == '"') {
			q := f[j+1]
			e := strings.IndexByte(f[j+2:], q)
			if e <= 0 || j+2+e+1 >= len(f) || f[j+2+e+1] != ']' || name.Len() == 0 ||
				!validDynKey([]byte(f[j+2:j+2+e])) || strings.IndexByte(f[j+2:j+2+e], '.') >= 0 {
				break
			}
			name.WriteByte('.')
			name.WriteString(f[j+2 : j+2+e])
			j = j + 2 + e + 2
		} else {
			break
		}
		if j+1 < len(f) && f[j] == '.' && isIdentStart(f[j+1]) {
			name.WriteByte('.')
			j++
			continue
		}
		if j+1 < len(f) && f[j] == '[' {
			continue
		}
		break
	}
	if name.Len() == 0 {
		return "", 0
	}
	if braced {
		if j >= len(f) || f[j] != '}' {
			return "", 0
		}
		j++
	}
	return name.String(), j - i
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// isPropertyFamily reports whether the name so far ends in a family whose
// next segment is a user-chosen property (claims, headers…).
func isPropertyFamily(sofar string) bool {
	return strings.HasPrefix(sofar, "authorizer.") || strings.HasPrefix(sofar, "requestOverride.") ||
		strings.HasPrefix(sofar, "responseOverride.")
}

// fit is how a value stands against its variable's class.
type fit uint8

const (
	fitNever fit = iota // neither the value nor any longer text starting with it fits
	fitShort            // the value does not fit, a longer text starting with it may
	fitOK
)

// classFit checks v against class c. The empty text fits every class (a
// variable between two literals may render as nothing, which means unset);
// the matcher itself keeps a variable next to another from taking it.
func classFit(c valueClass, v []byte) fit {
	if len(v) == 0 || c == classAny {
		return fitOK
	}
	switch c {
	case classToken:
		for _, b := range v {
			if space[b] {
				return fitNever
			}
		}
		return fitOK
	case classMethod:
		for _, b := range v {
			if !tchar[b] {
				return fitNever
			}
		}
		return fitOK
	}
	if v[0] == '-' {
		if len(v) == 1 {
			return fitOK // unset
		}
		return fitNever
	}
	switch c {
	case classPath:
		if v[0] != '/' {
			return fitNever
		}
		return classFit(classToken, v)
	case classNumber:
		dot := false
		for i, b := range v {
			switch {
			case b >= '0' && b <= '9':
			case b == '.' && !dot && i > 0:
				dot = true
			default:
				return fitNever
			}
		}
		if v[len(v)-1] == '.' {
			return fitShort
		}
		return fitOK
	case classStatus:
		if len(v) > 3 {
			return fitNever
		}
		for _, b := range v {
			if b < '0' || b > '9' {
				return fitNever
			}
		}
		if len(v) < 3 {
			return fitShort
		}
		return fitOK
	case classCLFTime:
		if len(v) > len(clfTimeShape) {
			return fitNever
		}
		for i, b := range v {
			if clfByte[b]&clfTimeShape[i] == 0 {
				return fitNever
			}
		}
		if len(v) < len(clfTimeShape) {
			return fitShort
		}
		return fitOK
	}
	return fitOK
}

// clfTimeShape is requestTime's layout, "dd/MMM/yyyy:HH:mm:ss +hhmm", as
// the kinds of byte each position takes: one table lookup a byte, since the
// console CLF formats check it on every line.
const (
	clfDigit = 1 << iota
	clfLetter
	clfSign
	clfSlash
	clfColon
	clfSpace
)

var clfTimeShape = func() (s [26]uint8) {
	for i, c := range "00/aaa/0000:00:00:00 s0000" {
		s[i] = map[rune]uint8{'0': clfDigit, 'a': clfLetter, 's': clfSign, '/': clfSlash, ':': clfColon, ' ': clfSpace}[c]
	}
	return
}()

var clfByte = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clfDigit
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = clfLetter, clfLetter
	}
	t['+'], t['-'], t['/'], t[':'], t[' '] = clfSign, clfSign, clfSlash, clfColon, clfSpace
	return
}()

// space holds the bytes isSpace accepts, looked up rather than compared as
// most values are tokens checked byte by byte.
var space = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isSpace(byte(c))
	}
	return
}()

// tchar holds the bytes of an RFC 9110 token (a method name).
var tchar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isIdentChar(byte(c)) || strings.IndexByte("!#$%&'*+-.^`|~", byte(c)) >= 0
	}
	return
}()

// match matches line against the template, returning one span per segment.
// Backtracking is bounded twice: in steps, and in bytes searched (so a long
// line cannot make it quadratic); a literal that is absent after some
// position is remembered as absent after any later one.
func (t *seqTemplate) match(line []byte, sp []span) ([]span, bool) {
	if !bytes.HasPrefix(line, t.prefix) {
		return sp, false
	}
	for len(sp) < len(t.segs) {
		sp = append(sp, span{})
	}
	sp = sp[:len(t.segs)]
	var absentBuf [32]int
	var absent []int
	if len(t.segs) <= len(absentBuf) {
		absent = absentBuf[:len(t.segs)]
	} else {
		absent = make([]int, len(t.segs))
	}
	for i := range absent {
		absent[i] = len(line) + 1
	}
	m := matcher{t: t, line: line, sp: sp, absent: absent, steps: maxMatchSteps, bytes: 8*len(line) + 4096}
	return sp, m.at(0, len(t.prefix))
}

type matcher struct {
	t      *seqTemplate
	line   []byte
	sp     []span
	absent []int // absent[i]: segment i's literal does not occur at or after this offset
	steps  int
	bytes  int
}

func (m *matcher) at(i, pos int) bool {
	t, line := m.t, m.line
	if i == len(t.segs) {
		return pos == len(line)
	}
	g := &t.segs[i]
	if i == len(t.segs)-1 {
		end := len(line) - len(g.lit)
		if end < pos+g.min || !bytes.Equal(line[end:], g.lit) || classFit(g.v.class, line[pos:end]) != fitOK {
			return false
		}
		m.sp[i] = span{pos, end}
		return true
	}
	if len(g.lit) == 0 {
		// Adjacent variables: try every split, shortest first. Neither
		// side may be empty: an unset variable renders as "-", and an
		// empty first value would hand the whole text to the next one.
		for end := pos + 1; end <= len(line); end++ {
			m.steps--
			if m.steps < 0 {
				return false
			}
			switch classFit(g.v.class, line[pos:end]) {
			case fitNever:
				return false
			case fitShort:
				continue
			}
			m.sp[i] = span{pos, end}
			if m.at(i+1, end) {
				return true
			}
		}
		return false
	}
	from := pos + g.min
	for {
		m.steps--
		if m.steps < 0 || m.bytes < 0 || from >= m.absent[i] {
			return false
		}
		var j int
		if len(g.lit) == 1 {
			j = bytes.IndexByte(line[from:], g.lit[0])
		} else {
			j = bytes.Index(line[from:], g.lit)
		}
		if j < 0 {
			m.bytes -= len(line) - from
			m.absent[i] = from
			return false
		}
		m.bytes -= j + 1
		end := from + j
		if g.v.class != classAny {
			m.bytes -= end - pos
			switch classFit(g.v.class, line[pos:end]) {
			case fitNever:
				return false
			case fitShort:
				// the literal is inside the value ("29/Jun/2023:12:01:02 +0000")
				from = end + 1
				continue
			}
		}
		m.sp[i] = span{pos, end}
		if m.at(i+1, end+len(g.lit)) {
			return true
		}
		from = end + 1
	}
}

// parse matches line and records every variable into s.
func (t *seqTemplate) parse(line []byte, s *scratch) bool {
	sp, ok := t.match(line, s.spans[:0])
	s.spans = sp
	if !ok {
		return false
	}
	for i := range t.segs {
		s.setVar(t.segs[i].v, line[sp[i].start:sp[i].end], false)
	}
	return true
}

// ---------------------------------------------------------------------------
// JSON templates: key path → variable (or sub-template for mixed values).

type jsonTemplate struct {
	fields []jsonField
	byKey  map[string]int
	vars   []*varInfo
	// learned templates come from detection: keys were mapped through the
	// alias table, so a "requestTime" holding digits is requestTimeEpoch.
	learned bool
}

type jsonField struct {
	key string
	v   *varInfo     // the value is exactly one variable
	sub *seqTemplate // the value mixes literals and variables
}

func compileJSON(f string) (*jsonTemplate, error) {
	var it jsonIter
	var kv jsonKV
	if !it.start([]byte(f), nil) {
		return nil, errors.New("apigw: not a JSON template")
	}
	jt := &jsonTemplate{byKey: map[string]int{}}
	for it.next(&kv) {
		val := string(kv.val)
		st, err := compileSeq(val)
		if err != nil {
			continue // constant value: nothing to recover
		}
		fl := jsonField{key: string(kv.key)}
		if len(st.prefix) == 0 && len(st.segs) == 1 && len(st.segs[0].lit) == 0 {
			fl.v = st.segs[0].v
		} else {
			fl.sub = st
		}
		for _, g := range st.segs {
			jt.vars = appendVarOnce(jt.vars, g.v)
		}
		if idx, dup := jt.byKey[fl.key]; dup {
			jt.fields[idx] = fl // duplicate keys in the template: last wins
			continue
		}
		jt.byKey[fl.key] = len(jt.fields)
		jt.fields = append(jt.fields, fl)
	}
	if it.err != "" {
		return nil, errors.New("apigw: JSON template: " + it.err)
	}
	if len(jt.fields) == 0 {
		return nil, ErrNoVariables
	}
	return jt, nil
}

// lookup finds the field for key, trying the position after the previous hit
// first (lines render keys in template order), then the index map.
func (jt *jsonTemplate) lookup(key []byte, hint *int) *jsonField {
	if h := *hint; h < len(jt.fields) && jt.fields[h].key == string(key) {
		*hint = h + 1
		return &jt.fields[h]
	}
	if idx, ok := jt.byKey[string(key)]; ok {
		*hint = idx + 1
		return &jt.fields[idx]
	}
	return nil
}

// parse reads a JSON access-log line with the template. Keys the template
// does not know are mapped like detected JSON. It reports whether the line
// was a JSON object.
func (jt *jsonTemplate) parse(line []byte, s *scratch) bool {
	var it jsonIter
	var kv jsonKV
	if !it.start(line, s.path) {
		return false
	}
	hint := 0
	n := 0
	for it.next(&kv) {
		n++
		fl := jt.lookup(kv.key, &hint)
		if fl == nil {
			setDetected(s, kv.key, kv.val, kv.esc)
			continue
		}
		if fl.v != nil {
			v := fl.v
			if jt.learned && v.role == roleRequestTime && isDigits(kv.val) {
				v = varRequestTimeEpoch
			}
			s.setVar(v, kv.val, kv.esc)
			continue
		}
		val := kv.val
		if kv.esc {
			s.tmp, _ = jsonstr.Append(s.tmp[:0], val)
			val = s.keep(s.tmp)
		}
		sp, ok := fl.sub.match(val, s.spans[:0])
		s.spans = sp
		if !ok {
			continue
		}
		for i := range fl.sub.segs {
			s.setVar(fl.sub.segs[i].v, val[sp[i].start:sp[i].end], false)
		}
	}
	s.path = it.path[:0]
	return it.err == "" && n > 0
}

// parseDetectedJSON reads a JSON line without a template, mapping keys
// through the alias table. With learn set it also returns the key layout as
// a template, so later lines of the same log group skip the alias lookups.
func parseDetectedJSON(line []byte, s *scratch, learn bool) (bool, *jsonTemplate) {
	var it jsonIter
	var kv jsonKV
	if !it.start(line, s.path) {
		return false, nil
	}
	var jt *jsonTemplate
	if learn {
		jt = &jsonTemplate{byKey: map[string]int{}, learned: true}
	}
	n := 0
	for it.next(&kv) {
		n++
		if len(kv.key) == 0 || len(kv.key) > maxKeyLen {
			continue
		}
		v := aliasForKey(kv.key)
		if v == nil {
			continue
		}
		if jt != nil && len(jt.fields) < 256 {
			k := string(kv.key)
			if idx, dup := jt.byKey[k]; dup {
				jt.fields[idx].v = v
			} else {
				jt.byKey[k] = len(jt.fields)
				jt.fields = append(jt.fields, jsonField{key: k, v: v})
			}
		}
		if v.role == roleRequestTime && isDigits(kv.val) {
			v = varRequestTimeEpoch // "requestTime":$context.requestTimeEpoch
		}
		s.setVar(v, kv.val, kv.esc)
	}
	s.path = it.path[:0]
	ok := it.err == "" && n > 0
	if !ok {
		jt = nil
	}
	return ok, jt
}

// maxKeyLen bounds JSON/XML keys mapped to attributes.
const maxKeyLen = 256

var varRequestTimeEpoch = knownVars["requestTimeEpoch"]

func setDetected(s *scratch, key, val []byte, esc bool) {
	if len(key) == 0 || len(key) > maxKeyLen {
		return
	}
	v := aliasForKey(key)
	if v == nil {
		return
	}
	if v.role == roleRequestTime && isDigits(val) {
		v = varRequestTimeEpoch // "requestTime":$context.requestTimeEpoch
	}
	s.setVar(v, val, esc)
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// recordAttrsOK reports whether a record's attributes satisfy the package's
// invariants (used by tests and fuzzers).
func recordAttrsOK(rec *record.Record) error {
	for _, a := range rec.Attrs {
		top := a.Key
		if i := strings.IndexByte(top, '.'); i >= 0 {
			top = top[:i]
		}
		if reservedTopLevel[top] {
			return fmt.Errorf("attribute %q has a reserved top-level key", a.Key)
		}
		if !validDynKey([]byte(a.Key)) {
			return fmt.Errorf("malformed attribute key %q", a.Key)
		}
		if (a.Key == KeyStatusCode || a.Key == KeyIntegStatus || a.Key == KeyAuthStatus || a.Key == KeyWAFStatus) &&
			(a.Kind != record.Int || a.Int < 100 || a.Int > 599) {
			return fmt.Errorf("%s out of range: %d", a.Key, a.Int)
		}
		if a.Kind == record.Number && !record.ValidNumber(a.Str) {
			return fmt.Errorf("%s: invalid number %q", a.Key, a.Str)
		}
	}
	return nil
}

var reservedTopLevel = map[string]bool{
	"status": true, "message": true, "host": true, "hostname": true, "service": true, "source": true,
	"ddsource": true, "ddtags": true, "timestamp": true, "date": true, "level": true, "severity": true,
	"trace_id": true,
}
