package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/gwpipe/gwpipe/pkg/ops/tap"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/telemetry/openmetrics"
)

// Two listeners, two audiences:
//
//   - admin.listen (loopback by default): the operator's, on the host:
//     /healthz, /readyz, /status (every figure), /metrics, /tap (samples
//     of live events, credentials masked) and, only with admin.pprof,
//     /debug/pprof — profiles that can stall the process and show its
//     memory.
//   - admin.health_listen (off by default): the network's, for probes, load
//     balancers and Prometheus: /healthz, /readyz and /metrics — counts and
//     latencies, never a URL, an error text or a profile.
type adminServer struct {
	name string // the configuration key, for messages
	ln   net.Listener
	srv  *http.Server
}

// healthRoutes serves /healthz (the process is alive) and /readyz (it
// takes work and can deliver: not while it drains). Both listeners mount
// them.
func (p *Pipeline) healthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := p.readiness(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// metricsRoute serves /metrics: the registry in the OpenMetrics or
// Prometheus text format. Both listeners mount it.
func (p *Pipeline) metricsRoute(mux *http.ServeMux) {
	mux.Handle("GET /metrics", openmetrics.Handler(p.metrics, p.log.With("component", "admin")))
}

// healthHandler is admin.health_listen's: health and metrics.
func (p *Pipeline) healthHandler() http.Handler {
	mux := http.NewServeMux()
	p.healthRoutes(mux)
	p.metricsRoute(mux)
	return mux
}

// adminHandler is admin.listen's: health, /status, /metrics, /tap, and
// /debug/pprof when admin.pprof is on.
func (p *Pipeline) adminHandler() http.Handler {
	mux := http.NewServeMux()
	p.healthRoutes(mux)
	p.metricsRoute(mux)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, p.Status())
	})
	// The tap's topics are the graph's, under their configured names.
	names := map[string]string{}
	for _, t := range tap.Topics {
		names[t] = topic(t).name(p.cfg.Pipeline.Topics)
	}
	mux.Handle("GET /tap", tap.Handler(tap.Config{Tapper: p.rt, Defaults: p.cfg.LogsClient().Defaults, TopicNames: names, Scrub: p.filters.Scrub}))
	if p.cfg.Admin.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// startAdmin opens the configured admin listeners.
func (p *Pipeline) startAdmin() error {
	a := p.cfg.Admin
	for _, l := range []struct {
		key, addr string
		h         http.Handler
	}{{"admin.listen", a.Listen, p.adminHandler()}, {"admin.health_listen", a.HealthListen, p.healthHandler()}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("%s: %w", l.key, err)
		}
		s := &adminServer{name: l.key, ln: ln, srv: &http.Server{Handler: l.h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: p.serverLog(l.key)}}
		p.admin = append(p.admin, s)
		go p.serve(s.srv, p.withTLS("admin.tls", ln), l.key)
		p.log.Info("admin endpoint listening", "key", l.key, "addr", ln.Addr().String())
	}
	if a.Pprof && !loopback(a.Listen) {
		p.log.Warn("admin.pprof serves profiles on a listener other hosts can reach; keep admin.listen on 127.0.0.1", "admin.listen", a.Listen)
	}
	return nil
}

// stopAdmin closes the admin listeners, last in a shutdown: probes see the
// process until it is gone. The requests under way are answered; the
// connections that carry none are closed (closeServer).
func (p *Pipeline) stopAdmin(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range p.admin {
		wg.Go(func() { closeServer(ctx, s.srv) })
	}
	wg.Wait()
}

func (p *Pipeline) adminAddr(key string) string {
	for _, s := range p.admin {
		if s.name == key {
			return s.ln.Addr().String()
		}
	}
	return ""
}

// AdminAddr is the address admin.listen listens on.
func (p *Pipeline) AdminAddr() string { return p.adminAddr("admin.listen") }

// HealthAddr is the address admin.health_listen listens on.
func (p *Pipeline) HealthAddr() string { return p.adminAddr("admin.health_listen") }

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// writeJSON answers v as JSON, with the secrets of every URL it holds
// masked (an error quoting the intake's URL, a broker URL): the admin
// endpoints are read by people and dashboards, not by anyone who needs a key.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // keep '&' literal, so that query parameters are recognised
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, redact.URL(buf.String()))
}
