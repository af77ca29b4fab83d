package awstags

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxTagLen is the length, in characters, at which the Datadog Forwarder
// cuts a "key:value" tag built from an AWS tag.
const maxTagLen = 200

// NormalizeKey turns an AWS tag key into a Datadog tag key the way the
// Datadog Forwarder does (docs/wire-formats.md#datadog-tags-for-api-gateway):
// ':' becomes '_', lower case, characters other than letters, digits and
// "_-./:" become '_', runs of '_' collapse, leading '_' and digits go,
// trailing '_' go.
func NormalizeKey(k string) string { return sanitize(k, true) }

// NormalizeValue turns an AWS tag value into a Datadog tag value: as
// NormalizeKey, but ':' and leading digits and '_' are kept.
func NormalizeValue(v string) string { return sanitize(v, false) }

// NormalizeTag returns the Datadog tag for an AWS tag: "key:value", or the
// bare key when the value is empty, cut to 200 characters. It returns "" when
// nothing of the key survives (e.g. "123"): such a tag could not be queried.
func NormalizeTag(key, value string) string {
	k := NormalizeKey(key)
	if k == "" {
		return ""
	}
	v := NormalizeValue(value)
	t := k
	if v != "" {
		t = k + ":" + v
	}
	return TruncateTag(t)
}

// sanitize implements the Forwarder's sanitize_aws_tag_string. Already clean
// ASCII input is returned as is, without allocating.
func sanitize(s string, key bool) string {
	if s == "" || clean(s, key) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prevUnderscore := false
	for _, r := range s {
		if key && r == ':' {
			r = '_'
		}
		r = unicode.ToLower(r)
		if !tagRune(r) {
			r = '_'
		}
		if r == '_' {
			if prevUnderscore {
				continue
			}
			prevUnderscore = true
		} else {
			prevUnderscore = false
		}
		b.WriteRune(r)
	}
	out := b.String()
	// The Forwarder strips the leading run of '_' and (Unicode) digits only
	// when the first character is '_' or an ASCII digit.
	if key && out != "" && (out[0] == '_' || out[0] >= '0' && out[0] <= '9') {
		out = strings.TrimLeftFunc(out, func(r rune) bool { return r == '_' || unicode.IsDigit(r) })
	}
	return strings.TrimRight(out, "_")
}

// tagRune is Python's [\w:\-./] with re.UNICODE: letters, numbers, '_' and
// ":-./".
func tagRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return true
	case r == '_' || r == ':' || r == '-' || r == '.' || r == '/':
		return true
	case r < utf8.RuneSelf:
		return r >= 'A' && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// clean reports whether sanitize would return s unchanged.
func clean(s string, key bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '/':
		case c == ':':
			if key {
				return false
			}
		case c == '_':
			if i > 0 && s[i-1] == '_' {
				return false
			}
		default:
			return false
		}
	}
	if s[len(s)-1] == '_' {
		return false
	}
	return !key || !(s[0] == '_' || s[0] >= '0' && s[0] <= '9')
}

// TruncateTag cuts a Datadog tag to 200 characters (runes, never inside one),
// where Datadog cuts it: every tag gwpipe builds goes through it.
func TruncateTag(s string) string {
	if len(s) <= maxTagLen {
		return s
	}
	i := 0
	for pos := range s {
		if i == maxTagLen {
			return s[:pos]
		}
		i++
	}
	return s
}
