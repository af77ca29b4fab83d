package config

import (
	"encoding"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readmeRow is a row of the README's configuration table: its keys and
// its default cell.
type readmeRow struct {
	keys []string // full keys; a trailing .* stands for every key under it
	def  string
	line int
}

var backticked = regexp.MustCompile("`([^`]*)`")

// readmeTable reads the configuration table of the README: the first
// column names keys (`a.b.c`, then `.d` for a sibling, `a.*` for a whole
// section), the second their defaults.
func readmeTable(t *testing.T) []readmeRow {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "## Configuration")
	require.NotEqual(t, -1, start, "the README has a Configuration section")
	var rows []readmeRow
	for i := start + 1; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
		cells := strings.Split(lines[i], "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		row := readmeRow{def: strings.TrimSpace(cells[2]), line: i + 1}
		parent := ""
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			k := m[1]
			if strings.HasPrefix(k, ".") {
				k = parent + k
			} else if j := strings.LastIndex(k, "."); j > 0 {
				parent = k[:j]
			}
			row.keys = append(row.keys, k)
		}
		rows = append(rows, row)
	}
	require.NotEmpty(t, rows)
	return rows
}

// TestKeysMatchTheREADME: every key is documented in the README's table,
// and the table names no key gwpipe does not have.
func TestKeysMatchTheREADME(t *testing.T) {
	documented := map[string]bool{}
	for _, r := range readmeTable(t) {
		for _, k := range r.keys {
			if prefix, ok := strings.CutSuffix(k, ".*"); ok {
				n := 0
				for _, key := range Keys() {
					if strings.HasPrefix(key[0], prefix+".") {
						documented[key[0]] = true
						n++
					}
				}
				assert.NotZero(t, n, "README line %d: %s covers no key", r.line, k)
				continue
			}
			assert.Contains(t, keyNames(), k, "README line %d documents %s, which is not a configuration key", r.line, k)
			documented[k] = true
		}
	}
	for _, k := range keyNames() {
		assert.True(t, documented[k], "%s is not documented in the README's configuration table", k)
	}
	// One variable per key: a.b_c and a_b.c would share GWPIPE_A_B_C.
	byEnv := map[string]string{}
	for _, k := range Keys() {
		assert.Regexp(t, `^[a-z0-9_]+(\.[a-z0-9_]+)*$`, k[0], "keys are snake_case")
		assert.Empty(t, byEnv[k[1]], "%s and %s share %s", byEnv[k[1]], k[0], k[1])
		byEnv[k[1]] = k[0]
	}
}

// TestDefaultsMatchTheREADME: a row of one key whose default is a value
// (not prose) shows DefaultConfig's.
func TestDefaultsMatchTheREADME(t *testing.T) {
	def := reflect.ValueOf(DefaultConfig())
	checked := 0
	for _, r := range readmeTable(t) {
		if len(r.keys) != 1 || strings.HasSuffix(r.keys[0], ".*") {
			continue
		}
		k := schemaByName(r.keys[0])
		if k.typ == nil {
			continue // TestKeysMatchTheREADME reports it
		}
		want, ok := readmeValue(r.def, k.typ)
		if !ok {
			continue
		}
		checked++
		got := fmt.Sprint(def.FieldByIndex(k.index).Interface())
		if m, ok := def.FieldByIndex(k.index).Interface().(encoding.TextMarshaler); ok {
			b, err := m.MarshalText()
			require.NoError(t, err)
			got = string(b)
		}
		assert.Equal(t, want, got, "README line %d: default of %s", r.line, k.name)
	}
	assert.Greater(t, checked, 40, "most defaults are checked")
}

// readmeValue reads a default cell as the value's fmt.Sprint: `text`, a
// number (1,024,000), a size (64 MiB) or — (none).
func readmeValue(cell string, t reflect.Type) (string, bool) {
	switch {
	case cell == "—" || strings.HasPrefix(cell, "— "):
		return fmt.Sprint(reflect.Zero(t).Interface()), true
	case strings.Count(cell, "`") == 2 && strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`"):
		v := strings.Trim(cell, "`")
		if t == reflect.TypeFor[time.Duration]() {
			d, err := time.ParseDuration(v)
			return d.String(), err == nil
		}
		if strings.Contains(v, "<") || strings.HasPrefix(v, "DD_") {
			return "", false // a template, or the variable it comes from
		}
		return v, true
	}
	if n, err := strconv.ParseInt(strings.ReplaceAll(cell, ",", ""), 10, 64); err == nil {
		return strconv.FormatInt(n, 10), true
	}
	for unit, shift := range map[string]uint{" KiB": 10, " MiB": 20, " GiB": 30} {
		if num, ok := strings.CutSuffix(cell, unit); ok {
			if n, err := strconv.ParseInt(num, 10, 64); err == nil {
				return strconv.FormatInt(n<<shift, 10), true
			}
		}
	}
	return "", false
}

func keyNames() []string {
	var out []string
	for _, k := range schema() {
		out = append(out, k.name)
	}
	return out
}

func schemaByName(name string) key { return findKey(func(k key) bool { return k.name == name }) }
