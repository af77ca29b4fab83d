package derive_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/testkit/churn"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
)

// TestSetTagAllowlistMidWindow: a reload of the allowlist applies to the
// batches handled after it; a window open across the change never writes
// two points of one series (the allowlist reordered, or grown by a key the
// records lack, names the same series) and counts every request once.
func TestSetTagAllowlistMidWindow(t *testing.T) {
	get := req{at: t0, method: "GET", route: "/pets", status: 200, latMs: 3, integMs: -1, bytes: -1}
	count := func(ms map[string]float64, extra ...string) float64 {
		return ms[seriesKey("apigateway.logs.count", tagsOf("get", "/pets", "2xx", extra...))]
	}
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now, TagAllowlist: []string{"team"}})
	out := &sink{}
	ctx := context.Background()
	require.NoError(t, d.Handle(ctx, batchOf(get), out))
	// Same tags, other order and a key the records lack: the same series.
	require.NoError(t, d.SetTagAllowlist([]string{"owner", "team"}))
	require.NoError(t, d.Handle(ctx, batchOf(get, get), out))
	// A new key the records carry: a new series from now on.
	require.NoError(t, d.SetTagAllowlist([]string{"env", "team"}))
	require.NoError(t, d.Handle(ctx, batchOf(get), out))
	// None: the API's series alone.
	require.NoError(t, d.SetTagAllowlist(nil))
	require.NoError(t, d.Handle(ctx, batchOf(get), out))
	require.NoError(t, d.Flush(ctx, out))

	counts, _ := totals(t, out.metrics())
	assert.Equal(t, 3.0, count(counts, "team:payments"))
	assert.Equal(t, 1.0, count(counts, "env:prod", "team:payments"))
	assert.Equal(t, 1.0, count(counts))
	var total float64
	for k, v := range counts {
		if len(k) > len("apigateway.logs.count|") && k[:len("apigateway.logs.count|")] == "apigateway.logs.count|" {
			total += v
		}
	}
	assert.Equal(t, 5.0, total, "every request counted once: %v", counts)

	err := d.SetTagAllowlist([]string{"stage", "a:b"})
	require.Error(t, err)
	assert.ErrorContains(t, err, `tag_allowlist: entry "stage" is already a fixed tag key`)
	assert.ErrorContains(t, err, `tag_allowlist: entry "a:b" must be a bare tag key`)
}

// TestSetTagAllowlistUnderLoad: reloads racing with Handle (go test
// -race) lose no request.
func TestSetTagAllowlistUnderLoad(t *testing.T) {
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now})
	out := &sink{}
	lists := [][]string{nil, {"team"}, {"env", "team"}, {"team", "env"}}
	stop := churn.Start(func(i int) { assert.NoError(t, d.SetTagAllowlist(lists[i%len(lists)])) })
	get := req{at: t0, method: "GET", route: "/pets", status: 200, latMs: 3, integMs: -1, bytes: -1}
	var handlers sync.WaitGroup
	for range 4 {
		handlers.Go(func() {
			for range 100 {
				assert.NoError(t, d.Handle(context.Background(), batchOf(get, get), out))
			}
		})
	}
	handlers.Wait()
	stop()
	require.NoError(t, d.Flush(context.Background(), out))
	counts, _ := totals(t, out.metrics())
	var total float64
	for k, v := range counts {
		if len(k) > len("apigateway.logs.count|") && k[:len("apigateway.logs.count|")] == "apigateway.logs.count|" {
			total += v
		}
	}
	assert.Equal(t, 800.0, total)
}

// TestStaticTagsOfAllowlistedKeys: the static tags (enrich.tags, DD_TAGS),
// which only the logs deliverer adds, reach the metrics when their key is
// allowlisted; a record's own tag of the key wins; a reload of either list
// applies to the batches handled after it, the series open across it
// counting every request once.
func TestStaticTagsOfAllowlistedKeys(t *testing.T) {
	bare := []string{"aws_account:123456789012", "region:us-east-1", "apiid:a1b2c3", "apiname:petstore", "stage:prod"}
	own := append(slices.Clip(bare), "team:search")
	get := func(tags []string) req {
		return req{at: t0, method: "GET", route: "/pets", status: 200, latMs: 3, integMs: -1, bytes: -1, tags: tags}
	}
	clk := fakeclock.New(t0.Add(5 * time.Second))
	d := newDeriver(t, derive.Config{Now: clk.Now, TagAllowlist: []string{"team"}})
	d.SetStaticTags([]string{"env:prod", "team:payments", "team:other", "bare"})
	out := &sink{}
	ctx := context.Background()
	require.NoError(t, d.Handle(ctx, batchOf(get(bare), get(bare), get(own)), out))
	require.NoError(t, d.SetTagAllowlist([]string{"team", "env"}))
	require.NoError(t, d.Handle(ctx, batchOf(get(bare)), out))
	d.SetStaticTags(nil)
	require.NoError(t, d.Handle(ctx, batchOf(get(bare)), out))
	require.NoError(t, d.Flush(ctx, out))

	counts, _ := totals(t, out.metrics())
	count := func(extra ...string) float64 {
		return counts[seriesKey("apigateway.logs.count", tagsOf("get", "/pets", "2xx", extra...))]
	}
	assert.Equal(t, 2.0, count("team:payments"), "the first static tag of the key")
	assert.Equal(t, 1.0, count("team:search"), "the record's own tag wins")
	assert.Equal(t, 1.0, count("env:prod", "team:payments"), "the allowlist reloaded keeps the static tags")
	assert.Equal(t, 1.0, count(), "no static tags after they are removed")
	assert.Len(t, counts, 4, "%v", counts)
}
