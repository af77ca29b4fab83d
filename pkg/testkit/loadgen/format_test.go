package loadgen

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", `quote " and backslash \ `, "ctl \x00\x01\x1f\t\r\n end",
		"unicode Café ☕ 日本", `{"a":"b\"c"}`, "\x7f<>&",
	} {
		t.Run(s, func(t *testing.T) {
			out := append([]byte(`"`), appendJSONString([]byte("x"), s)[1:]...)
			out = append(out, '"')
			var back string
			require.NoError(t, json.Unmarshal(out, &back), "%s", out)
			assert.Equal(t, s, back)
			assert.Equal(t, appendJSONString(nil, []byte(s)), appendJSONString(nil, s))
		})
	}
}

// TestAppendJSONStringRandom compares the escapers with a reference on random inputs of every length and alignment.
func TestAppendJSONStringRandom(t *testing.T) {
	t.Parallel()
	ref := func(s []byte) []byte {
		var out []byte
		for _, c := range s {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, `\n`...)
			case c == '\r':
				out = append(out, `\r`...)
			case c == '\t':
				out = append(out, `\t`...)
			case c < 0x20:
				out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				out = append(out, c)
			}
		}
		return out
	}
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("abcXYZ09 {}:,=\"\\\n\t\x00\x1f\x7f\x80\xc3\xa9\xff")
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte('a' + r.IntN(26))
			}
		}
		prefix := []byte("pre")[:r.IntN(4)]
		want := append(append([]byte{}, prefix...), ref(b)...)
		require.Equal(t, want, appendJSONString(append([]byte{}, prefix...), b), "%q", b)
		require.Equal(t, want, appendJSONString(append([]byte{}, prefix...), string(b)), "%q", b)
		require.Equal(t, want, appendJSONBytes(append([]byte{}, prefix...), b), "%q", b)
	}
}

func TestTimeFormats(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	cases := []int64{0, 951782400000, 1700000000123, 4102444799999, -1, -86400001}
	for range 2000 {
		cases = append(cases, r.Int64N(5_000_000_000_000)-1_000_000_000_000)
	}
	for _, ms := range cases {
		tm := time.UnixMilli(ms).UTC()
		require.Equal(t, tm.Format("02/Jan/2006:15:04:05 -0700"), string(appendCLFTime(nil, ms)), ms)
		require.Equal(t, tm.Format(http.TimeFormat), string(appendHTTPDate(nil, ms)), ms)
		require.Equal(t, tm.Format("20060102T150405Z"), string(appendAmzDate(nil, ms)), ms)
	}
}

func TestAppendUUIDAndNumbers(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		u := string(appendUUID(nil, r.Uint64(), r.Uint64()))
		require.Regexp(t, re, u)
	}
	assert.Equal(t, "00042", string(appendUint(nil, 42, 5)))
	assert.Equal(t, "18446744073709551615", string(appendUint(nil, 1<<64-1, 20)))
	assert.Equal(t, "0", string(appendUint(nil, 0, 1)))
	assert.Equal(t, "0000ff", string(appendHex(nil, 255, 6)))
}
