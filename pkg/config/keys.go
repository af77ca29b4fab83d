package config

import (
	"encoding"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/agnivade/levenshtein"
	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the environment variable of every key: a.b.c is
// GWPIPE_A_B_C.
const EnvPrefix = "GWPIPE_"

// key is one configuration key: a leaf of the tree, whatever its type
// (a list of structs such as parse.formats is one key).
type key struct {
	name  string // a.b.c
	env   string // GWPIPE_A_B_C
	index []int  // reflect.Value.FieldByIndex from Config
	typ   reflect.Type
}

// schema lists every key of Config, in declaration order.
var schema = sync.OnceValue(func() []key {
	var out []key
	walkType(reflect.TypeFor[Config](), nil, nil, func(path []string, index []int, t reflect.Type) {
		name := strings.Join(path, ".")
		out = append(out, key{name: name, env: envName(name), index: index, typ: t})
	})
	return out
})

func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// findKey is the first key match accepts; the zero key when none does.
func findKey(match func(key) bool) key {
	for _, k := range schema() {
		if match(k) {
			return k
		}
	}
	return key{}
}

// Keys lists every configuration key with its environment variable, for the
// README and `gwpipe validate --keys`.
func Keys() [][2]string {
	var out [][2]string
	for _, k := range schema() {
		out = append(out, [2]string{k.name, k.env})
	}
	return out
}

// field is a struct field as YAML sees it.
type field struct {
	name  string // its YAML key
	index []int  // from the struct walked
	typ   reflect.Type
}

// fields lists t's YAML fields, those of inlined structs included (their
// index continues through the inlined field).
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		inline := slices.Contains(strings.Split(opts, ","), "inline")
		// yaml.v3 inlines an embedded struct of an unexported type too.
		if name == "-" || !sf.IsExported() && !(inline && sf.Anonymous) {
			continue
		}
		if inline {
			for _, f := range fields(sf.Type) {
				f.index = append([]int{i}, f.index...)
				out = append(out, f)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name) // what yaml.v3 does
		}
		out = append(out, field{name: name, index: []int{i}, typ: sf.Type})
	}
	return out
}

// walkType calls f for every leaf under t with its key path and index.
func walkType(t reflect.Type, path []string, index []int, f func([]string, []int, reflect.Type)) {
	for _, fd := range fields(t) {
		p := append(slices.Clip(path), fd.name)
		ix := append(slices.Clip(index), fd.index...)
		if isSection(fd.typ) {
			walkType(fd.typ, p, ix, f)
			continue
		}
		f(p, ix, fd.typ)
	}
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isSection reports whether values of t are mappings of keys (a section
// of the tree or a struct in a list) rather than one value.
func isSection(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	p := reflect.PointerTo(t)
	return !p.Implements(yamlUnmarshaler) && !p.Implements(textUnmarshaler)
}

// closest is the candidate nearest to s (edit distance), for "did you
// mean" hints; "" when there is none.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := levenshtein.ComputeDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}
