// Package check holds the rules several components' Validate share (host
// and port, URLs), so that one kind of value is judged the same way under
// every key. It imports nothing of gwpipe but redact (which masks the
// credentials of the URLs its messages quote): components use it without
// depending on the top-level configuration.
package check

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/redact"
)

// Listen checks an address to listen on: host:port (the host may be empty:
// every interface), the port 0 (any free port) to 65535.
func Listen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	return Port(port, 0)
}

// Dial checks an address to connect to: host:port with a host and a port
// from 1 to 65535.
func Dial(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	return Port(port, 1)
}

// Port checks a port number: from min to 65535.
func Port(port string, min int) error {
	if n, err := strconv.Atoi(port); err != nil || n < min || n > 65535 {
		return fmt.Errorf("port %q must be a number from %d to 65535", port, min)
	}
	return nil
}

// URL checks a URL with one of the given schemes, a host, and a port in
// range when it names one. Its messages quote the URL with its credentials
// masked (redact.URL), and never a piece of them: Go's parser, given a
// password with an unencoded '/' or '#', quotes its start as a port.
func URL(raw string, schemes ...string) error {
	shown := Shown(raw)
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if shown != raw || !errors.As(err, &ue) {
			if _, merr := url.Parse(shown); merr == nil || !errors.As(merr, &ue) {
				return fmt.Errorf("is not a URL: %q: its user name or password holds characters to percent-encode (%%2F for /, %%40 for @, %%23 for #, %%3F for ?, %%25 for %%, %%20 for a blank)", shown)
			}
		}
		return fmt.Errorf("is not a URL: %q: %v", shown, ue.Err)
	}
	ok := false
	for _, s := range schemes {
		ok = ok || strings.EqualFold(u.Scheme, s)
	}
	if !ok || u.Hostname() == "" {
		return fmt.Errorf("must be a %s URL with a host, got %q", strings.Join(schemes, " or "), shown)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if err := Port(p, 1); err != nil {
			return err
		}
	}
	return nil
}

// Shown is a URL of the configuration as a message may quote it: its
// credentials masked (redact.URL, reading the value as one quoted URL, so
// that a blank in a password does not end it), and, when it has no scheme
// (so that redact.URL cannot tell its userinfo), everything up to its last
// '@'.
func Shown(raw string) string {
	shown := strings.TrimSuffix(strings.TrimPrefix(redact.URL(`"`+raw+`"`), `"`), `"`)
	if !strings.Contains(raw, "://") {
		if at := strings.LastIndexByte(shown, '@'); at >= 0 {
			shown = redact.Mask + shown[at:]
		}
	}
	return shown
}

// HostName reports whether s is a DNS host name: dot-separated labels of
// letters, digits and inner hyphens, 1 to 63 bytes each, 253 in all.
func HostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
