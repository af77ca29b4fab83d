package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"https://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=abc123",
			"https://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=REDACTED"},
		{"https://h/p?ddsource=x&api_key=abc&service=y", "https://h/p?ddsource=x&api_key=REDACTED&service=y"},
		{"https://h/p?DD-API-KEY=abc", "https://h/p?DD-API-KEY=REDACTED"},
		{"https://h/p?dd%2Dapi%2Dkey=abc", "https://h/p?dd%2Dapi%2Dkey=REDACTED"},
		{"https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00&X-Amz-Expires=60",
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=60"},
		{"nats://gwpipe:s3cret@nats:4222", "nats://gwpipe:REDACTED@nats:4222"},
		{"nats://t0ken@nats:4222", "nats://REDACTED@nats:4222"},
		{"nats://a:1@n1:4222,nats://b:2@n2:4222", "nats://a:REDACTED@n1:4222,nats://b:REDACTED@n2:4222"},
		{`Post "http://127.0.0.1:9/api/v2/logs?dd-api-key=abc": dial tcp 127.0.0.1:9: connect: connection refused`,
			`Post "http://127.0.0.1:9/api/v2/logs?dd-api-key=REDACTED": dial tcp 127.0.0.1:9: connect: connection refused`},
		// A password with characters a URL reserves, left unencoded: all
		// of it is masked, not what Go's parser would take for userinfo.
		{"nats://gwpipe:pa/ss@nats:4222", "nats://gwpipe:REDACTED@nats:4222"},
		{"nats://gwpipe:p@ss#w?rd@nats:4222", "nats://gwpipe:REDACTED@nats:4222"},
		{`parse "nats://u:a/b c@h": invalid`, `parse "nats://u:REDACTED@h": invalid`},
		{"s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bucket/prefix/", "s3://REDACTED:REDACTED@bucket/prefix/"},
		{"nats://a:1/2@n1:4222, nats://b:3#4@n2:4222", "nats://a:REDACTED@n1:4222, nats://b:REDACTED@n2:4222"},
		// A host and port then an '@' in the path reads as a password
		// that starts with digits and holds a '/': masked, the safe way.
		{"https://h:8443/p/user@domain", "https://h:REDACTED@domain"},
		// Nothing secret: unchanged.
		{"https://h/p?email=a@b.com", "https://h/p?email=a@b.com"},
		{"s3://bucket/pre@fix/", "s3://bucket/pre@fix/"},
		{"https://api.datadoghq.com", "https://api.datadoghq.com"},
		{"https://h/p?ddsource=apigateway&service=x", "https://h/p?ddsource=apigateway&service=x"},
		{"s3://bucket/prefix/", "s3://bucket/prefix/"},
		{"mailto:someone@example.com", "mailto:someone@example.com"},
		{"https://h/p?api_key=", "https://h/p?api_key="},
		{"plain text with a key=value", "plain text with a key=value"},
		{"https://h/users/@me", "https://h/users/@me"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, URL(c.in), c.in)
		assert.Equal(t, c.want, URL(URL(c.in)), "idempotent: %s", c.in)
	}
}

func TestErrKeepsTheChain(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	err := fmt.Errorf(`Post "https://h/p?dd-api-key=abc": %w`, base)
	r := Err(err)
	assert.NotContains(t, r.Error(), "abc")
	assert.ErrorIs(t, r, base)
	assert.Same(t, base, Err(base), "an error without a secret is returned as it is")
	assert.NoError(t, Err(nil))
}

func TestHandlerRedactsEveryStringAttribute(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil)))
	log = slog.New(Handler(log.Handler())) // wrapping twice wraps once
	_, double := log.Handler().(*handler).next.(*handler)
	assert.False(t, double)
	log.With("nats", "nats://u:pw1@h:4222").WithGroup("g").Info("sending to https://h/p?api_key=pw2",
		"logs_url", "https://h/p?dd-api-key=pw3",
		"error", errors.New(`Post "https://h/p?dd-api-key=pw4": refused`),
		"urls", []string{"https://h/q?token=pw5"},
		slog.Group("sub", "u", "https://u:pw6@h/"),
		"n", 3)
	out := buf.String()
	for _, s := range []string{"pw1", "pw2", "pw3", "pw4", "pw5", "pw6"} {
		assert.NotContains(t, out, s)
	}
	assert.Contains(t, out, "REDACTED")
	assert.Contains(t, out, "g.n=3")
}

// FuzzURL: a secret put where URLs carry secrets never survives, whatever
// surrounds it, and redacting is idempotent.
func FuzzURL(f *testing.F) {
	f.Add("http-intake.logs.datadoghq.com", "/api/v2/logs", "dd-api-key", "0123456789abcdef", "ddsource", "apigateway", "user")
	f.Add("nats", "", "token", "t0k3n-value", "x", "", "gwpipe")
	f.Add("h:8080", "/a b/c", "X-Amz-Signature", "aaaaaaaaaaaaaaaa", "q", "a&b", "")
	f.Fuzz(func(t *testing.T, host, path, name, secret, otherName, otherValue, user string) {
		if len(secret) < 8 || !SecretParam(name) || SecretParam(otherName) || otherName == "" {
			return
		}
		u := url.URL{Scheme: "https", Host: "h", Path: path}
		if url.PathEscape(host) == host && host != "" && !strings.ContainsAny(host, "@/?#") {
			u.Host = host
		}
		q := url.Values{}
		q.Set(otherName, otherValue)
		q.Set(name, secret)
		u.RawQuery = q.Encode()
		if user != "" {
			u.User = url.UserPassword(user, secret)
		}
		s := u.String()
		if strings.Contains(u.Host+u.EscapedPath()+url.QueryEscape(otherName)+url.QueryEscape(otherValue)+url.User(user).String(), url.QueryEscape(secret)) {
			return // the secret is also a non-secret part of the URL
		}
		got := URL(s)
		require.NotContains(t, got, url.QueryEscape(secret), "from %s", s)
		require.Equal(t, got, URL(got), "idempotent")
		require.Contains(t, got, url.QueryEscape(otherName)+"=", "other parameters stay")
	})
}

// FuzzURLHidesPasswords: a password in a URL's userinfo never survives,
// whatever characters it holds unencoded (reserved ones included) and
// whatever text surrounds the URL.
func FuzzURLHidesPasswords(f *testing.F) {
	f.Add("nats", "gwpipe", "s3cret/with/slashes", "nats:4222", "parse \"", "\": invalid port")
	f.Add("s3", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "bucket/prefix/", "", "")
	f.Add("https", "u", "p@ss#w?rd:x", "h:8443/p?q=1", "error: ", " refused")
	f.Fuzz(func(t *testing.T, scheme, user, password, rest, before, after string) {
		if len(password) < 8 || user == "" || strings.ContainsAny(user, ":/?#@ \t\r\n\"'<>`") ||
			strings.ContainsAny(password, " \t\r\n\"'<>`") || strings.Contains(user+":"+password, "://") ||
			strings.ContainsAny(rest, "@ \t\r\n\"'<>`") || strings.Contains(rest, "://") ||
			!schemeRE.MatchString(scheme+"://") || schemeRE.FindString(scheme+"://") != scheme+"://" ||
			strings.Contains(before, "://") {
			return
		}
		if strings.Contains(before+scheme+"://"+user+":@"+rest+after, password) {
			return // the password is also written elsewhere
		}
		if strings.ContainsAny(after, "@") && !strings.ContainsAny(after[:strings.IndexByte(after, '@')], " \t\r\n\"'<>`") {
			return // the URL's text runs on to another '@'
		}
		s := before + scheme + "://" + user + ":" + password + "@" + rest + after
		got := URL(s)
		require.NotContains(t, got, password, "from %s", s)
		require.Equal(t, got, URL(got), "idempotent")
	})
}

// TestText: credentials in event content are masked, the text around them
// and ids that only name a key are kept.
func TestText(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"API Key: 1a2b3c4d5e", "API Key: REDACTED"},
		{"API Key 1a2b3c4d5e authorized because method 'GET /pets' does not require API Key. Request will not contribute to throttle or quota limits",
			"API Key REDACTED authorized because method 'GET /pets' does not require API Key. Request will not contribute to throttle or quota limits"},
		{"Verifying Usage Plan for request: r-1. API Key: k3y API Stage: a1/prod", "Verifying Usage Plan for request: r-1. API Key: REDACTED API Stage: a1/prod"},
		{"Usage Plan check succeeded for API Key k3y and API Stage a1/prod", "Usage Plan check succeeded for API Key REDACTED and API Stage a1/prod"},
		{"API Key ID: abc123", "API Key ID: abc123"},
		{"Invalid API Key identifier specified", "Invalid API Key identifier specified"},
		{`user AKIAIOSFODNN7EXAMPLE called`, `user REDACTED called`},
		{`{"accessKey":"ASIAY34FZKBOKMUTVV7A","apiKey":"k3y","apiKeyId":"id1","ip":"1.2.3.4"}`,
			`{"accessKey":"REDACTED","apiKey":"REDACTED","apiKeyId":"id1","ip":"1.2.3.4"}`},
		{`{"identity.apiKey": "ab"}`, `{"identity.apiKey": "REDACTED"}`},
		{`{"message":"{\"apiKey\":\"k3y\",\"ip\":\"1.2.3.4\"}"}`, `{"message":"{\"apiKey\":\"REDACTED\",\"ip\":\"1.2.3.4\"}"}`},
		{`aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`, `aws_secret_access_key=REDACTED`},
		{"GET /pets 200 1.2.3.4", "GET /pets 200 1.2.3.4"},
		{`"caller":"AIDARE6G1FLYANYT0E839","role":"AROA3XFRBF535PLBIFPI4"`, `"caller":"AIDARE6G1FLYANYT0E839","role":"AROA3XFRBF535PLBIFPI4"`},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Text(c.in), c.in)
		assert.Equal(t, c.want, Text(c.want), "masking twice changes nothing: %s", c.want)
	}
}

func TestSecretAttr(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{
		"apigateway.identity.apiKey": true, "apigateway.identity.accessKey": true, "api_key": true,
		"apigateway.identity.apiKeyId": false, "http.method": false, "apigateway.identity.userAgent": false,
	} {
		assert.Equal(t, want, SecretAttr(key), key)
	}
}

// FuzzTextHidesCredentials: whatever surrounds them, an AWS access key id,
// an API key in an execution-log phrase and an apiKey JSON field's value
// never survive Text.
func FuzzTextHidesCredentials(f *testing.F) {
	f.Add("prefix ", " suffix", uint64(1))
	f.Add(`{"a":"`, `"}`, uint64(42))
	f.Add("(req-1) ", "", uint64(1<<63))
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	f.Fuzz(func(t *testing.T, before, after string, seed uint64) {
		secret := make([]byte, 20)
		for i := range secret {
			secret[i] = alnum[seed%uint64(len(alnum))]
			seed = seed*6364136223846793005 + 1442695040888963407
		}
		key := string(secret)
		if strings.Contains(before+after, key[:8]) {
			t.Skip()
		}
		for _, s := range []string{
			before + " AKIA" + key[:16] + " " + after,
			before + " API Key: " + key + " " + after,
			before + " API Key " + key + " authorized because " + after,
			before + `{"apiKey":"` + key + `"}` + after,
		} {
			if got := Text(s); strings.Contains(got, key[:16]) {
				t.Fatalf("Text(%q) = %q: the secret is still there", s, got)
			}
		}
	})
}
