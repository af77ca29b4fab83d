package decode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func splitAll(data string) []string {
	var sp splitter
	sp.reset([]byte(data), nil)
	var out []string
	for it, ok := sp.next(); ok; it, ok = sp.next() {
		s := fmt.Sprintf("%d:%s", it.line, data[it.start:it.end])
		if it.unclosed {
			s += " (unclosed)"
		}
		out = append(out, s)
	}
	return out
}

func TestSplitter(t *testing.T) {
	pretty := "{\n  \"a\": 1,\n  \"b\": \"}{\"\n}"
	tests := []struct {
		name, in string
		want     []string
	}{
		{"lines", "a\nb", []string{"1:a", "2:b"}},
		{"blank lines and CRLF; a line keeps its own spaces", "  a  \r\n\n \t\r\n\tb\r\n", []string{"1:  a  ", "4:\tb"}},
		{"objects back to back", `{"a":1}{"b":2}`, []string{`1:{"a":1}`, `1:{"b":2}`}},
		{"objects with spaces, then the next line", "{\"a\":1} {\"b\":2}\r\n{\"c\":3}", []string{`1:{"a":1}`, `1:{"b":2}`, `2:{"c":3}`}},
		{"one object is its whole line, as it came", " {\"a\":1} \n", []string{`1: {"a":1} `}},
		{"an object then text is one line", `{"a":1} trailing`, []string{`1:{"a":1} trailing`}},
		{"braces in strings", `{"a":"}{\"}"}{"b":"\\"}`, []string{`1:{"a":"}{\"}"}`, `1:{"b":"\\"}`}},
		{"invalid JSON on one line is still an object", `{"status":-}{"x":-}`, []string{`1:{"status":-}`, `1:{"x":-}`}},
		{"a valid object across lines", pretty + "\n{\"c\":3}\nline", []string{"1:" + pretty, `5:{"c":3}`, "6:line"}},
		{"two pretty objects back to back", pretty + pretty, []string{"1:" + pretty, "4:" + pretty}},
		{"an invalid object across lines is lines", "{\n garbage\n}\nx", []string{"1:{", "2: garbage", "3:}", "4:x"}},
		{"truncated", "ok\n{\"messageType\":\"DATA_MESSAGE\",\"logEvents\":[", []string{"1:ok", `2:{"messageType":"DATA_MESSAGE","logEvents":[ (unclosed)`}},
		{"an object across lines followed by text", "{\n\"a\":1\n} x\n{\"b\":2}", []string{"1:{", `2:"a":1`, "3:} x", `4:{"b":2}`}},
		{"white space only", " \r\n\t\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, splitAll(tt.in))
		})
	}
}

// Unclosed braces at the start of many lines do not make the splitter
// rescan the rest of the record for each: the items still come out, and a
// failed attempt to read across lines is not repeated inside what it read.
func TestSplitterManyUnclosedLines(t *testing.T) {
	in := strings.Repeat("{\n", 2000) + strings.Repeat("}\n", 10)
	got := splitAll(in)
	assert.Len(t, got, 2010)
	assert.Equal(t, "1:{ (unclosed)", got[0])
}

// Found by FuzzDecode: objects read before a failure on the same line must
// not come out besides the line.
func TestSplitterFailureAfterObjects(t *testing.T) {
	assert.Equal(t, []string{"1:{}{"}, splitAll("{}{"))
	assert.Equal(t, []string{`1:{"a":1}{"b"`, "2:x"}, splitAll("{\"a\":1}{\"b\"\nx"))
}
