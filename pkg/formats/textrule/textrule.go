// Package textrule is the rule by which gwpipe tells text from binary
// data, shared by every reader of source data (the decode stage, the S3
// object reader), so that no log is ever built from bytes that are not
// text, whichever way they arrived.
package textrule

import (
	"fmt"
	"unicode/utf8"
)

// binaryBytes is the set of C0 control bytes that never occur in text: the
// WHATWG MIME Sniffing standard's "binary data bytes" (0x00–0x08, 0x0B,
// 0x0E–0x1A, 0x1C–0x1F). Tab, line feed, form feed, carriage return and
// escape (terminal colours in application logs) are text.
const binaryBytes uint32 = 0b1111_0111_1111_1111_1100_1001_1111_1111

// NotText tells why p is not text, or returns "" when it is: text is valid
// UTF-8 without binary data bytes. A log is never built from anything else,
// so that the delivery stage never has to replace bytes in it.
func NotText(p []byte) string {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && binaryBytes>>c&1 != 0 {
				return fmt.Sprintf("control byte 0x%02x at byte %d", c, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && n == 1 {
			return fmt.Sprintf("invalid UTF-8 at byte %d", i)
		}
		i += n
	}
	return ""
}
