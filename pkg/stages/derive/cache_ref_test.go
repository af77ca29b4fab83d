package derive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
)

// The accumulator cache (cachedAcc) must not change what is emitted: a
// Deriver with it and one without it (noCache: the key built and looked
// up for every record) are given the same traffic, and must emit the same
// points and count the same (TestPointsMatchUncached, FuzzPointsMatchUncached).

type collectSink struct{ ms []record.Metric }

func (s *collectSink) Emit(_ context.Context, b *record.Batch) error {
	s.ms = append(s.ms, b.Metrics...)
	return nil
}
func (s *collectSink) DeadLetter(context.Context, *record.Batch) error { return nil }

// pointLines are the points, one line each, sorted: windows and series
// are flushed in map order.
func pointLines(ms []record.Metric) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%s|%d|%d|%d|%v|%v|%q|%s|%s", m.Name, m.Kind, m.Timestamp, m.Interval, m.Value, m.Values, m.Tags, m.Host, m.Unit)
	}
	slices.Sort(out)
	return out
}

var (
	cacheTagSets = [][]string{
		{"aws_account:1", "region:us-east-1", "apiid:a1", "apiname:pets", "stage:prod", "team:x"},
		{"aws_account:1", "region:us-east-1", "apiid:a1", "apiname:pets", "stage:prod", "team:y"},
		{"aws_account:1", "region:us-east-1", "apiid:a2", "stage:dev", "env:e"},
		{"aws_account:2", "region:eu-west-1", "apiid:a3", "apiname:chat", "stage:prod", "replay:true"},
		{"region:us-west-2"}, // not full: apiid and stage from the attributes
		{"region:us-west-2", "team:z"},
		{"region:us-west-2", "team:w", "stage:s2"},
		nil,
	}
	cacheMethods = []string{"GET", "get", "POST", "", "-", "DELETE", "Put"}
	cacheRoutes  = []string{"/pets", "/pets/{id}", "/orders", "/ORDERS", "/peta", "/o", "", "$default", "/é/ü", strings.Repeat("/long", 40), strings.Repeat("é", 91) + "/x"}
	cacheEvents  = []string{"", "", "MESSAGE", "CONNECT", "disconnect"}
	cacheStatus  = []int64{200, 201, 404, 429, 500, 0, 302, 99}
)

// cacheTraffic decodes data into steps: a record (with tag set, method,
// route, status, event type, time step) or, on some bytes, a Tick, an
// allowlist change or a clock jump.
// With slots, the cache has that many slots: few make records of other
// series share them.
func runCacheTraffic(t *testing.T, data []byte, slots int) {
	t.Helper()
	start := time.Date(2026, 3, 14, 15, 9, 20, 0, time.UTC)
	clk := fakeclock.New(start)
	cfg := Config{Now: clk.Now, Host: "h", TagAllowlist: []string{"team", "env"}, MaxResourcesPerAPI: 3, MaxSeriesPerWindow: 80,
		AllowedLateness: time.Second, Window: 10 * time.Second, MaxAge: 5 * time.Minute}
	ds := [2]*Deriver{}
	sinks := [2]*collectSink{{}, {}}
	for i := range ds {
		d, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds[i] = d
	}
	ds[0].cacheMask = slots - 1
	ds[1].noCache = true
	ctx := context.Background()
	// One batch's records share their tag slices, as the enrichment's do.
	tagSets := make([][]string, len(cacheTagSets))
	copy(tagSets, cacheTagSets)
	ts := start.UnixMilli()
	var batch []record.Record
	flush := func() {
		for i, d := range ds {
			recs := make([]record.Record, len(batch))
			copy(recs, batch)
			if err := d.Handle(ctx, &record.Batch{Records: recs}, sinks[i]); err != nil {
				t.Fatal(err)
			}
		}
		batch = batch[:0]
	}
	for len(data) >= 4 {
		b := data[:4]
		data = data[4:]
		switch b[0] {
		case 0xf0:
			flush()
			clk.Advance(time.Duration(b[1]) * 100 * time.Millisecond)
			for i, d := range ds {
				if err := d.Tick(ctx, clk.Now(), sinks[i]); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case 0xf1:
			flush()
			keys := [][]string{{"team"}, {"env", "team"}, nil}[int(b[1])%3]
			for _, d := range ds {
				if err := d.SetTagAllowlist(keys); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case 0xf2:
			flush()
			// Another tag slice of the same tags: its parse is not kept.
			i := int(b[1]) % len(tagSets)
			tagSets[i] = slices.Clone(tagSets[i])
			continue
		}
		tags := tagSets[int(b[0]&0x0f)%len(tagSets)]
		method := cacheMethods[int(b[1]&0x0f)%len(cacheMethods)]
		route := cacheRoutes[int(b[1]>>4)%len(cacheRoutes)]
		status := cacheStatus[int(b[2]&0x0f)%len(cacheStatus)]
		event := cacheEvents[int(b[2]>>4)%len(cacheEvents)]
		// Event time mostly forward, sometimes back (late records).
		step := int64(b[3]&0x3f) * 5
		if b[3]&0x40 != 0 {
			step = -step * 10
		}
		ts += step
		now := clk.Now().UnixMilli()
		if ts > now {
			clk.Advance(time.Duration(ts-now) * time.Millisecond)
		}
		kind := record.KindAccess
		if b[3]&0x80 != 0 && b[0]&0x30 == 0x30 {
			kind = record.KindSummary
		}
		rec := record.Record{Kind: kind, Timestamp: ts, Tags: tags,
			Origin: &record.Origin{Source: "firehose", Account: "9", Region: "ap-south-1", Replay: b[0]&0x20 != 0},
			Attrs: []record.Attr{
				record.StringAttr(KeyMethod, []byte(method)),
				record.StringAttr(KeyRoute, []byte(route)),
				record.IntAttr(KeyStatus, status),
				record.IntAttr(KeyDuration, int64(b[3])*1_000_000),
				record.StringAttr(KeyEventType, []byte(event)),
				record.StringAttr(KeyAPIID, []byte("fb"+string('0'+b[0]%3))),
				record.StringAttr(KeyStage, []byte("st")),
			}}
		batch = append(batch, rec)
		if len(batch) >= int(b[2]%7)+1 {
			flush()
		}
	}
	flush()
	for i, d := range ds {
		if err := d.Flush(ctx, sinks[i]); err != nil {
			t.Fatal(err)
		}
	}
	got, want := pointLines(sinks[0].ms), pointLines(sinks[1].ms)
	if !slices.Equal(got, want) {
		for i := 0; i < max(len(got), len(want)); i++ {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Fatalf("%d points cached, %d uncached; first difference at %d:\ncached   %s\nuncached %s", len(got), len(want), i, g, w)
			}
		}
	}
	if testing.Verbose() {
		t.Logf("%d points, %+v", len(got), ds[0].Stats())
	}
	if gs, ws := ds[0].Stats(), ds[1].Stats(); !reflect.DeepEqual(gs, ws) {
		t.Fatalf("stats:\ncached   %+v\nuncached %+v", gs, ws)
	}
}

func cacheSeeds() [][]byte {
	var seeds [][]byte
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 6 {
		data := make([]byte, 4*(200+n*400))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		// Records of a few series each, so that most find theirs cached.
		var palette [2][6]byte
		for i := range palette {
			for j := range palette[i] {
				palette[i][j] = byte(rng.Uint32())
			}
		}
		for i := 0; i < len(data); i += 4 {
			if n%3 != 2 {
				data[i+1], data[i+2] = palette[0][rng.IntN(6)], palette[1][rng.IntN(6)]
			}
		}
		// Fewer special steps than bytes of 0xf0-0xf2 would give, and
		// time mostly forward.
		for i := 0; i < len(data); i += 4 {
			if data[i] >= 0xf0 && rng.IntN(4) != 0 {
				data[i] &= 0x3f
			}
			if rng.IntN(8) != 0 {
				data[i+3] &^= 0x40
			}
		}
		seeds = append(seeds, data)
	}
	// Series whose values differ by one byte or by case only (a route is
	// case-sensitive, a method is not): /pets, /peta; /orders, /ORDERS;
	// GET, get.
	var near []byte
	for range 10 {
		near = append(near, 0, 0x00, 0, 1, 0, 0x40, 0, 1, 0, 0x20, 0, 1, 0, 0x30, 0, 1, 0, 0x01, 0, 1)
	}
	// Records of one API completed from their attributes alike, with
	// other allowlisted tags: tag sets 4 and 5, apiid fb1.
	var fallback []byte
	for range 10 {
		fallback = append(fallback, 4, 0, 0, 1, 13, 0, 0, 1, 13, 0, 0, 1)
	}
	return append(seeds, nil, []byte{0, 0, 0, 1, 0, 0, 0, 1, 0xf0, 50, 0, 0, 0, 0, 0, 1}, near, fallback)
}

func TestPointsMatchUncached(t *testing.T) {
	t.Parallel()
	for i, seed := range cacheSeeds() {
		for _, slots := range []int{accCacheSize, 2, 1} {
			t.Run(fmt.Sprint(i, "/", slots), func(t *testing.T) { runCacheTraffic(t, seed, slots) })
		}
	}
}

func FuzzPointsMatchUncached(f *testing.F) {
	for _, s := range cacheSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<14 {
			return
		}
		runCacheTraffic(t, data, accCacheSize)
		runCacheTraffic(t, data, 2)
	})
}
