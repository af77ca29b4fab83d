package fakeintake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultKeep is how many items of each kind are kept in memory when
// Config.Keep is zero.
const DefaultKeep = 1_000_000

// shutdownTimeout bounds how long Serve waits for in-flight requests.
const shutdownTimeout = 5 * time.Second

// Config configures a Server. The zero value is usable: any non-empty API key
// is accepted, nothing is written to disk, DefaultKeep items are kept.
type Config struct {
	// APIKeys are the valid DD-API-KEY values. When empty, any non-empty key
	// is accepted.
	APIKeys []string
	// OutDir, when set, receives logs.jsonl, series.jsonl and
	// distribution_points.jsonl, one accepted item per line, appended.
	OutDir string
	// Keep bounds how many logs, series points and distribution points (each
	// kind separately) are kept in memory; the oldest are evicted first.
	// Zero means DefaultKeep.
	Keep int
	// Now is the server clock, used for the series age rules and for
	// reception times. Nil means time.Now.
	Now func() time.Time
	// Logger receives admin actions, rejected requests (at debug level) and
	// recording errors. Nil discards.
	Logger *slog.Logger
}

// Server is a fake Datadog intake. It is safe for concurrent use; create it
// with New and release it with Close.
type Server struct {
	now  func() time.Time
	log  *slog.Logger
	keys map[string]struct{}
	mux  *http.ServeMux
	fail injector
	out  *recorder // nil when nothing is written to disk

	closed    chan struct{} // closed by Close to abandon injected latencies
	closeOnce sync.Once

	// mu guards everything below. It is held only to append already-built
	// items and bump counters, never while parsing or doing I/O.
	mu      sync.Mutex
	logs    ring[logEntry]
	series  ring[SeriesPoint]
	dists   ring[DistributionPoint]
	stats   Stats
	changed chan struct{} // closed and replaced on every accounted request
}

// New returns a Server configured by cfg. It creates cfg.OutDir if needed.
func New(cfg Config) (*Server, error) {
	if cfg.Keep < 0 {
		return nil, fmt.Errorf("fakeintake: keep must not be negative, got %d", cfg.Keep)
	}
	keep := cfg.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	s := &Server{
		now:     cfg.Now,
		log:     cfg.Logger,
		keys:    make(map[string]struct{}, len(cfg.APIKeys)),
		closed:  make(chan struct{}),
		logs:    ring[logEntry]{max: keep},
		series:  ring[SeriesPoint]{max: keep},
		dists:   ring[DistributionPoint]{max: keep},
		stats:   newStats(),
		changed: make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, k := range cfg.APIKeys {
		if k = strings.TrimSpace(k); k != "" {
			s.keys[k] = struct{}{}
		}
	}
	if cfg.OutDir != "" {
		out, err := openRecorder(cfg.OutDir)
		if err != nil {
			return nil, fmt.Errorf("fakeintake: %w", err)
		}
		s.out = out
	}
	s.mux = s.routes()
	return s, nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v2/logs", s.intake(&logsEndpoint))
	mux.Handle("POST /api/v2/series", s.intake(&seriesEndpoint))
	mux.Handle("POST /api/v1/distribution_points", s.intake(&distributionEndpoint))
	mux.HandleFunc("GET /api/v1/validate", s.handleValidate)
	mux.HandleFunc("GET /stats", s.handleStats)
	mux.HandleFunc("GET /healthz", handleHealth)
	mux.HandleFunc("GET /admin/fail", s.handleGetFailure)
	mux.HandleFunc("POST /admin/fail", s.handleSetFailure)
	mux.HandleFunc("DELETE /admin/fail", s.handleClearFailure)
	mux.HandleFunc("POST /admin/reset", s.handleReset)
	return mux
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Serve answers requests on ln until ctx is done, then shuts down gracefully.
// Injected latencies in flight are abandoned at shutdown, because request
// contexts derive from ctx. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("fakeintake: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("fakeintake: shut down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fakeintake: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Close abandons injected latencies still running and closes the JSONL
// files. Call it after the HTTP server in front has stopped; later accepted
// payloads are still kept in memory but no longer written to disk.
func (s *Server) Close() error {
	s.abandonWaits()
	if s.out == nil {
		return nil
	}
	if err := s.out.close(); err != nil {
		return fmt.Errorf("fakeintake: %w", err)
	}
	return nil
}

func (s *Server) abandonWaits() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Logs returns the logs kept in memory, oldest first, with their convenience
// fields decoded. Decoding happens here rather than at intake so that intake
// stays cheap; expect about a microsecond per log.
func (s *Server) Logs() []Log {
	s.mu.Lock()
	entries := s.logs.snapshot()
	s.mu.Unlock()
	return decodeLogs(entries)
}

// Series returns the accepted series points kept in memory, oldest first.
// Points dropped by the age rules are not included.
func (s *Server) Series() []SeriesPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.series.snapshot()
}

// Distributions returns the accepted distribution points kept in memory,
// oldest first.
func (s *Server) Distributions() []DistributionPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dists.snapshot()
}

// Stats returns a copy of the counters since New or the last Reset.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// Reset forgets every recording and zeroes the statistics. The failure
// configuration and the JSONL files are left alone.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs.reset()
	s.series.reset()
	s.dists.reset()
	inFlight := s.stats.DelaysInFlight
	s.stats = newStats()
	s.stats.DelaysInFlight = inFlight
	s.notifyLocked()
}

// WaitLogs blocks until at least n logs were accepted since New or the last
// Reset (evicted ones count), or ctx is done.
func (s *Server) WaitLogs(ctx context.Context, n int) error {
	return s.waitCount(ctx, "logs", n, func(st *Stats) int64 { return st.LogsAccepted })
}

// WaitSeriesPoints blocks until at least n series points were accepted since
// New or the last Reset, or ctx is done.
func (s *Server) WaitSeriesPoints(ctx context.Context, n int) error {
	return s.waitCount(ctx, "series points", n, func(st *Stats) int64 { return st.SeriesPointsAccepted })
}

// WaitDistributionPoints blocks until at least n distribution points were
// accepted since New or the last Reset, or ctx is done.
func (s *Server) WaitDistributionPoints(ctx context.Context, n int) error {
	return s.waitCount(ctx, "distribution points", n, func(st *Stats) int64 { return st.DistributionPointsAccepted })
}

// Wait blocks until cond holds for the statistics, or ctx is done. cond is
// called with the server's lock held after every intake request, so it must
// be quick and must not call back into the Server.
func (s *Server) Wait(ctx context.Context, cond func(Stats) bool) error {
	return s.waitUntil(ctx, func(st *Stats) bool { return cond(*st) }, func() string { return "condition" })
}

func (s *Server) waitCount(ctx context.Context, what string, n int, get func(*Stats) int64) error {
	var have int64
	return s.waitUntil(ctx,
		func(st *Stats) bool { have = get(st); return have >= int64(n) },
		func() string { return fmt.Sprintf("%d %s (have %d)", n, what, have) })
}

// waitUntil re-checks cond each time a request is accounted: the channel in
// s.changed is closed then, which wakes every waiter without polling.
func (s *Server) waitUntil(ctx context.Context, cond func(*Stats) bool, describe func() string) error {
	for {
		s.mu.Lock()
		ok := cond(&s.stats)
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			s.mu.Lock()
			desc := describe()
			s.mu.Unlock()
			return fmt.Errorf("fakeintake: waiting for %s: %w", desc, context.Cause(ctx))
		}
	}
}

// notifyLocked wakes every waiter. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// SetFailure makes intake requests fail or slow down as f describes,
// replacing any previous configuration.
func (s *Server) SetFailure(f Failure) error {
	if err := s.fail.set(f); err != nil {
		return fmt.Errorf("fakeintake: %w", err)
	}
	st := s.fail.state().Failure // with defaults applied and the seed drawn
	s.log.Info("failure injection set", "status", st.Status, "rate", st.Rate,
		"latency_ms", st.LatencyMS, "count", st.Count, "endpoints", st.Endpoints, "seed", st.Seed)
	return nil
}

// ClearFailure stops failure injection.
func (s *Server) ClearFailure() {
	s.fail.clear()
	s.log.Info("failure injection cleared")
}

// FailureState reports the failure configuration and how much of it is left.
func (s *Server) FailureState() FailureState {
	return s.fail.state()
}
