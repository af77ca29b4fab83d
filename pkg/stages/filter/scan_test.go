package filter

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The references: each scanner must give exactly what its regular
// expression gives.

var (
	ipv4RE  = regexp.MustCompile(ipv4Pattern)
	emailRE = regexp.MustCompile(emailPattern)
	ipv6RE  = func() *regexp.Regexp {
		re := regexp.MustCompile(ipv6Before + `(` + ipv6Pattern + `)`)
		re.Longest()
		return re
	}()
)

func refReplace(re *regexp.Regexp, mask string, s []byte) ([]byte, int) {
	return re.ReplaceAllLiteral(s, []byte(mask)), len(re.FindAllIndex(s, -1))
}

// refIPv6 searches ipv6RE over s behind a blank (the start of s is a
// boundary), each search starting at the character before the end of the
// last address: that character is what the next address follows.
func refIPv6(s []byte) ([]byte, int) {
	t := append([]byte{' '}, s...)
	var out []byte
	n, q, copied := 0, 0, 1
	for q < len(t) {
		m := ipv6RE.FindSubmatchIndex(t[q:])
		if m == nil {
			break
		}
		a, b := q+m[2], q+m[3]
		out = append(append(out, t[copied:a]...), IPv6Mask...)
		n++
		copied, q = b, b-1
	}
	return append(out, t[copied:]...), n
}

// scanned runs a scanner as the filters do: the input when nothing matched.
func scanned(f func(dst, s []byte) ([]byte, int), s []byte) ([]byte, int) {
	out, n := f([]byte("junk"), s)
	if n == 0 {
		if string(out) != "junk" {
			panic("a scanner that found nothing wrote to dst")
		}
		return s, 0
	}
	if !bytes.HasPrefix(out, []byte("junk")) {
		panic("a scanner did not append to dst")
	}
	return out[4:], n
}

func checkScanner(t *testing.T, name string, f func(dst, s []byte) ([]byte, int), ref func([]byte) ([]byte, int), in []byte) {
	t.Helper()
	got, n := scanned(f, in)
	want, wn := ref(in)
	if !bytes.Equal(got, want) || n != wn {
		t.Fatalf("%s(%q) = %q (%d), the expression gives %q (%d)", name, in, got, n, want, wn)
	}
}

var (
	refV4    = func(s []byte) ([]byte, int) { return refReplace(ipv4RE, IPv4Mask, s) }
	refEmail = func(s []byte) ([]byte, int) { return refReplace(emailRE, EmailMask, s) }
)

// checkCases checks the scanner f on each input of cases: it gives what
// cases says, and what its expression, ref, gives.
func checkCases(t *testing.T, name string, f func(dst, s []byte) ([]byte, int), ref func([]byte) ([]byte, int), cases map[string]string) {
	t.Helper()
	for in, want := range cases {
		got, _ := scanned(f, []byte(in))
		assert.Equal(t, want, string(got), "%q", in)
		checkScanner(t, name, f, ref, []byte(in))
	}
}

func TestIPv4(t *testing.T) {
	t.Parallel()
	checkCases(t, "redactIPv4", redactIPv4, refV4, map[string]string{
		"":                                "",
		"client 192.0.2.1 said hi":        "client xxx.xxx.xxx.xxx said hi",
		`{"ip":"10.0.0.255","x":1}`:       `{"ip":"xxx.xxx.xxx.xxx","x":1}`,
		"1234.5.6.7":                      "1xxx.xxx.xxx.xxx",
		"1.2.3.4567":                      "xxx.xxx.xxx.xxx7",
		"1.2.3.4.5.6.7.8":                 "xxx.xxx.xxx.xxx.xxx.xxx.xxx.xxx",
		"1.2.3..4.5.6.7":                  "1.2.3..xxx.xxx.xxx.xxx",
		"HTTP/1.1 Mozilla/5.0 537.36":     "HTTP/1.1 Mozilla/5.0 537.36",
		"::ffff:192.0.2.1":                "::ffff:xxx.xxx.xxx.xxx",
		"999.999.999.999":                 "xxx.xxx.xxx.xxx",
		"a1.2.3.4b":                       "axxx.xxx.xxx.xxxb",
		"1.2.3.":                          "1.2.3.",
		"x.1.2.3.4":                       "x.xxx.xxx.xxx.xxx",
		"1.2.3.4:443, 5.6.7.8":            "xxx.xxx.xxx.xxx:443, xxx.xxx.xxx.xxx",
		"0.0.0.0/0 and 127.0.0.1-2.3.4.5": "xxx.xxx.xxx.xxx/0 and xxx.xxx.xxx.xxx-xxx.xxx.xxx.xxx",
	})
}

func TestEmail(t *testing.T) {
	t.Parallel()
	checkCases(t, "redactEmail", redactEmail, refEmail, map[string]string{
		"mail jane.doe+x@example.co.uk now": "mail xxxxx@xxxxx.com now",
		"a@b":                               "a@b",
		"a@b.":                              "a@b.",
		"a@b..":                             "xxxxx@xxxxx.com",
		"@example.com":                      "@example.com",
		"a@b@c.com":                         "a@xxxxx@xxxxx.com",
		"a@b.c.d@e.f":                       "xxxxx@xxxxx.com@e.f",
		`{"user":"bob@corp.example","n":1}`: `{"user":"xxxxx@xxxxx.com","n":1}`,
		"x@y z@w.io":                        "x@y xxxxx@xxxxx.com",
	})
}

func TestIPv6(t *testing.T) {
	t.Parallel()
	cases := map[string]string{ // M is IPv6Mask
		"2001:db8::1": "M",
		"client 2001:0db8:85a3:0000:0000:8a2e:0370:7334 x": "client M x",
		`{"ip":"::ffff:192.0.2.1"}`:                        `{"ip":"M"}`,
		"64:ff9b::198.51.100.7":                            "M",
		"0:0:0:0:0:ffff:1.2.3.4":                           "M",
		"[fe80::1%eth0]:8080":                              "[M%eth0]:8080",
		"::1":                                              "M",
		"a :: b":                                           "a :: b",
		"std::string Foo::bar":                             "std::string Foo::bar",
		"addr:2001:db8::1":                                 "addr:M",
		"12:34:56 10/Feb/2026:12:34:56":                    "12:34:56 10/Feb/2026:12:34:56",
		"00:1a:2b:3c:4d:5e":                                "00:1a:2b:3c:4d:5e",
		"1:2:3:4:5:6:7:8:9":                                "M:9",
		"1:2:3:4:5:6:7::8":                                 "M8",
		"1::2::3":                                          "M::3",
		"1.2.3.4::1":                                       "1.2.3.4::1",
		"::ffff:1.2.3.456":                                 "M6",
		"1::12345":                                         "M5",
		"1:::2":                                            "M:2",
		"dead:beef::":                                      "M",
		"x2001:db8::1":                                     "x2001:M",
	}
	for in, want := range cases {
		cases[in] = strings.ReplaceAll(want, "M", IPv6Mask)
	}
	checkCases(t, "redactIPv6", redactIPv6, refIPv6, cases)
}

var scannerSeeds = []string{
	"", "1.2.3.4", "::", "::1", "1::", "a@b.c", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4",
	"1.2.3.4::1", "x@1.2.3.4", "1.2.3.4@x.y", "2001:db8::1.2.3.4.5", "::1.2.3", "fe80::1%eth0", "10/Feb/2026:12:34:56",
	`{"sourceIp":"2001:db8::7","email":"a.b+c@d-e.f.g","ip4":"203.0.113.9"}`, "é::1 日本1.2.3.4", "\xff::1\xfe", "1:2::3:4:5:6:7",
	"12345.1.1.1", "a@@b.c", "::255.255.255.255", "::256.1.1.1", "::01.2.3.4",
}

// fuzzScanner fuzzes the scanner f against its expression, ref, from
// scannerSeeds.
func fuzzScanner(fz *testing.F, name string, f func(dst, s []byte) ([]byte, int), ref func([]byte) ([]byte, int)) {
	for _, s := range scannerSeeds {
		fz.Add([]byte(s))
	}
	fz.Fuzz(func(t *testing.T, in []byte) { checkScanner(t, name, f, ref, in) })
}

// FuzzIPv4, FuzzIPv6 and FuzzEmail: each scanner against its expression.
func FuzzIPv4(f *testing.F) { fuzzScanner(f, "redactIPv4", redactIPv4, refV4) }

func FuzzIPv6(f *testing.F) { fuzzScanner(f, "redactIPv6", redactIPv6, refIPv6) }

func FuzzEmail(f *testing.F) { fuzzScanner(f, "redactEmail", redactEmail, refEmail) }

// What a built-in writes is left as it is by every built-in (the e-mail
// mask is an address, replaced by itself), so scrubbing twice gives what
// scrubbing once gave, whatever the order of the built-ins.
func TestMasksStayMasks(t *testing.T) {
	t.Parallel()
	for _, mask := range []string{IPv4Mask, IPv6Mask, EmailMask} {
		in := []byte(" " + mask + " " + mask + ":" + mask + "/" + mask + `"` + mask)
		for _, f := range []func(dst, s []byte) ([]byte, int){redactIPv4, redactIPv6, redactEmail} {
			got, _ := scanned(f, in)
			assert.Equal(t, string(in), string(got))
		}
	}
}
