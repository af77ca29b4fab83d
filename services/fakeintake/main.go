// Command fakeintake runs a fake Datadog intake (logs, series, distribution
// points) for gwpipe's demos and benchmarks. See package
// github.com/gwpipe/gwpipe/pkg/testkit/fakeintake for the endpoints and limits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(logger, os.Args[1:]); err != nil {
		logger.Error("fakeintake failed", "err", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("fakeintake", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	apiKeys := fs.String("api-keys", "", "comma-separated valid API keys; when empty any non-empty DD-API-KEY is accepted")
	out := fs.String("out", "", "directory for JSONL recordings (logs.jsonl, series.jsonl, distribution_points.jsonl); empty keeps them in memory only")
	keep := fs.Int("keep", fakeintake.DefaultKeep, "max logs (and, separately, series and distribution points) kept in memory")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	pprofListen := fs.String("pprof-listen", "", "serve /debug/pprof on this address (e.g. 127.0.0.1:6060)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -help printed the usage; nothing failed
		}
		return fmt.Errorf("parse flags: %w", err)
	}
	if *keep <= 0 {
		return fmt.Errorf("-keep must be positive, got %d", *keep)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	if *pprofListen != "" {
		pln, err := net.Listen("tcp", *pprofListen)
		if err != nil {
			return fmt.Errorf("-pprof-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		go func() { _ = http.Serve(pln, mux) }() //nolint:gosec // a local debugging aid
	}

	srv, err := fakeintake.New(fakeintake.Config{
		APIKeys: splitList(*apiKeys),
		OutDir:  *out,
		Keep:    *keep,
		Logger:  logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listen on %s: %w", *listen, err), srv.Close())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("fakeintake listening", "addr", ln.Addr().String(),
		"api_keys", len(splitList(*apiKeys)), "out", *out, "keep", *keep)

	serveErr := srv.Serve(ctx, ln)
	closeErr := srv.Close()
	logStats(logger, srv.Stats())
	return errors.Join(serveErr, closeErr)
}

func logStats(logger *slog.Logger, st fakeintake.Stats) {
	logger.Info("fakeintake stopped",
		"requests", st.Requests,
		"responses", st.Responses,
		"encodings", st.Encodings,
		"bytes_received", st.BytesReceived,
		"bytes_uncompressed", st.BytesUncompressed,
		"logs_accepted", st.LogsAccepted,
		"logs_truncated", st.LogsTruncated,
		"series_points_accepted", st.SeriesPointsAccepted,
		"series_points_rejected_too_old", st.SeriesPointsRejectedTooOld,
		"series_points_rejected_too_new", st.SeriesPointsRejectedTooNew,
		"distribution_points_accepted", st.DistributionPointsAccepted,
		"failures_injected", st.FailuresInjected,
		"record_errors", st.RecordErrors)
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
