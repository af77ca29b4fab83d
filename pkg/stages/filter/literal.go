package filter

import (
	"bytes"
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// pattern is a compiled regular expression with a literal prefilter: a
// string every match contains. bytes.Contains (vectorised) rules out
// most logs before the regexp engine sees them, which matters for
// expressions that start with a class or \b (no literal prefix for the
// engine to skip to): the engine scans those byte by byte.
type pattern struct {
	re  *regexp.Regexp
	lit []byte // nil: no literal is required
}

func compilePattern(expr string) (*pattern, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	p := &pattern{re: re}
	if tree, err := syntax.Parse(expr, syntax.Perl); err == nil {
		if lit := requiredLiteral(tree.Simplify()); lit != "" {
			p.lit = []byte(lit)
		}
	}
	return p, nil
}

// match reports whether the expression matches somewhere in s.
func (p *pattern) match(s []byte) bool {
	if p.lit != nil && !bytes.Contains(s, p.lit) {
		return false
	}
	return p.re.Match(s)
}

// mayMatch is false when the expression cannot match s.
func (p *pattern) mayMatch(s []byte) bool { return p.lit == nil || bytes.Contains(s, p.lit) }

// requiredLiteral is the longest literal every match of re contains, ""
// when there is none worth searching for. Case-folded literals do not
// count, nor literals holding U+FFFD (the engine reads an invalid byte as
// U+FFFD, which bytes.Contains would not find).
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		return literalText(re)
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiteral(re.Sub[0])
		}
	case syntax.OpConcat:
		// Adjacent literals join; otherwise the longest of the parts.
		best, run := "", ""
		for _, sub := range re.Sub {
			if l := literalText(sub); l != "" {
				run += l
				if len(run) > len(best) {
					best = run
				}
				continue
			}
			run = ""
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// literalText is the text of a case-sensitive literal node, else "".
func literalText(re *syntax.Regexp) string {
	if re.Op != syntax.OpLiteral || re.Flags&syntax.FoldCase != 0 {
		return ""
	}
	for _, r := range re.Rune {
		if r == utf8.RuneError {
			return ""
		}
	}
	return string(re.Rune)
}

// replace appends s to dst with every match replaced by repl expanded
// ($1, ${name}), as regexp.ReplaceAll does, and returns how many there
// were; with none, dst is returned as it was.
func (p *pattern) replace(dst, s, repl []byte) ([]byte, int) {
	if !p.mayMatch(s) {
		return dst, 0
	}
	ms := p.re.FindAllSubmatchIndex(s, -1)
	if len(ms) == 0 {
		return dst, 0
	}
	last := 0
	for _, m := range ms {
		dst = append(dst, s[last:m[0]]...)
		dst = p.re.Expand(dst, repl, s, m)
		last = m[1]
	}
	return append(dst, s[last:]...), len(ms)
}
