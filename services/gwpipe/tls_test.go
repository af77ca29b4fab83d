package main

import (
	"crypto/tls"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/tlsreload/tlstest"
)

// TestSIGHUPReloadsTLSCertificates: `gwpipe run` serves the Firehose
// endpoint over TLS; after the files are replaced, SIGHUP reads them again
// (logged), the new certificate is served, and the process keeps running.
func TestSIGHUPReloadsTLSCertificates(t *testing.T) {
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{ddKey}})
	dir := t.TempDir()
	first, second := tlstest.New(t, 1).Write(t, dir), tlstest.New(t, 2)
	p := startGwpipe(t, base, "GWPIPE_SOURCES_FIREHOSE_TLS_CERT_FILE="+first.CertFile, "GWPIPE_SOURCES_FIREHOSE_TLS_KEY_FILE="+first.KeyFile)
	addr := strings.TrimSuffix(strings.TrimPrefix(p.firehose, "http://"), "/")
	served := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tlstest.Pool(first, second), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := served(); got != 1 {
		t.Fatalf("served serial %d, want 1", got)
	}
	second.Write(t, dir)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, `msg="TLS certificates read again"`, 30*time.Second)
	if got := served(); got != 2 {
		t.Fatalf("after SIGHUP served serial %d, want 2", got)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
