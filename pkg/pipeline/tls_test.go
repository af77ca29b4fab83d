package pipeline

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/tlsreload/tlstest"
)

// httpsClient trusts certs and opens a connection (a handshake) per
// request, so that each request sees the certificate served at that time.
func httpsClient(certs ...*tlstest.Cert) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: tlstest.Pool(certs...)},
	}}
}

// postFirehoseTLS sends one Firehose request and returns its status and the
// serial of the certificate that served it.
func postFirehoseTLS(t *testing.T, c *http.Client, url, reqID string, body []byte) (int, int64) {
	t.Helper()
	req, err := newFirehoseRequest(url, reqID, body)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

// TestFirehoseAndAdminOverTLSWithRotation: the Firehose endpoint and the
// admin listeners serve HTTPS (TLS 1.2+) from files; records sent over it
// are delivered; replacing the files is served on later connections
// without a restart, and ReloadTLS (SIGHUP) takes them at once.
func TestFirehoseAndAdminOverTLSWithRotation(t *testing.T) {
	dir, adminDir := t.TempDir(), t.TempDir()
	first := tlstest.New(t, 1).Write(t, dir)
	admin := tlstest.New(t, 10).Write(t, adminDir)
	h := start(t, func(c *config.Config) {
		c.Sources.Firehose.TLS.CertFile, c.Sources.Firehose.TLS.KeyFile = first.CertFile, first.KeyFile
		c.Admin.TLS.CertFile, c.Admin.TLS.KeyFile = admin.CertFile, admin.KeyFile
	})
	url := "https://" + h.p.FirehoseAddr() + "/"
	second, third := tlstest.New(t, 2), tlstest.New(t, 3)
	client := httpsClient(first, second, third)

	status, serial := postFirehoseTLS(t, client, url, "r1", recordsBody("r1", gz(envelope("e1"))))
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 1, serial)
	require.Len(t, h.intake.Logs(), 1, "acknowledged only once delivered")

	// Plain HTTP is not served.
	resp, err := http.Post("http://"+h.p.FirehoseAddr()+"/", "application/json", bytes.NewReader(recordsBody("r0")))
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode, "plain HTTP on the TLS endpoint")
	}

	// Rotation: the files are replaced; a later connection gets the new
	// certificate (files are looked at, at most once a second, on
	// handshakes).
	second.Write(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := 1
	require.NoError(t, waitFor(ctx, func() bool {
		n++
		id := fmt.Sprintf("rot-%d", n)
		status, serial := postFirehoseTLS(t, client, url, id, recordsBody(id, gz(envelope(id))))
		require.Equal(t, http.StatusOK, status)
		return serial == 2
	}), "the rotated certificate is never served")
	require.Len(t, h.intake.Logs(), n, "every request over TLS delivered")

	// ReloadTLS (SIGHUP) reads the files at once.
	third.Write(t, dir)
	require.NoError(t, h.p.ReloadTLS())
	_, serial = postFirehoseTLS(t, client, url, "r-last", recordsBody("r-last", gz(envelope("e-last"))))
	require.EqualValues(t, 3, serial)

	// The admin listener serves HTTPS with its own certificate.
	resp, err = httpsClient(admin).Get("https://" + h.p.AdminAddr() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 10, resp.TLS.PeerCertificates[0].SerialNumber.Int64())
	require.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))
}

// A certificate that cannot be read stops Start, naming its key.
func TestTLSCertificateMissingFailsWithItsKey(t *testing.T) {
	cfg := config.DefaultConfig()
	cfg.Datadog.APIKey = "k"
	cfg.Sources.Firehose.Listen = "127.0.0.1:0"
	cfg.Sources.Firehose.AccessKeys = []string{firehoseKey}
	cfg.Sources.Firehose.TLS.CertFile, cfg.Sources.Firehose.TLS.KeyFile = "/nonexistent/c.pem", "/nonexistent/k.pem"
	cfg.Admin.Listen = ""
	cfg.DLQ.Dir = t.TempDir()
	cfg.Enrich.AWSTags = false
	p, err := New(cfg, nil, nil)
	require.NoError(t, err, "New reads nothing")
	require.ErrorContains(t, p.Start(context.Background()), "sources.firehose.tls: cert_file")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))

	cfg.Sources.Firehose.TLS.KeyFile = ""
	require.ErrorContains(t, cfg.Validate(), "sources.firehose.tls.key_file: required with cert_file")
	cfg.Sources.Firehose.TLS.KeyFile = "k"
	cfg.Admin.TLS.KeyFile = "k"
	require.ErrorContains(t, cfg.Validate(), "admin.tls.cert_file: required with key_file")
}
