package loadgen

import (
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// BenchmarkNextRequest measures generation. Besides ns/op it reports
// events/s (wall clock) and events/cpu-s (events per second of process CPU
// time, GC included): run with -cpu 1 for the throughput of one core, which
// is robust against other load on the machine.
func BenchmarkNextRequest(b *testing.B) {
	base := func(mix Mix, direct bool) Config {
		return Config{Seed: 1, Mix: mix, Direct: direct, Clock: func() time.Time { return time.UnixMilli(1_700_000_000_000) }}
	}
	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"default-mix", base(DefaultMix, false)},
		{"json", base(Mix{JSON: 1}, false)},
		{"clf", base(Mix{CLF: 1}, false)},
		{"exec", base(Mix{Exec: 1}, false)},
		{"direct", base(Mix{JSON: 3, CLF: 1}, true)},
		{"default-mix-gzip-body", with(base(DefaultMix, false), func(c *Config) { c.GzipBody = true })},
		{"default-mix-gzip-level-6", with(base(DefaultMix, false), func(c *Config) { c.GzipLevel = 6 })},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g, err := NewGenerator(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			var events, bytes int64
			b.ReportAllocs()
			cpu0 := procstat.CPU()
			for b.Loop() {
				req, err := g.NextRequest()
				if err != nil {
					b.Fatal(err)
				}
				events += int64(len(req.Events))
				bytes += int64(req.RawSize)
			}
			cpu := procstat.CPU() - cpu0
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			if cpu > 0 {
				b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
			}
			b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}
