package jsonstr

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestEscapingMatchesEncodingJSON(t *testing.T) {
	// For valid UTF-8 the decoded result must be the input, whatever the
	// alignment of special bytes within 8-byte words.
	var sb strings.Builder
	for i := 0; i < 300; i++ {
		sb.WriteString(strings.Repeat("a", i%9))
		sb.WriteByte(byte(i % 0x80))
		sb.WriteString([]string{"é", "\u2028", "😀", "\"", "\\", ""}[i%6])
	}
	s := sb.String()
	for shift := 0; shift < 16; shift++ {
		in := strings.Repeat("-", shift) + s
		out := AppendQuoted(nil, in)
		require.True(t, json.Valid(out))
		var back string
		require.NoError(t, json.Unmarshal(out, &back))
		require.Equal(t, in, back)
		require.Equal(t, len(out)-2, EscapedLen(in))
	}
}

func TestAppendEscapedLimit(t *testing.T) {
	s := "ab\"é\x00😀\xffz"
	full := AppendEscaped(nil, s)
	for limit := 0; limit <= len(full)+1; limit++ {
		out, consumed := AppendEscapedLimit(nil, s, limit)
		require.LessOrEqual(t, len(out), limit)
		require.True(t, bytes.HasPrefix(full, out), "limit %d: %q", limit, out)
		require.Equal(t, string(AppendEscaped(nil, s[:consumed])), string(out))
		require.True(t, json.Valid(append(append([]byte{'"'}, out...), '"')))
	}
}

// specialMask's lowest set bit must be exactly the first byte that needs
// escaping, for any word.
func TestSpecialMask(t *testing.T) {
	for word := range randomWords(3, 4) {
		want := 8
		for j, b := range word {
			if !safeByte[b] {
				want = j
				break
			}
		}
		m := specialMask(binary.LittleEndian.Uint64(word[:]))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		require.Equal(t, want, got, "% x", word)
	}
}

// FuzzQuoteRoundTrip holds the two halves of the package to each other and
// to encoding/json: whatever AppendQuoted writes is valid JSON, of the
// length EscapedLen says; for valid UTF-8, encoding/json and Append both
// decode it back to the input; and AppendEscapedLimit writes a prefix of
// AppendEscaped's output that ends between escape units.
func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "é😀\u2028\u2029", "\xff\xfe", "ab\"é\x00😀\xffz"} {
		f.Add(s, 5)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		out := AppendQuoted(nil, s)
		if !json.Valid(out) {
			t.Fatalf("AppendQuoted(%q) = %q: not valid JSON", s, out)
		}
		if EscapedLen(s) != len(out)-2 {
			t.Fatalf("EscapedLen(%q) = %d, wrote %d", s, EscapedLen(s), len(out)-2)
		}
		if utf8.ValidString(s) {
			var back string
			if err := json.Unmarshal(out, &back); err != nil || back != s {
				t.Fatalf("encoding/json reads %q back as %q (%v)", s, back, err)
			}
			if got, ok := Append(nil, out[1:len(out)-1]); !ok || string(got) != s {
				t.Fatalf("Append reads %q back as %q (ok %v)", s, got, ok)
			}
		}
		limit = max(0, limit%(len(out)+2))
		part, consumed := AppendEscapedLimit(nil, s, limit)
		if len(part) > limit || !bytes.HasPrefix(out[1:], part) || string(AppendEscaped(nil, s[:consumed])) != string(part) {
			t.Fatalf("AppendEscapedLimit(%q, %d) = %q, %d", s, limit, part, consumed)
		}
	})
}

// randomWords yields 200,000 words of 8 bytes, about half of them bytes
// where escaping decides (controls, quotes, backslash, DEL, UTF-8 leads),
// for the word-at-a-time checks.
func randomWords(seed1, seed2 uint64) func(yield func([8]byte) bool) {
	interesting := []byte{0, 1, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']', 0x5d, 0x7e, 0x7f, 0x80, 0xa2, 0xdc, 0xc3, 0xfe, 0xff, 'a'}
	return func(yield func([8]byte) bool) {
		rng := rand.New(rand.NewPCG(seed1, seed2))
		for range 200_000 {
			var word [8]byte
			for j := range word {
				if rng.IntN(2) == 0 {
					word[j] = interesting[rng.IntN(len(interesting))]
				} else {
					word[j] = byte(rng.Uint32())
				}
			}
			if !yield(word) {
				return
			}
		}
	}
}
