package tlsreload

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/tlsreload/tlstest"
)

// serve accepts TLS connections with cfg until the test ends; each
// handshake completes and the connection is closed.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// servedSerial connects and returns the serial of the certificate served.
func servedSerial(t *testing.T, addr string, trust ...*tlstest.Cert) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tlstest.Pool(trust...), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// serveFiles serves a certificate (serial 1) written to a directory,
// looking at the files every interval.
func serveFiles(t *testing.T, interval time.Duration) (string, *tlstest.Cert, *Certs, string) {
	t.Helper()
	dir := t.TempDir()
	first := tlstest.New(t, 1).Write(t, dir)
	certs, err := New(Config{CertFile: first.CertFile, KeyFile: first.KeyFile}, nil, WithCheckInterval(interval))
	if err != nil {
		t.Fatal(err)
	}
	return dir, first, certs, serve(t, certs.ServerConfig())
}

func TestRotationIsServed(t *testing.T) {
	dir, first, certs, addr := serveFiles(t, 0)
	second := tlstest.New(t, 2)
	if got := servedSerial(t, addr, first, second); got != 1 {
		t.Fatalf("served serial %d, want 1", got)
	}
	second.Write(t, dir)
	if got := servedSerial(t, addr, first, second); got != 2 {
		t.Fatalf("after rotation served serial %d, want 2", got)
	}
	if certs.Loads() != 2 || certs.Failures() != 0 {
		t.Fatalf("loads %d failures %d", certs.Loads(), certs.Failures())
	}
	// Unchanged files are not read again.
	servedSerial(t, addr, first, second)
	if certs.Loads() != 2 {
		t.Fatalf("unchanged files read again: %d loads", certs.Loads())
	}
}

// A rotation that leaves an unusable pair (the key of another
// certificate, a file half written) keeps the certificate served.
func TestBadRotationKeepsTheServedCertificate(t *testing.T) {
	dir, first, certs, addr := serveFiles(t, 0)
	other := tlstest.New(t, 3)
	if err := os.WriteFile(first.KeyFile, other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, first); got != 1 {
		t.Fatalf("served serial %d after a bad rotation, want 1", got)
	}
	if certs.Failures() != 1 {
		t.Fatalf("failures %d, want 1", certs.Failures())
	}
	if err := certs.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("Reload of a mismatched pair: %v", err)
	}
	// The rotation completes: the next handshake takes it.
	fourth := tlstest.New(t, 4).Write(t, dir)
	if got := servedSerial(t, addr, fourth); got != 4 {
		t.Fatalf("served serial %d once the pair is whole, want 4", got)
	}
}

// Reload reads the files at once, whatever the check interval (SIGHUP).
func TestReloadTakesTheNewCertificateAtOnce(t *testing.T) {
	dir, first, certs, addr := serveFiles(t, 1<<62)
	second := tlstest.New(t, 2)
	servedSerial(t, addr, first) // the first look: the next is far away
	second.Write(t, dir)
	if got := servedSerial(t, addr, first, second); got != 1 {
		t.Fatalf("files looked at before the interval: serial %d", got)
	}
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, first, second); got != 2 {
		t.Fatalf("after Reload served serial %d, want 2", got)
	}
}

func TestOldProtocolsRefused(t *testing.T) {
	dir := t.TempDir()
	c := tlstest.New(t, 1).Write(t, dir)
	certs, err := New(Config{CertFile: c.CertFile, KeyFile: c.KeyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, certs.ServerConfig())
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tlstest.Pool(c), MaxVersion: tls.VersionTLS11, ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 client was served")
	}
	if got := servedSerial(t, addr, c); got != 1 {
		t.Fatalf("TLS 1.2+ client got serial %d", got)
	}
}

func TestConfigValidateAndMissingFiles(t *testing.T) {
	if err := (Config{}).Validate(); err != nil || (Config{}).Enabled() {
		t.Fatalf("empty config: %v", err)
	}
	err := (Config{KeyFile: "k"}).Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "cert_file: ") {
		t.Fatalf("key without cert: %v", err)
	}
	err = (Config{CertFile: "c"}).Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "key_file: ") {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := New(Config{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}, nil); err == nil || !strings.Contains(err.Error(), "cert_file") {
		t.Fatalf("missing files: %v", err)
	}
}
