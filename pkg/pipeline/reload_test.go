package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/tlsreload/tlstest"
)

// TestReloadUnderLoad: reloads while Firehose traffic flows refuse no
// request and lose no event; the new static tags are on every log sent
// after the reload, and every log carries one set or the other; a change of
// a key read at start is reported and not applied (the endpoint keeps its
// address); an invalid configuration is rejected with its full keys and
// changes nothing. Both are counted and the last is shown in /status.
func TestReloadUnderLoad(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Enrich.Tags = []string{"reload:old"} })
	const events = 20_000
	load := loadgen.Start(context.Background(), loadConfig(h, events, 7))
	<-load.Flowing // traffic goes through

	ctx := context.Background()
	next := h.p.RunningConfig()
	next.Enrich.Tags = []string{"reload:new", "team:payments"}
	next.Sources.Firehose.Listen = "127.0.0.1:1"
	rep, err := h.p.Reload(ctx, next)
	require.NoError(t, err)
	assert.Equal(t, ReloadApplied, rep.Result)
	assert.Equal(t, []string{"enrich.tags"}, rep.Applied)
	assert.Equal(t, []string{"sources.firehose.listen"}, rep.NeedsRestart)
	assert.Equal(t, []string{"reload:new", "team:payments"}, h.p.RunningConfig().Enrich.Tags)
	assert.NotEqual(t, "127.0.0.1:1", h.p.RunningConfig().Sources.Firehose.Listen, "a restart-only key keeps its value")

	bad := h.p.RunningConfig()
	bad.Enrich.Tags = []string{"reload:bad"}
	bad.Datadog.Logs.MaxBatchLogs = 0
	bad.Parse.Formats = []apigw.FormatRule{{LogGroup: "x", Format: "no variables"}}
	rep, err = h.p.Reload(ctx, bad)
	require.Error(t, err)
	assert.Equal(t, ReloadRejected, rep.Result)
	for _, want := range []string{"datadog.logs.max_batch_logs", "parse.formats[0].format"} {
		assert.Contains(t, err.Error(), want)
		assert.Contains(t, rep.Error, want)
	}
	assert.Equal(t, []string{"reload:new", "team:payments"}, h.p.RunningConfig().Enrich.Tags, "the running configuration stays")

	lr, err := load.Wait()
	require.NoError(t, err)
	assert.EqualValues(t, events, lr.EventsAcked)
	assert.Zero(t, lr.Retries, "no request refused: %v", lr.Statuses)

	// Traffic after the reload: every log has the new tags.
	rep2, err := loadgen.Run(ctx, func() loadgen.Config { c := loadConfig(h, 2_000, 7); c.Instance = 1; return c }())
	require.NoError(t, err)
	assert.EqualValues(t, 2_000, rep2.EventsAcked)
	assert.Zero(t, rep2.Retries)

	logs := h.intake.Logs()
	require.Len(t, logs, events+2_000, "no event lost, none twice")
	seen := map[string]bool{}
	var old, cur int
	for _, l := range logs {
		id := logID(l)
		require.False(t, seen[id], "log %s delivered twice", id)
		seen[id] = true
		hasOld, hasNew := slices.Contains(l.Tags, "reload:old"), slices.Contains(l.Tags, "reload:new")
		require.NotContains(t, l.Tags, "reload:bad")
		require.True(t, hasOld != hasNew, "one set of static tags: %v", l.Tags)
		if hasNew {
			require.Contains(t, l.Tags, "team:payments")
			cur++
		} else {
			old++
		}
	}
	assert.GreaterOrEqual(t, cur, 2_000, "every log sent after the reload has the new tags")
	t.Logf("%d logs with the old tags, %d with the new", old, cur)

	st := h.p.Status()
	assert.EqualValues(t, 1, h.p.Metrics().Value("config.reloads", "ok"))
	assert.EqualValues(t, 1, h.p.Metrics().Value("config.reloads", "rejected"))
	require.NotNil(t, st.LastReload)
	assert.Equal(t, ReloadRejected, st.LastReload.Result)
	assert.WithinDuration(t, time.Now(), st.LastReload.At, time.Minute)
}

// TestReloadAppliesEveryReloadableKey: each reloadable key reaches the
// component that uses it; a reload that changes nothing says so.
func TestReloadAppliesEveryReloadableKey(t *testing.T) {
	h := start(t)
	var level slog.LevelVar
	h.p.SetLogLevel(&level)
	ctx := context.Background()
	rep, err := h.p.Reload(ctx, h.p.RunningConfig())
	require.NoError(t, err)
	assert.Equal(t, ReloadUnchanged, rep.Result)
	assert.Empty(t, rep.Applied)

	next := h.p.RunningConfig()
	next.Log.Level = "debug"
	next.Parse.Formats = []apigw.FormatRule{{LogGroup: "custom-*", Format: `{"a":"$context.requestId","b":"$context.status"}`}}
	next.Parse.OtherSource = "aws"
	next.Enrich.Mappings = []awstags.Mapping{{LogGroup: "custom-*", APIID: "m1m2m3m4m5", Stage: "live"}}
	next.Metrics.TagAllowlist = []string{"team"}
	next.Datadog.Service = "shop"
	next.Filters.Redact = []string{"email"}
	rep, err = h.p.Reload(ctx, next)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"log.level", "parse.formats", "parse.other_source", "enrich.mappings", "metrics.tag_allowlist", "datadog.service", "filters.redact"}, rep.Applied)
	assert.Empty(t, rep.NeedsRestart)
	assert.Empty(t, rep.Notes)
	assert.NotNil(t, h.p.parser.FormatFor("custom-1"), "parse.formats")
	assert.Equal(t, slog.LevelDebug, level.Level(), "log.level")
	assert.Equal(t, "shop", h.p.RunningConfig().Datadog.Service)

	// The new filters scrub what is delivered next.
	env := envelopeOf(`{\"requestId\":\"%s\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":200,\"caller\":\"jane.doe+api@example.co.uk\"}`, "r1", "r2")
	status, resp := firehoseRequest(t, h.url, "after-reload", gz(recordsBody("after-reload", env)), map[string]string{"Content-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, status, "%v", resp)
	logs := h.intake.Logs()
	require.Len(t, logs, 2, "%+v", h.p.Status().Stages)
	for _, l := range logs {
		for _, s := range logStrings(t, l) {
			assert.NotContains(t, s, "@example", "filters.redact reloaded: no address left")
		}
	}
}

// TestReloadReadsTheCertificatesAgain: every reload request reads the TLS
// certificates again, at once, whether the configuration is applied or
// rejected; one that cannot be read is reported and the previous one is
// still served.
func TestReloadReadsTheCertificatesAgain(t *testing.T) {
	dir := t.TempDir()
	first := tlstest.New(t, 1).Write(t, dir)
	h := start(t, func(c *config.Config) {
		c.Sources.Firehose.TLS.CertFile, c.Sources.Firehose.TLS.KeyFile = first.CertFile, first.KeyFile
	})
	url := "https://" + h.p.FirehoseAddr() + "/"
	second, third := tlstest.New(t, 2), tlstest.New(t, 3)
	client := httpsClient(first, second, third)
	send := func(id string) int64 {
		status, serial := postFirehoseTLS(t, client, url, id, recordsBody(id, gz(envelope(id))))
		require.Equal(t, http.StatusOK, status)
		return serial
	}
	require.EqualValues(t, 1, send("r1"))

	second.Write(t, dir)
	rep, err := h.p.Reload(context.Background(), h.p.RunningConfig())
	require.NoError(t, err)
	assert.Equal(t, ReloadUnchanged, rep.Result)
	assert.Empty(t, rep.Notes)
	require.EqualValues(t, 2, send("r2"), "a reload reads the certificate at once")

	third.Write(t, dir)
	rep = h.p.RejectReload(errors.New("the file does not parse"))
	assert.Equal(t, ReloadRejected, rep.Result)
	require.EqualValues(t, 3, send("r3"), "even when the configuration is rejected")

	require.NoError(t, os.WriteFile(first.CertFile, []byte("not a certificate"), 0o600))
	rep, err = h.p.Reload(context.Background(), h.p.RunningConfig())
	require.NoError(t, err)
	require.Len(t, rep.Notes, 1)
	assert.Contains(t, rep.Notes[0], "sources.firehose.tls")
	require.EqualValues(t, 3, send("r4"), "the previous certificate is still served")
}
