package jsonstr

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// appendEscapedRef is the straightforward escaper AppendEscaped's word
// path must agree with: one unit at a time, by the package's rules.
func appendEscapedRef(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case safeByte[b]:
				dst = append(dst, b)
			case shortEscape[b] != 0:
				dst = append(dst, '\\', shortEscape[b])
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// escapeAlphabet leans on what the word path treats apart: quotes and
// backslashes (several in a word), the bytes next to them in value (a
// borrow in a looser mask), control characters, multi-byte and invalid
// UTF-8, the two escaped line terminators.
var escapeAlphabet = []string{"\"", "\\", "#", "!", "[", "]", "a", "Z", " ", "\x00", "\x1f", "\n", "\x7f",
	"é", "😀", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x80", "{\"k\":\"v\"}"}

func randomEscapeInput(rng *rand.Rand) string {
	var b []byte
	for range rng.IntN(60) {
		if rng.IntN(3) == 0 {
			b = append(b, byte(rng.Uint32()))
		} else {
			b = append(b, escapeAlphabet[rng.IntN(len(escapeAlphabet))]...)
		}
	}
	return string(b)
}

// AppendEscaped writes what the straightforward escaper writes, after any
// prefix, whatever room dst has (the word path stores past what it counts:
// it must never show).
func TestAppendEscapedMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		s := randomEscapeInput(rng)
		want := string(appendEscapedRef([]byte("pre"), s))
		for _, room := range []int{0, 1, 23, 24, 25, 200} {
			dst := append(make([]byte, 0, 3+room), "pre"...)
			if got := string(AppendEscaped(dst, s)); got != want {
				t.Fatalf("AppendEscaped(%q) with room %d = %q, want %q", s, room, got, want)
			}
		}
	}
}

// What the word path stores past the bytes it counts lands in dst's spare
// capacity, never in memory the caller handed over: a slice of a larger
// buffer keeps the bytes after it.
func TestAppendEscapedWritesOnlyItsOwn(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20_000 {
		s := randomEscapeInput(rng)
		buf := make([]byte, 4096)
		for i := range buf {
			buf[i] = 0xa5
		}
		capacity := 10 + rng.IntN(40)
		got := AppendEscaped(buf[:10:capacity], s)
		if string(got[10:]) != string(appendEscapedRef(nil, s)) {
			t.Fatalf("%q: wrong output", s)
		}
		for i, b := range buf[capacity:] {
			if b != 0xa5 {
				t.Fatalf("%q: byte %d past dst's capacity overwritten", s, capacity+i)
			}
		}
	}
}

// specials must be exact for every byte of any word.
func TestSpecials(t *testing.T) {
	t.Parallel()
	for word := range randomWords(7, 8) {
		var wantQ, wantO uint64
		for j, b := range word {
			switch {
			case b == '"' || b == '\\':
				wantQ |= 0x80 << (8 * j)
			case !safeByte[b]:
				wantO |= 0x80 << (8 * j)
			}
		}
		q, o := specials(binary.LittleEndian.Uint64(word[:]))
		if q != wantQ || o != wantO {
			t.Fatalf("% x: quotes %x other %x, want %x %x", word, q, o, wantQ, wantO)
		}
	}
}

func FuzzAppendEscapedMatchesReference(f *testing.F) {
	for _, s := range []string{"", "plain", `{"a":"b\\c"}`, "\"\"\"\"\"\"\"\"\"", "é\"😀\u2028\xff\x00x", accessLog} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendEscaped(nil, s), appendEscapedRef(nil, s); string(got) != string(want) {
			t.Fatalf("AppendEscaped(%q) = %q, want %q", s, got, want)
		}
	})
}
