package textrule

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNotText(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "plain", "tab\there", "form\ffeed", "\x1b[1mbold\x1b[0m", "carriage\rreturn", "é ü 日本 😀", "del\x7f", "\u0085c1"} {
		assert.Empty(t, NotText([]byte(in)), "%q is text", in)
	}
	tests := map[string]string{
		"\x00":               "control byte 0x00 at byte 0",
		"ab\x08":             "control byte 0x08 at byte 2",
		"a\x0bb":             "control byte 0x0b at byte 1",
		"\x1a":               "control byte 0x1a at byte 0",
		"x\x1f":              "control byte 0x1f at byte 1",
		"caf\xe9":            "invalid UTF-8 at byte 3",
		"ok \xed\xa0\x80 no": "invalid UTF-8 at byte 3", // a UTF-16 surrogate
		"\xc0\xaf":           "invalid UTF-8 at byte 0", // overlong
	}
	for in, want := range tests {
		assert.Equal(t, want, NotText([]byte(in)), "%q", in)
	}
	// The set is WHATWG's binary data bytes, exactly.
	for c := range 0x20 {
		want := c <= 0x08 || c == 0x0b || (c >= 0x0e && c <= 0x1a) || c >= 0x1c
		assert.Equal(t, want, NotText([]byte{byte(c)}) != "", "byte 0x%02x", c)
	}
}
