package config

import (
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryKeyHasAReloadClass: a new key is classified explicitly (it
// reloads with a hook, or needs a restart), and the lists name no key that
// does not exist and none twice.
func TestEveryKeyHasAReloadClass(t *testing.T) {
	names := map[string]bool{}
	for _, k := range schema() {
		names[k.name] = true
		if ReloadClassOf(k.name) == Unclassified {
			t.Errorf("key %s is neither in reloadableKeys nor in restartKeys (pkg/config/reload.go): decide whether SIGHUP applies it", k.name)
		}
	}
	seen := map[string]bool{}
	for _, k := range slices.Concat(reloadableKeys, restartKeys) {
		if !names[k] {
			t.Errorf("%s is classified but is no configuration key", k)
		}
		if seen[k] {
			t.Errorf("%s is classified twice", k)
		}
		seen[k] = true
		if ReloadClassOf(k) == NotRun {
			t.Errorf("%s is in the replay section, which run never reads", k)
		}
	}
}

func randomConfig(rng *rand.Rand) Config {
	return randomValue(rng, reflect.TypeFor[Config]()).Interface().(Config)
}

// TestDiffNamesExactlyTheChangedKeys: changing any one key (to another
// random value) makes Diff name that key and no other; a configuration
// differs from no copy of itself.
func TestDiffNamesExactlyTheChangedKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		a := randomConfig(rng)
		require.Empty(t, Diff(a, a))
		va := reflect.ValueOf(a)
		for _, k := range schema() {
			b := a
			vb := reflect.ValueOf(&b).Elem()
			// Maps and slices are shared by the copy: give b its own.
			for {
				nv := randomValue(rng, k.typ)
				if !equalValues(nv, va.FieldByIndex(k.index)) {
					vb.FieldByIndex(k.index).Set(nv)
					break
				}
			}
			assert.Equal(t, []string{k.name}, Diff(a, b), "only %s changed", k.name)
		}
	}
}

// TestDiffTreatsEmptyListsAsAbsent: `tags: []` in a file is no change from
// no tags at all.
func TestDiffTreatsEmptyListsAsAbsent(t *testing.T) {
	a, b := DefaultConfig(), DefaultConfig()
	b.Enrich.Tags = []string{}
	b.Enrich.RoleOverrides = map[string]string{}
	assert.Empty(t, Diff(a, b))
}

// TestWithReloadedTakesOnlyReloadableKeys: after a reload, the running
// configuration has next's value of every reloadable key and its own value
// of every other.
func TestWithReloadedTakesOnlyReloadableKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		running, next := randomConfig(rng), randomConfig(rng)
		got := running.WithReloaded(next)
		for _, k := range Diff(running, got) {
			assert.Equal(t, Reloads, ReloadClassOf(k), "%s changed though it does not reload", k)
		}
		for _, k := range Diff(got, next) {
			assert.NotEqual(t, Reloads, ReloadClassOf(k), "%s kept its old value though it reloads", k)
		}
	}
}

func TestReloadableKeys(t *testing.T) {
	got := ReloadableKeys()
	assert.Contains(t, got, "enrich.tags")
	assert.Contains(t, got, "log.level")
	assert.NotContains(t, got, "sources.firehose.listen")
	assert.Equal(t, NeedsRestart, ReloadClassOf("transport.kind"))
	assert.Equal(t, NotRun, ReloadClassOf("replay.bucket"))
}

// TestREADMEListsTheReloadableKeys: the README's table of what reloads on
// SIGHUP names every key that reloads, and only those (a.* stands for every
// key under a).
func TestREADMEListsTheReloadableKeys(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	text := string(data)
	begin := strings.Index(text, "<!-- reloadable keys")
	end := strings.Index(text, "<!-- end of reloadable keys -->")
	require.True(t, begin >= 0 && end > begin, "the README has the table of reloadable keys")
	var listed []string
	for _, line := range strings.Split(text[begin:end], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			if strings.Contains(m[1], ".") {
				listed = append(listed, m[1])
			}
		}
	}
	covered := func(key string) bool {
		return slices.ContainsFunc(listed, func(l string) bool {
			prefix, all := strings.CutSuffix(l, "*")
			return l == key || all && strings.HasPrefix(key, prefix)
		})
	}
	for _, k := range schema() {
		if ReloadClassOf(k.name) == Reloads {
			assert.True(t, covered(k.name), "%s reloads but the README does not say so", k.name)
		} else {
			assert.False(t, covered(k.name), "the README says %s reloads; it does not", k.name)
		}
	}
	for _, l := range listed {
		assert.True(t, slices.ContainsFunc(schema(), func(k key) bool {
			p, all := strings.CutSuffix(l, "*")
			return k.name == l || all && strings.HasPrefix(k.name, p)
		}), "the README lists %s, which is no key", l)
	}
}
