package ddmetrics_test

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// statsdListener is a DogStatsD stand-in: a UDP socket on 127.0.0.1 that
// keeps every line of every datagram.
type statsdListener struct {
	conn  net.PacketConn
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func listenStatsd(t testing.TB) *statsdListener {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &statsdListener{conn: conn, more: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			l.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					l.lines = append(l.lines, line)
				}
			}
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return l
}

func (l *statsdListener) addr() string { return l.conn.LocalAddr().String() }

// waitFor returns the lines received once cond holds for them. It waits
// for datagrams, not for time; the deadline only bounds a failing test.
func (l *statsdListener) waitFor(t testing.TB, cond func(lines []string) bool) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		lines := append([]string(nil), l.lines...)
		l.mu.Unlock()
		if cond(lines) {
			return lines
		}
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("dogstatsd lines never satisfied the condition; got %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
		}
	}
}

// datagram is one parsed DogStatsD metric line.
type datagram struct {
	name   string
	values []string
	typ    string
	tags   []string
	ts     string
}

func parseDatagram(line string) (datagram, bool) {
	fields := strings.Split(line, "|")
	if len(fields) < 2 {
		return datagram{}, false
	}
	nv := strings.Split(fields[0], ":")
	d := datagram{name: nv[0], values: nv[1:], typ: fields[1]}
	for _, f := range fields[2:] {
		switch {
		case strings.HasPrefix(f, "#"):
			d.tags = strings.Split(f[1:], ",")
		case strings.HasPrefix(f, "T"):
			d.ts = f[1:]
		}
	}
	return d, true
}

func parseAll(lines []string, prefix string) []datagram {
	var out []datagram
	for _, l := range lines {
		if d, ok := parseDatagram(l); ok && strings.HasPrefix(d.name, prefix) {
			out = append(out, d)
		}
	}
	return out
}
