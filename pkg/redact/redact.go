// Package redact keeps secrets out of what gwpipe prints. Configuration
// URLs may carry credentials: a Datadog API key as a query parameter
// (datadog.logs_url …?dd-api-key=…), a password or token in the userinfo of
// a broker URL (nats://user:password@host, nats://token@host). Every URL
// gwpipe logs, shows in /status or quotes in an error goes through URL, and
// every log record through Handler, so no call site has to remember.
package redact

import (
	"context"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

var (
	// schemeRE starts a URL: scheme "://".
	schemeRE = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://`)
	// one query parameter: after '?', '&' or ';', up to the next separator,
	// quote or whitespace (error messages quote the URL they failed on).
	paramRE = regexp.MustCompile(`([?&;])([^=&;\s"'<>#?]+)=([^&;\s"'<>#]*)`)
)

// URL returns s with every secret a URL can carry replaced by Mask: the
// password of a userinfo (the user name alone when there is no password,
// since that is how NATS passes a token), and the value of every query
// parameter whose name says it holds a secret (SecretParam). s may be a
// URL or any text that quotes URLs, such as an error message; text without
// a secret is returned as it is.
func URL(s string) string {
	if !strings.Contains(s, "://") && !strings.ContainsAny(s, "?&;") {
		return s
	}
	s = userinfo(s)
	return paramRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := paramRE.FindStringSubmatch(m)
		if sub[3] == "" || sub[3] == Mask || !SecretParam(sub[2]) {
			return m
		}
		return sub[1] + sub[2] + "=" + Mask
	})
}

// userinfo masks the userinfo of every URL in s. A URL runs from its
// scheme to the first blank or quote, or to the next URL (a list of broker
// URLs is comma-separated); a URL in double quotes (an error quoting it)
// runs to the closing quote. Its userinfo is what precedes its last '@':
// user ":" password, where the password may hold any character, those a
// URL reserves included ('/', '?', '#', '@' left unencoded are common in
// generated passwords and AWS secret keys, and Go's URL parser would then
// see part of the password as a host, a port or a path); or a token alone
// (NATS), with no '/', '?' or '#'. A host and port followed by a path
// with an '@' in it reads as user and password, and is masked: the safe
// way to read it.
func userinfo(s string) string {
	locs := schemeRE.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for i, loc := range locs {
		start := loc[1]
		if start < last {
			continue
		}
		end := len(s)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		if loc[0] > 0 && s[loc[0]-1] == '"' {
			// Quoted (as %q quotes): the URL runs to the closing quote,
			// blanks included.
			if j := closingQuote(s[start:end]); j >= 0 {
				end = start + j
			}
		} else if j := strings.IndexAny(s[start:end], " \t\r\n\"'<>`"); j >= 0 {
			end = start + j
		}
		at := strings.LastIndexByte(s[start:end], '@')
		if at < 0 {
			continue
		}
		info := s[start : start+at]
		var masked string
		if user, _, ok := strings.Cut(info, ":"); ok {
			if strings.ContainsAny(user, "/?#") {
				continue
			}
			if info == user+":"+Mask && !awsAccessKeyRE.MatchString(user) {
				continue
			}
			masked = user + ":" + Mask
			if awsAccessKeyRE.MatchString(user) {
				masked = Mask + ":" + Mask // an AWS access key id and its secret
			}
		} else {
			if info == "" || info == Mask || strings.ContainsAny(info, "/?#") {
				continue
			}
			masked = Mask
		}
		b.WriteString(s[last:start])
		b.WriteString(masked)
		last = start + at
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// closingQuote is the index of the first '"' of s that no backslash
// escapes; -1 when there is none.
func closingQuote(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// secretWords are the parts of a parameter name that mark its value as a
// credential: dd-api-key, api_key, apikey, application_key, access_token,
// X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, client_secret,
// password, sig, …
var secretWords = []string{"key", "token", "secret", "passw", "pwd", "signature", "credential", "auth", "session"}

// SecretParam reports whether a query parameter of that name holds a
// secret. Names are compared case-insensitively after percent-decoding.
func SecretParam(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.ToLower(name)
	if name == "sig" || name == "pass" {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// Err returns err with the secrets of its message masked; errors.Is and
// errors.As still see the original error.
func Err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := URL(msg); r != msg {
		return &redacted{msg: r, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Handler wraps h so that the message and every string or error attribute
// of a record pass through URL before h sees them. Log lines are few
// (never one per event), so the scan costs nothing that matters.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(*handler); ok {
		return h // already redacting
	}
	return &handler{next: h}
}

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, URL(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = attr(a)
	}
	return &handler{next: h.next.WithAttrs(clean)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{next: h.next.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, URL(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.Any(a.Key, Err(x))
		case []string:
			clean := make([]string, len(x))
			for i, e := range x {
				clean[i] = URL(e)
			}
			return slog.Any(a.Key, clean)
		case interface{ String() string }:
			return slog.String(a.Key, URL(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

var (
	// awsAccessKeyRE is an AWS access key id: long-term (AKIA…),
	// temporary (ASIA…), a bearer token's (ABIA…) or a context-specific
	// credential's (ACCA…). The unique ids of users and roles (AIDA…,
	// AROA…: a request's caller) name a principal, not a credential: kept.
	awsAccessKeyRE = regexp.MustCompile(`\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b`)
	// awsSecretRE is a secret access key written next to its name.
	awsSecretRE = regexp.MustCompile(`(?i)(secret_?access_?key["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=]{40}`)
	// apiKeyPhraseRE is the API key in API Gateway's execution-log
	// phrases: "API Key: K", "API Key K authorized because…", "… for API
	// Key K". "API Key ID: I" names the key's id, not the key: kept.
	apiKeyPhraseRE = regexp.MustCompile(`\bAPI Key:? ([^\s"',]+)`)
	// secretFieldRE is a JSON field (an access log in JSON, also as the
	// escaped string of a CloudWatch envelope) whose name says it holds a
	// key or a secret; the value ends at the first quote or backslash.
	secretFieldRE = regexp.MustCompile(`(?i)(\\*"(?:[a-z0-9_.-]*\.)?(?:apikey|api_key|x-api-key|accesskey|access_key|secretaccesskey|secret|password|authorization)\\*"\s*:\s*\\*")[^"\\]*`)
)

// Text returns s with the credentials event content can carry masked:
// AWS access key ids and secret access keys, API Gateway API keys in its
// execution-log phrases, and JSON fields named for a key or a secret
// (apiKey, accessKey, password…). For text gwpipe shows an operator (a
// tap of live events), not for what it delivers.
func Text(s string) string {
	s = awsAccessKeyRE.ReplaceAllString(s, Mask)
	s = awsSecretRE.ReplaceAllString(s, "${1}"+Mask)
	s = apiKeyPhraseRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := apiKeyPhraseRE.FindStringSubmatch(m)
		switch sub[1] {
		case "ID:", "ID", "identifier", Mask:
			return m
		}
		return strings.TrimSuffix(m, sub[1]) + Mask
	})
	return secretFieldRE.ReplaceAllString(s, `${1}`+Mask)
}

// SecretAttr reports whether an attribute (a dotted key such as
// "apigateway.identity.apiKey") holds a credential: its last segment
// names an API key, an access key or a secret. An id of one (apiKeyId)
// does not.
func SecretAttr(key string) bool {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		key = key[i+1:]
	}
	switch strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(key)) {
	case "apikey", "xapikey", "accesskey", "secretaccesskey", "secret", "password", "authorization", "sessiontoken":
		return true
	}
	return false
}
