package filter

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// FuzzPattern: the literal prefilter never changes what an expression
// finds or replaces (differential against regexp alone).
func FuzzPattern(f *testing.F) {
	for _, s := range [][3]string{
		{`GET /health`, `"GET /health HTTP/1.1" 200`, "x"},
		{`\bsecret=\w+`, "a secret=abc b", "secret=[redacted]"},
		{`(?i)token`, "TOKEN=1", "$0$0"},
		{`a+b|cd`, "aab cd", "${1}"},
		{`x*`, "abc", "-"},
		{`日本\d`, "日本1 \xff日本2", "JP"},
		{"\xff", "a\xffb", "?"},
		{`(\d{3})-(\d{4})`, "call 555-1234", "$1-xxxx"},
		{`^/health$`, "/health", ""},
		{`ab(c|d)e`, "abce abde", "<$1>"},
	} {
		f.Add(s[0], []byte(s[1]), s[2])
	}
	f.Fuzz(func(t *testing.T, expr string, in []byte, repl string) {
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		p, err := compilePattern(expr)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v, regexp accepts it", expr, err)
		}
		if got, want := p.match(in), re.Match(in); got != want {
			t.Fatalf("%q (literal %q) on %q: match %v, regexp %v", expr, p.lit, in, got, want)
		}
		got, n := p.replace([]byte("junk"), in, []byte(repl))
		want := re.ReplaceAll(in, []byte(repl))
		if n == 0 {
			if string(want) != string(in) {
				t.Fatalf("%q on %q: replaced nothing, regexp gives %q", expr, in, want)
			}
		} else if !bytes.Equal(got[4:], want) || n != len(re.FindAllIndex(in, -1)) {
			t.Fatalf("%q on %q by %q: %q (%d), regexp gives %q", expr, in, repl, got[4:], n, want)
		}
	})
}

// FuzzRedact: after the built-ins, neither an address nor anything else
// the built-ins find is left (scrubbing again changes nothing), in the
// message and in every string attribute; the input is left as it was.
func FuzzRedact(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	fl, err := New(Config{Redact: []string{RedactIP, RedactEmail}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b := &record.Batch{Records: []record.Record{{Message: in, Attrs: []record.Attr{record.StringAttr("a", in)}}}}
		before := clone(b)
		out := fl.Apply(b)
		if !bytesEqualBatch(before, b) {
			t.Fatal("the input batch was modified")
		}
		r := out.Records[0]
		for _, s := range [][]byte{r.Message, r.Attrs[0].Str} {
			for _, fn := range []func(dst, s []byte) ([]byte, int){redactIPv6, redactIPv4, redactEmail} {
				if again, n := fn(nil, s); n != 0 && !bytes.Equal(again, s) {
					t.Fatalf("%q scrubbed to %q, which still holds %d matches", in, s, n)
				}
			}
		}
	})
}

func bytesEqualBatch(a, b *record.Batch) bool {
	if len(a.Records) != len(b.Records) {
		return false
	}
	for i := range a.Records {
		if !bytes.Equal(a.Records[i].Message, b.Records[i].Message) {
			return false
		}
		for j := range a.Records[i].Attrs {
			if !bytes.Equal(a.Records[i].Attrs[j].Str, b.Records[i].Attrs[j].Str) {
				return false
			}
		}
	}
	return true
}
