package filter

import "bytes"

// The built-in redactions are hand-written scanners: Go's regexp costs a
// few hundred nanoseconds per kilobyte even when nothing matches, and
// every log is scanned. Each scanner is exactly the regular expression
// beside it (ipv4Pattern, ipv6Pattern, emailPattern), checked by
// differential fuzzing (FuzzIPv4, FuzzIPv6, FuzzEmail); the expressions
// are the specification.

// Masks replace what the built-ins find. No built-in changes a mask (the
// e-mail mask is an address, replaced by itself): scrubbing twice gives
// what scrubbing once gave.
const (
	IPv4Mask  = "xxx.xxx.xxx.xxx" // the Datadog Forwarder's REDACT_IP mask
	IPv6Mask  = "xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx"
	EmailMask = "xxxxx@xxxxx.com" // the Datadog Forwarder's REDACT_EMAIL mask
)

// ipv4Pattern is the Datadog Forwarder's REDACT_IP expression, searched
// leftmost-first: four dot-separated groups of 1 to 3 digits anywhere,
// inside a longer number too ("1234.5.6.7" → "1xxx.xxx.xxx.xxx"). It
// finds every dotted IPv4 address, and version numbers with four parts.
const ipv4Pattern = `\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`

// emailPattern is the Datadog Forwarder's REDACT_EMAIL expression,
// searched leftmost-first.
const emailPattern = `[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+`

// ipv6Pattern is an IPv6 address in any text form of RFC 4291 §2.2 (the
// ABNF of RFC 3986 §3.2.2): eight groups, or fewer around one "::", the
// last 32 bits optionally as a dotted IPv4 address (::ffff:192.0.2.1,
// 64:ff9b::198.51.100.7). The bare "::" (the unspecified address) is left
// out, so that "a :: b" in a message stays.
//
// The address must not follow a letter, a digit or a dot (the first
// group): "std::string" and "Foo::bar" are not addresses, and
// "1.2.3.4::1" is left to the IPv4 scanner, which masks all of
// "1.2.3.4". Searched leftmost-longest (see ipv6Reference).
const ipv6Pattern = `(?:` +
	`(?:` + h16 + `:){6}` + ls32 +
	`|::(?:` + h16 + `:){5}` + ls32 +
	`|(?:` + h16 + `)?::(?:` + h16 + `:){4}` + ls32 +
	`|(?:(?:` + h16 + `:){0,1}` + h16 + `)?::(?:` + h16 + `:){3}` + ls32 +
	`|(?:(?:` + h16 + `:){0,2}` + h16 + `)?::(?:` + h16 + `:){2}` + ls32 +
	`|(?:(?:` + h16 + `:){0,3}` + h16 + `)?::` + h16 + `:` + ls32 +
	`|(?:(?:` + h16 + `:){0,4}` + h16 + `)?::` + ls32 +
	`|(?:(?:` + h16 + `:){0,5}` + h16 + `)?::` + h16 +
	`|(?:` + h16 + `:){0,6}` + h16 + `::` +
	`)`

const (
	h16      = `[0-9A-Fa-f]{1,4}`
	decOctet = `(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])`
	ipv4Addr = `(?:` + decOctet + `\.){3}` + decOctet
	ls32     = `(?:` + h16 + `:` + h16 + `|` + ipv4Addr + `)`
	// ipv6Before is the character an address may follow.
	ipv6Before = `[^0-9A-Za-z.]`
)

func isDigit(c byte) bool { return c-'0' < 10 }

func isHex(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 6 }

func isAlnum(c byte) bool { return c-'0' < 10 || (c|0x20)-'a' < 26 }

// redactIPv4 appends s to dst with every match of ipv4Pattern replaced by
// IPv4Mask, and returns how many there were. With none, dst is returned
// as it was: the caller keeps s.
func redactIPv4(dst, s []byte) ([]byte, int) {
	n, copied, low := 0, 0, 0
	for from := 0; from < len(s); {
		k := bytes.IndexByte(s[from:], '.')
		if k < 0 {
			break
		}
		dot := from + k
		from = dot + 1
		// Every match is the leftmost one starting within 3 digits before
		// its first dot; the matches of one dot all continue alike.
		start := dot
		for start > low && dot-start < 3 && isDigit(s[start-1]) {
			start--
		}
		if start == dot {
			continue
		}
		end := ipv4Rest(s, dot)
		if end < 0 {
			continue
		}
		dst = append(append(dst, s[copied:start]...), IPv4Mask...)
		n++
		copied, low, from = end, end, end
	}
	return rest(dst, s, copied, n)
}

// rest ends a scan that made n replacements: dst with what follows the
// last one; with none, dst as it was (the caller keeps s).
func rest(dst, s []byte, copied, n int) ([]byte, int) {
	if n == 0 {
		return dst, 0
	}
	return append(dst, s[copied:]...), n
}

// ipv4Rest matches the rest of ipv4Pattern after the first group, from
// the dot at s[dot]: ".d{1,3}.d{1,3}.d{1,3}" with the last group greedy.
// It returns the end of the match, or -1.
func ipv4Rest(s []byte, dot int) int {
	i := dot
	for range 2 {
		j := i + 1
		for j < len(s) && j-i <= 3 && isDigit(s[j]) {
			j++
		}
		if j == i+1 || j >= len(s) || s[j] != '.' {
			return -1
		}
		i = j
	}
	j := i + 1
	for j < len(s) && j-i <= 3 && isDigit(s[j]) {
		j++
	}
	if j == i+1 {
		return -1
	}
	return j
}

// isLocal, isLabel and isDomain are emailPattern's three classes.
func isLocal(c byte) bool  { return isAlnum(c) || c == '_' || c == '.' || c == '+' || c == '-' }
func isLabel(c byte) bool  { return isAlnum(c) || c == '-' }
func isDomain(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

// redactEmail appends s to dst with every match of emailPattern replaced
// by EmailMask (see redactIPv4).
func redactEmail(dst, s []byte) ([]byte, int) {
	n, copied := 0, 0
	for from := 0; from < len(s); {
		k := bytes.IndexByte(s[from:], '@')
		if k < 0 {
			break
		}
		at := from + k
		from = at + 1
		// The local part is the run of its class before the '@' (the
		// leftmost start), not reaching back into the last match.
		start := at
		for start > copied && isLocal(s[start-1]) {
			start--
		}
		if start == at {
			continue
		}
		j := at + 1
		for j < len(s) && isLabel(s[j]) {
			j++
		}
		if j == at+1 || j+1 >= len(s) || s[j] != '.' || !isDomain(s[j+1]) {
			continue
		}
		end := j + 2
		for end < len(s) && isDomain(s[end]) {
			end++
		}
		dst = append(append(dst, s[copied:start]...), EmailMask...)
		n++
		copied, from = end, end
	}
	return rest(dst, s, copied, n)
}

// isAddr is a character an IPv6 address (with its IPv4 tail) is made of.
func isAddr(c byte) bool { return isHex(c) || c == ':' || c == '.' }

// redactIPv6 appends s to dst with every IPv6 address (ipv6Pattern, after
// ipv6Before, leftmost-longest) replaced by IPv6Mask (see redactIPv4).
//
// Every address holds a ':' and lies within one run of address
// characters, so the scan jumps from colon to colon (IndexByte) and tries
// the starts of that colon's run in order.
func redactIPv6(dst, s []byte) ([]byte, int) {
	n, copied := 0, 0
	for from := 0; from < len(s); {
		k := bytes.IndexByte(s[from:], ':')
		if k < 0 {
			break
		}
		c := from + k
		rs := c
		for rs > copied && isAddr(s[rs-1]) {
			rs--
		}
		re := c + 1
		for re < len(s) && isAddr(s[re]) {
			re++
		}
		for i := rs; i < re; i++ {
			if s[i] == '.' || (i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.')) {
				continue
			}
			l := ipv6Longest(s[i:re])
			if l == 0 {
				continue
			}
			dst = append(append(dst, s[copied:i]...), IPv6Mask...)
			n++
			copied = i + l
			i = copied - 1
		}
		from = re
	}
	return rest(dst, s, copied, n)
}

// ipv6Longest is the length of the longest IPv6 address (ipv6Pattern)
// at the start of s, 0 when there is none. Groups are counted with an
// IPv4 tail as two: eight without "::", at most seven with it.
func ipv6Longest(s []byte) int {
	best, groups, i := 0, 0, 0
	compressed := false
	if len(s) > 0 && s[0] == ':' {
		if len(s) < 2 || s[1] != ':' {
			return 0
		}
		compressed, i = true, 2 // the bare "::" alone is not taken
	}
	fits := func(g int) bool {
		if compressed {
			return g <= 7 // "::" stands for one group at least
		}
		return g == 8
	}
	for {
		if l := ipv4Len(s[i:]); l > 0 && fits(groups+2) {
			best = max(best, i+l) // an IPv4 tail ends the address
		}
		h := 0
		for i+h < len(s) && h <= 4 && isHex(s[i+h]) {
			h++
		}
		if h == 0 {
			return best
		}
		groups++
		end := i + min(h, 4)
		if fits(groups) {
			best = max(best, end)
		}
		if h > 4 || end >= len(s) || s[end] != ':' || groups >= 8 {
			return best
		}
		if end+1 < len(s) && s[end+1] == ':' {
			if compressed {
				return best
			}
			compressed = true
			i = end + 2
			best = max(best, i) // "1::"; at most 7 groups here
			continue
		}
		i = end + 1
	}
}

// ipv4Len is the length of the dotted IPv4 address (ipv4Addr: decimal
// octets 0-255 without leading zeros) at the start of s, the last octet
// as long as it can be; 0 when there is none.
func ipv4Len(s []byte) int {
	i := 0
	for o := range 4 {
		j := i
		for j < len(s) && j-i < 4 && isDigit(s[j]) {
			j++
		}
		run := j - i
		if o < 3 {
			if !octet(s[i:j]) || j >= len(s) || s[j] != '.' {
				return 0
			}
			i = j + 1
			continue
		}
		// The last octet is the longest valid prefix of its digits.
		for l := min(run, 3); l > 0; l-- {
			if octet(s[i : i+l]) {
				return i + l
			}
		}
		return 0
	}
	return 0
}

// octet reports whether d is a decimal octet: 0-255 without a leading zero.
func octet(d []byte) bool {
	switch len(d) {
	case 1:
		return true
	case 2:
		return d[0] != '0'
	case 3:
		return d[0] == '1' || (d[0] == '2' && (d[1] < '5' || (d[1] == '5' && d[2] <= '5')))
	}
	return false
}
