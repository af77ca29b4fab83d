package pipeline

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSecretsInURLsNeverShow runs the real binary with a Datadog API key
// in datadog.logs_url (whose intake is unreachable, so that delivery errors
// quoting the URL are logged) and a password in the NATS URL, and scans
// everything it prints — start-up log, retries, /status, /readyz, the
// summary at exit — for the secrets.
func TestSecretsInURLsNeverShow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gwpipe binary")
	}
	const (
		urlKey   = "urlkey0123456789abcdef"
		natsPass = "natspassword42"
	)
	intake := freeAddr(t) // nothing listens: every attempt fails and is logged
	fh, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(gwpipeBinary(t), "run")
	cmd.Env = append(os.Environ(),
		"DD_API_KEY="+intakeKey,
		"GWPIPE_DATADOG_LOGS_URL=http://"+intake+"/api/v2/logs?ddsource=gw&dd-api-key="+urlKey,
		"GWPIPE_DATADOG_API_URL=http://"+intake+"/?api_key="+urlKey,
		"GWPIPE_DATADOG_LOGS_RETRY_INITIAL=10ms",
		"GWPIPE_DATADOG_LOGS_RETRY_MAX=20ms",
		"GWPIPE_TRANSPORT_NATS_URL=nats://gwpipe:"+natsPass+"@127.0.0.1:1",
		"GWPIPE_SOURCES_FIREHOSE_LISTEN="+fh,
		"GWPIPE_SOURCES_FIREHOSE_ACCESS_KEYS="+firehoseKey,
		"GWPIPE_SOURCES_FIREHOSE_ACK_TIMEOUT=300ms",
		"GWPIPE_ADMIN_LISTEN="+admin,
		"GWPIPE_ENRICH_AWS_TAGS=false",
		"GWPIPE_DLQ_DIR="+t.TempDir(),
		"GWPIPE_PIPELINE_DRAIN_TIMEOUT=2s",
		"GWPIPE_LOG_LEVEL=debug",
	)
	// Everything it prints goes to a file, read while it runs and after.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	out := func() string {
		b, _ := os.ReadFile(outFile.Name())
		return string(b)
	}
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})

	get := func(path string) string {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, waitFor(ctx, func() bool { return get("/status") != "" }), "gwpipe did not come up:\n%s", out())

	// One request: its delivery fails against the unreachable intake.
	status, _ := firehoseRequest(t, "http://"+fh+"/", "s1", recordsBody("s1", gz(envelope("1"))), nil)
	assert.Equal(t, http.StatusServiceUnavailable, status, "not delivered within the ack timeout")
	require.NoError(t, waitFor(ctx, func() bool { return strings.Contains(out(), "request failed; retrying") }))
	shown := get("/status") + get("/readyz")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-done:
		done <- nil
	case <-ctx.Done():
		t.Fatal("gwpipe did not exit")
	}
	printed := out()
	for _, secret := range []string{urlKey, natsPass} {
		assert.NotContains(t, printed, secret, "the output holds a secret:\n%s", printed)
		assert.NotContains(t, shown, secret, "/status holds a secret:\n%s", shown)
	}
	assert.Contains(t, printed, "dd-api-key=REDACTED", "the URL is shown, its key masked")
	assert.Contains(t, printed, "gwpipe summary", "the run went to its end")
}

// TestTheSummaryDoesNotQuoteTheDeadLetterArchiveCredentials: the exit
// summary, /status and the replay summary name the dead-letter archive
// with the credentials of its URL masked.
func TestTheSummaryDoesNotQuoteTheDeadLetterArchiveCredentials(t *testing.T) {
	const (
		keyID  = "AKIAIOSFODNN7EXAMPLE"
		secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		url    = "s3://" + keyID + ":" + secret + "@letters/dlq/"
	)
	for _, s := range []string{keyID, "wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY"} {
		require.Contains(t, url, s)
	}
	assertMasked := func(t *testing.T, what, out string) {
		t.Helper()
		assert.Contains(t, out, "@letters/dlq/", "%s names the archive", what)
		for _, s := range []string{keyID, "wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY"} {
			assert.NotContains(t, out, s, "%s quotes the archive's credentials", what)
		}
	}

	t.Run("exit summary and status", func(t *testing.T) {
		cfg := unreachable(t, "http://127.0.0.1:1")
		cfg.Sources.SQS.QueueURLs = nil
		cfg.DLQ.URL = "s3://letters/dlq/"
		p, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.NoError(t, err)
		// Whatever validation lets through: the summary masks by itself.
		p.cfg.DLQ.URL = url
		var b strings.Builder
		p.Summary(&b)
		assertMasked(t, "the exit summary", b.String())
		assert.Contains(t, b.String(), "dead-lettered")
		assertMasked(t, "/status", p.Status().DeadLetterDir)
	})
	t.Run("replay summary", func(t *testing.T) {
		r := ReplayResult{DeadLetterDir: url, DeadLettered: 2, FailedAgainIn: ""}
		r.Source = url
		var b strings.Builder
		r.Write(&b)
		assertMasked(t, "the replay summary", b.String())
		assert.Contains(t, b.String(), "dead letters in")
		r.Ledger, r.FailedAgainIn = true, "s3://"+keyID+":"+secret+"@letters/dlq/replay-1/"
		b.Reset()
		r.Write(&b)
		assertMasked(t, "the replay summary of an archive", b.String())
		assert.Contains(t, b.String(), "now in")
	})
}
