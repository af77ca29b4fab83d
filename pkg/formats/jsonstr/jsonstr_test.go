package jsonstr

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestAppend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		ok       bool
	}{
		{`plain`, `plain`, true},
		{`a\"b\\c\/d\b\f\n\r\t`, "a\"b\\c/d\b\f\n\r\t", true},
		{`\u00e9\u00E9`, "éé", true},
		{`\ud83d\ude00`, "😀", true},
		{`\ud800x`, "\ufffdx", true}, // lone high surrogate
		{`\ude00`, "\ufffd", true},   // lone low surrogate
		{`\ud800\u0041`, "\ufffdA", true},
		{`\q`, `\q`, false}, // kept as written
		{`\u12`, `\u12`, false},
		{`end\`, `end\`, false},
	}
	for _, c := range cases {
		got, ok := Append([]byte("pre:"), []byte(c.in))
		assert.Equal(t, "pre:"+c.want, string(got), c.in)
		assert.Equal(t, c.ok, ok, c.in)
		assert.Equal(t, c.ok, Valid([]byte(c.in)), c.in)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{`a\"b`, `\ud83d\ude00`, `\ud800`, `\u00e9`, `\q\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got, ok := Append(nil, s)
		if len(got) > len(s) {
			t.Fatalf("decoding lengthened %q to %q", s, got)
		}
		if ok != Valid(s) {
			t.Fatalf("Append and Valid disagree on %q", s)
		}
		// A valid body decodes as encoding/json decodes it.
		if ok && utf8.Valid(s) {
			var want string
			quoted := append(append([]byte{'"'}, s...), '"')
			if json.Unmarshal(quoted, &want) == nil && want != string(got) {
				t.Fatalf("%q: got %q, encoding/json %q", s, got, want)
			}
		}
	})
}
