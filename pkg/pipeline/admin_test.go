package pipeline

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
)

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminListeners: pprof is served only when admin.pprof asks for it;
// the probe listener serves /healthz, /readyz and /metrics and nothing else.
func TestAdminListeners(t *testing.T) {
	for _, pprofOn := range []bool{false, true} {
		h := start(t, func(c *config.Config) {
			c.Admin.HealthListen = "127.0.0.1:0"
			c.Admin.Pprof = pprofOn
		})
		admin, health := "http://"+h.p.AdminAddr(), "http://"+h.p.HealthAddr()
		require.NotEqual(t, "http://", health)

		for _, path := range []string{"/healthz", "/readyz", "/status", "/metrics"} {
			assert.Equal(t, http.StatusOK, httpStatus(t, admin+path), "admin %s", path)
		}
		want := http.StatusNotFound
		if pprofOn {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
			assert.Equal(t, want, httpStatus(t, admin+path), "pprof %v: admin %s", pprofOn, path)
		}

		assert.Equal(t, http.StatusOK, httpStatus(t, health+"/healthz"))
		assert.Equal(t, http.StatusOK, httpStatus(t, health+"/readyz"))
		assert.Equal(t, http.StatusOK, httpStatus(t, health+"/metrics"))
		for _, path := range []string{"/status", "/debug/pprof/", "/debug/pprof/heap", "/"} {
			assert.Equal(t, http.StatusNotFound, httpStatus(t, health+path), "the probe listener serves health and metrics only: %s", path)
		}
	}
}

func TestAdminConfigValidation(t *testing.T) {
	base := config.DefaultConfig()
	base.Datadog.APIKey = "k"
	base.Sources.Firehose.AccessKeys = []string{"k"}
	c := base
	c.Admin.HealthListen = c.Admin.Listen
	assert.ErrorContains(t, c.Validate(), "admin.health_listen")
	c = base
	c.Admin.HealthListen = "nonsense"
	assert.ErrorContains(t, c.Validate(), "admin.health_listen")
	c = base
	c.Admin.Listen, c.Admin.Pprof = "", true
	assert.ErrorContains(t, c.Validate(), "admin.pprof")
	assert.False(t, config.DefaultConfig().Admin.Pprof, "off unless asked for")
	assert.Empty(t, config.DefaultConfig().Admin.HealthListen)
}
