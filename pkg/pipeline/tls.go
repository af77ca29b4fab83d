package pipeline

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"

	"github.com/gwpipe/gwpipe/pkg/tlsreload"
)

// listenerTLS is the certificate of each listener that serves HTTPS
// (sources.firehose.tls, admin.tls), by configuration key.
type listenerTLS map[string]*tlsreload.Certs

// openTLS reads the certificates of the listeners that serve HTTPS, so
// that a missing or broken one stops the start with its key.
func (p *Pipeline) openTLS() error {
	p.tls = listenerTLS{}
	for _, l := range []struct {
		key  string
		cfg  tlsreload.Config
		used bool
	}{
		{"sources.firehose.tls", p.cfg.Sources.Firehose.TLS, p.runs(StageIngest) && p.cfg.Sources.Firehose.Enabled},
		{"admin.tls", p.cfg.Admin.TLS, p.cfg.Admin.Listen != "" || p.cfg.Admin.HealthListen != ""},
	} {
		if !l.used || !l.cfg.Enabled() {
			continue
		}
		c, err := tlsreload.New(l.cfg, p.log.With("key", l.key))
		if err != nil {
			return fmt.Errorf("%s: %w", l.key, err)
		}
		p.tls[l.key] = c
	}
	return nil
}

// withTLS wraps ln in TLS when key's listener serves HTTPS.
func (p *Pipeline) withTLS(key string, ln net.Listener) net.Listener {
	if c := p.tls[key]; c != nil {
		return tls.NewListener(ln, c.ServerConfig())
	}
	return ln
}

// serverLog is where a listener's HTTP server reports what it refused
// before a handler ran (a TLS handshake that failed: a plain-HTTP probe, an
// expired certificate on the client's side): the pipeline's log, at debug
// level, rather than the standard logger's unstructured lines on stderr.
func (p *Pipeline) serverLog(key string) *log.Logger {
	return slog.NewLogLogger(p.log.With("listener", key).Handler(), slog.LevelDebug)
}

// ReloadTLS reads every listener's certificate again (SIGHUP); one that
// cannot be read keeps serving the previous certificate and is reported.
// The files are also read again when they change, without it.
func (p *Pipeline) ReloadTLS() error {
	var errs []error
	for key, c := range p.tls {
		if err := c.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}
