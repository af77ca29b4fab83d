package firehose

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// checkInPlace holds decodeBase64InPlace to encoding/base64: it decodes
// exactly what StdEncoding decodes (or declines), and when it declines it
// leaves the input as it was.
func checkInPlace(t *testing.T, in []byte) {
	t.Helper()
	q := func(b []byte) string { // a failure names the input, not 7 KB of it
		if len(b) > 64 {
			return fmt.Sprintf("%q… (%d bytes)", b[:64], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	p := bytes.Clone(in)
	n, ok := decodeBase64InPlace(p)
	want, err := base64.StdEncoding.DecodeString(string(in))
	if ok {
		if err != nil {
			t.Fatalf("%s: decoded in place, but encoding/base64 refuses it: %v", q(in), err)
		}
		if !bytes.Equal(p[:n], want) {
			t.Fatalf("%s: decoded %s, want %s", q(in), q(p[:n]), q(want))
		}
		return
	}
	if !bytes.Equal(p, in) {
		t.Fatalf("%s: declined, but left %s", q(in), q(p))
	}
	// Declining is only for input the fast path does not take: anything
	// StdEncoding reads without line breaks must be taken.
	if err == nil && !bytes.ContainsAny(in, "\r\n") {
		t.Fatalf("%s: declined valid base64", q(in))
	}
}

func TestDecodeBase64InPlace(t *testing.T) {
	t.Parallel()
	long := make([]byte, 5000)
	for i := range long {
		long[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(long)
	cases := []string{
		"", "YQ==", "YWI=", "YWJj", enc, enc[:4096] + enc[4096:],
		enc[:2048] + "!" + enc[2049:],    // invalid in the third block: two blocks to restore
		enc[:1020] + "YQ==" + enc[1024:], // padding at the end of a block, not of the input
		enc[:3000] + "\n" + enc[3000:],
		"YQ", "YQ=", "Y===", strings.Repeat("A", 1024) + "====",
	}
	for _, c := range cases {
		checkInPlace(t, []byte(c))
	}
	// And many more, seeded: lengths across block boundaries, one byte
	// changed to what breaks base64 in different ways, or left alone.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		data := make([]byte, rng.IntN(3000))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		in := []byte(base64.StdEncoding.EncodeToString(data))
		if len(in) > 0 && rng.IntN(4) > 0 {
			const breakers = "=!\n\r-_A/"
			in[rng.IntN(len(in))] = breakers[rng.IntN(len(breakers))]
		}
		checkInPlace(t, in)
	}
}

func FuzzDecodeBase64InPlace(f *testing.F) {
	f.Add([]byte("YWJj"), 0, byte('!'))
	f.Add(bytes.Repeat([]byte("QUJD"), 600), 1500, byte('='))
	f.Add(bytes.Repeat([]byte("QUJD"), 600), 2000, byte('\n'))
	f.Fuzz(func(t *testing.T, data []byte, at int, c byte) {
		// Mostly valid base64 of data, sometimes with one byte changed.
		in := []byte(base64.StdEncoding.EncodeToString(data))
		if len(in) > 0 && at >= 0 {
			in[at%len(in)] = c
		}
		checkInPlace(t, in)
	})
}
