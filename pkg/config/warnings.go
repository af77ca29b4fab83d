package config

import "github.com/gwpipe/gwpipe/pkg/sources/cwpoller"

// Warnings are what the configuration asks for in a way that works but
// should change: a deprecated key, a setting a fleet would regret. The
// process logs them at start-up.
func (c Config) Warnings() []string {
	var w []string
	pc := c.Metrics.Poller
	url, warn := pc.StateLocation()
	if warn != "" {
		w = append(w, warn)
	}
	if c.Metrics.Enabled && len(pc.Accounts) > 0 && c.Transport.Kind != "memory" && !cwpoller.Shared(url) {
		w = append(w, "metrics.poller.state_url is a local file: every worker of the fleet that runs ingest polls every target, and fetches each period once per worker; set it to s3://bucket/prefix/ or nats-kv://bucket so that exactly one worker polls a target")
	}
	return w
}
