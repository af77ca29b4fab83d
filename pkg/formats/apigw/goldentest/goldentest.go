// Package goldentest reads the API Gateway parser's golden input files
// (pkg/formats/apigw/testdata/*.txt), for the parser's own tests and for
// the tests that run the same lines through gwpipe parse.
package goldentest

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// Case is one input line of a golden file with its context.
type Case struct {
	Group, Stream, Format, Prefix string
	Line                          string
}

// Read reads a golden file: "group:", "stream:", "format:", "prefix:"
// headers set the context of the "> line" records that follow (a "group:"
// or "stream:" header resets the others); '#' lines are comments; a
// literal \n at the end of a line stands for a newline.
func Read(tb testing.TB, path string) []Case {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []Case
	var cur Case
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "":
		case strings.HasPrefix(l, "group: "):
			cur = Case{Group: strings.TrimPrefix(l, "group: ")}
		case strings.HasPrefix(l, "stream: "):
			cur = Case{Stream: strings.TrimPrefix(l, "stream: ")}
		case strings.HasPrefix(l, "format: "):
			cur.Format = strings.TrimPrefix(l, "format: ")
		case strings.HasPrefix(l, "prefix: "):
			cur.Prefix = strings.TrimPrefix(l, "prefix: ")
		case strings.HasPrefix(l, ">"):
			c := cur
			c.Line = strings.TrimPrefix(strings.TrimPrefix(l, ">"), " ")
			if strings.HasSuffix(c.Line, `\n`) {
				c.Line = strings.TrimSuffix(c.Line, `\n`) + "\n"
			}
			out = append(out, c)
		default:
			tb.Fatalf("%s: bad line %q", path, l)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
