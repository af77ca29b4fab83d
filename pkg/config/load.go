package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
)

// Load applies the YAML file at path (if path is not empty) and then the
// environment on top of the defaults. Both are strict: a key the
// configuration does not have is an error with its line number (the file),
// and a value that does not fit its key is an error naming the key.
// GWPIPE_ variables that name no key are not errors (see EnvWarnings).
//
// Values are YAML in both places, read by the same decoder, so a value
// means the same in the file and in the environment: a duration is "90s",
// a list of structs or a map is JSON (or YAML flow) in its variable, and a
// list of strings is also accepted comma-separated.
func Load(path string, environ []string) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return DefaultConfig(), fmt.Errorf("read config: %w", err)
		}
	}
	return LoadData(path, data, environ)
}

// LoadData is Load for a YAML document already read (name says where it
// comes from, in messages): `gwpipe test` cases carry theirs inline.
func LoadData(name string, data []byte, environ []string) (Config, error) {
	c := DefaultConfig()
	if len(data) > 0 {
		if err := decodeStrict(data, &c, isSecretKey); err != nil {
			return c, redact.Err(fmt.Errorf("config %s:\n%w", name, err))
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return c, redact.Err(err)
	}
	normalize(&c)
	return c, nil
}

// DecodeStrict decodes a YAML document onto out (a pointer to a struct)
// as the configuration file is decoded: every key out's type does not
// have (with the closest key it has) and every value that does not fit
// its key is an error with its line, all of them at once. Other YAML files
// of gwpipe's (`gwpipe test`'s) use it to be as strict as the
// configuration. An empty document leaves out as it is.
func DecodeStrict(data []byte, out any) error {
	return decodeStrict(data, out, func(string) bool { return false })
}

// decodeStrict is DecodeStrict; the values of the keys secret says hold
// secrets are never quoted in its errors.
func decodeStrict(data []byte, out any, secret func(key string) bool) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	checkNode(doc.Content[0], reflect.TypeOf(out).Elem(), "", secret, false, &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // checkNode found every problem; this is the backstop
	return dec.Decode(out)
}

// checkNode walks a YAML node along the type it decodes into: every
// mapping key must be a field, every value must decode into its field.
// The errors quote no value under a key secret names, nor one reached
// through an alias (hide): the anchor may be a secret's (api_key: &k …),
// quoted under whatever key refers to it.
func checkNode(n *yaml.Node, t reflect.Type, path string, secret func(string) bool, hide bool, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		// Found where the alias is written, not where its anchor is.
		a := *n.Alias
		a.Line, a.Column = n.Line, n.Column
		n, hide = &a, true
	}
	hide = hide || secret(path)
	at := func(line int, format string, a ...any) {
		*errs = append(*errs, fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, a...)))
	}
	switch {
	case t == yamlNode:
		return // any YAML: whoever holds it checks it when decoding it
	case isSection(t) || n.Kind == yaml.MappingNode && selfDecodingStruct(t):
		if n.Kind != yaml.MappingNode {
			if n.Tag != "!!null" {
				at(n.Line, "%s must be a mapping of keys, not %s", orTop(path), describe(n, hide))
			}
			return
		}
		fs := fields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" { // <<: *anchor
				checkNode(v, t, path, secret, hide, errs)
				continue
			}
			full := join(path, k.Value)
			j := slices.IndexFunc(fs, func(f field) bool { return f.name == k.Value })
			if j < 0 {
				names := make([]string, len(fs))
				for i, f := range fs {
					names[i] = f.name
				}
				hint := ""
				if s := closest(k.Value, names); s != "" {
					hint = fmt.Sprintf(" (did you mean %s?)", join(path, s))
				}
				at(k.Line, "unknown key %s%s", full, hint)
				continue
			}
			checkNode(v, fs[j].typ, full, secret, hide, errs)
		}
	case t.Kind() == reflect.Slice && isSection(t.Elem()) && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), secret, hide, errs)
		}
	default:
		// null is no list, no map, or an optional value left out (a nil pointer).
		if n.Tag == "!!null" && t.Kind() != reflect.Slice && t.Kind() != reflect.Map && t.Kind() != reflect.Pointer {
			at(n.Line, "%s has no value", path)
			return
		}
		if err := wholeNumber(n, t); err != nil {
			at(n.Line, "%s: %s", path, hidden(err.Error(), n.Value, hide))
		} else if err := n.Decode(reflect.New(t).Interface()); err != nil {
			at(n.Line, "%s: %s", path, hidden(yamlMessage(err), n.Value, hide))
		}
	}
}

var yamlNode = reflect.TypeFor[yaml.Node]()

// selfDecodingStruct reports whether t is a struct with its own
// UnmarshalYAML. Written as a mapping, it is checked key by key as a
// section is: its UnmarshalYAML is there for a shorter form (`gwpipe
// test`'s `expect: dropped`), and decodes a mapping as its fields, without
// the decoder's strictness.
func selfDecodingStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && reflect.PointerTo(t).Implements(yamlUnmarshaler)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "the configuration"
	}
	return path
}

func describe(n *yaml.Node, hide bool) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode && hide:
		return "a value (not quoted: " + hiddenWhy + ")"
	case n.Kind == yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "that"
}

// hiddenWhy says why a message does not quote a value.
const hiddenWhy = "it may be a secret"

// yamlValueRE is the value the YAML decoder quotes in its messages
// ("cannot unmarshal !!str `abc` into int", "cannot decode !!str `abc` as
// a !!int"), backticks included; greedy, for a value holding backticks.
var yamlValueRE = regexp.MustCompile("(?s) ?`.*`")

// hidden is msg, a message about value, without value when hide is set:
// the YAML decoder's quoted value taken out, and the message replaced
// whole should value (or a piece of it) remain.
func hidden(msg, value string, hide bool) string {
	if !hide {
		return msg
	}
	out := yamlValueRE.ReplaceAllString(msg, "")
	if value != "" && strings.Contains(out, value) {
		return "is not a value this key takes (not quoted: " + hiddenWhy + ")"
	}
	return out + " (the value is not quoted: " + hiddenWhy + ")"
}

// secretKeys hold secrets: no message quotes their values.
var secretKeys = []string{"datadog.api_key", "sources.firehose.access_keys", "enrich.external_id"}

func isSecretKey(key string) bool {
	// A list's item (access_keys[2]) is its list's.
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	return slices.Contains(secretKeys, key)
}

// yamlMessage is a decoding error without the decoder's framing ("yaml:
// unmarshal errors:", the line of a document that is one value).
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = lineRE.ReplaceAllString(m, "")
		}
		return strings.Join(msgs, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

var lineRE = regexp.MustCompile(`^line \d+: `)

// applyEnv sets every key named by a GWPIPE_ variable, then the Datadog
// variables.
func applyEnv(c *Config, environ []string) error {
	env := environMap(environ)
	root := reflect.ValueOf(c).Elem()
	var errs []error
	for _, k := range schema() {
		raw, ok := env[k.env]
		if !ok {
			continue
		}
		v, err := envValue(raw, k.typ)
		if err != nil {
			if isSecretKey(k.name) {
				err = errors.New(hidden(err.Error(), strings.TrimSpace(raw), true))
			}
			errs = append(errs, fmt.Errorf("%s (%s): %w", k.env, k.name, err))
			continue
		}
		root.FieldByIndex(k.index).Set(v)
	}
	// The Datadog variables apply unless the GWPIPE_ form is set too.
	c.setFromAlias(env, "DD_API_KEY", "datadog.api_key", &c.Datadog.APIKey)
	c.setFromAlias(env, "DD_SITE", "datadog.site", &c.Datadog.Site)
	if v := env["DD_TAGS"]; v != "" {
		for _, tag := range splitTags(v) {
			c.set(fmt.Sprintf("enrich.tags[%d]", len(c.Enrich.Tags)), "DD_TAGS")
			c.Enrich.Tags = append(c.Enrich.Tags, tag)
		}
	}
	forwarderEnv(c, env)
	return errors.Join(errs...)
}

// set records that the variable env, one whose name is not key's (a
// GWPIPE_ variable's is), set key.
func (c *Config) set(key, env string) {
	if c.setBy == nil {
		c.setBy = map[string]string{}
	}
	c.setBy[key] = env
}

// setByOf is the variable that set key, or the list item or key key is
// under (the longest of them that one did); "" when none did.
func (c Config) setByOf(key string) string {
	best, env := -1, ""
	for k, e := range c.setBy {
		if len(k) > best && (key == k || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[")) {
			best, env = len(k), e
		}
	}
	return env
}

// ForwarderScrubbingRule is the name of the rule DD_SCRUBBING_RULE makes.
const ForwarderScrubbingRule = "dd_scrubbing_rule"

// forwarderEnv honours the Datadog Forwarder's filtering variables with
// its semantics, so that its users move over unchanged:
//   - REDACT_IP and REDACT_EMAIL, when set to any value (the Forwarder
//     tests presence), add ip and email to filters.redact;
//   - DD_SCRUBBING_RULE adds a rule of that name (dd_scrubbing_rule) after
//     filters.rules, replacing by DD_SCRUBBING_RULE_REPLACEMENT, "xxxxx"
//     when unset;
//   - INCLUDE_AT_MATCH and EXCLUDE_AT_MATCH set filters.include_at_match
//     and filters.exclude_at_match over the file's value, unless the
//     GWPIPE_FILTERS_ form is set too (as DD_SITE does).
//
// Redaction and scrubbing only add: whatever the file says is scrubbed
// stays scrubbed.
func forwarderEnv(c *Config, env map[string]string) {
	for _, r := range []struct{ env, name string }{{"REDACT_IP", filter.RedactIP}, {"REDACT_EMAIL", filter.RedactEmail}} {
		if _, ok := env[r.env]; ok && !slices.Contains(c.Filters.Redact, r.name) {
			c.Filters.Redact = append(c.Filters.Redact, r.name)
		}
	}
	if v := env["DD_SCRUBBING_RULE"]; v != "" {
		key := fmt.Sprintf("filters.rules[%d]", len(c.Filters.Rules))
		c.set(key, "DD_SCRUBBING_RULE")
		repl, ok := env["DD_SCRUBBING_RULE_REPLACEMENT"]
		if ok {
			c.set(key+".replace", "DD_SCRUBBING_RULE_REPLACEMENT")
		} else {
			repl = "xxxxx"
		}
		c.Filters.Rules = append(c.Filters.Rules, filter.Rule{Name: ForwarderScrubbingRule, Pattern: v, Replace: repl})
	}
	c.setFromAlias(env, "INCLUDE_AT_MATCH", "filters.include_at_match", &c.Filters.IncludeAtMatch)
	c.setFromAlias(env, "EXCLUDE_AT_MATCH", "filters.exclude_at_match", &c.Filters.ExcludeAtMatch)
}

// setFromAlias sets key (its field, to) from the variable alias, one of
// the Datadog tools' (DD_SITE), when alias is set and key's own GWPIPE_
// variable is not.
func (c *Config) setFromAlias(env map[string]string, alias, key string, to *string) {
	if v := env[alias]; v != "" && env[envName(key)] == "" {
		*to = v
		c.set(key, alias)
	}
}

func environMap(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// envValue reads one variable's value for a key of type t. Strings are
// taken as they are; booleans as strconv.ParseBool reads them; a list of
// strings comma-separated unless it starts with '['; everything else is a
// YAML value (JSON included), decoded as the file's values are.
func envValue(raw string, t reflect.Type) (reflect.Value, error) {
	out := reflect.New(t)
	if u, ok := out.Interface().(encoding.TextUnmarshaler); ok {
		return out.Elem(), u.UnmarshalText([]byte(raw))
	}
	s := strings.TrimSpace(raw)
	switch {
	case t.Kind() == reflect.String:
		out.Elem().SetString(raw)
		return out.Elem(), nil
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return out.Elem(), fmt.Errorf("must be true or false, not %q", raw)
		}
		out.Elem().SetBool(b)
		return out.Elem(), nil
	case t.Kind() == reflect.Slice && isScalarText(t.Elem()) && !strings.HasPrefix(s, "["):
		items := reflect.MakeSlice(t, 0, 0)
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				v, err := envValue(it, t.Elem())
				if err != nil {
					return out.Elem(), err
				}
				items = reflect.Append(items, v)
			}
		}
		if items.Len() == 0 {
			return out.Elem(), nil
		}
		return items, nil
	case s == "":
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			return out.Elem(), nil // empty: none
		}
		return out.Elem(), errors.New("is empty")
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		return out.Elem(), fmt.Errorf("%s (lists of structs and maps are JSON)", yamlMessage(err))
	}
	if v := n.Content[0]; v.Tag == "!!null" {
		return out.Elem(), fmt.Errorf("%q is not a value", raw)
	} else if err := wholeNumber(v, t); err != nil {
		return out.Elem(), err
	}
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	if err := dec.Decode(out.Interface()); err != nil {
		return out.Elem(), errors.New(yamlMessage(err))
	}
	return out.Elem(), nil
}

// isScalarText reports whether values of t are written as one string: a
// list of them can be comma-separated.
func isScalarText(t reflect.Type) bool {
	return t.Kind() == reflect.String || reflect.PointerTo(t).Implements(textUnmarshaler)
}

// wholeNumber refuses a fraction for an integer key, which the YAML
// decoder would truncate (concurrency: 5.5 would be 5).
func wholeNumber(n *yaml.Node, t reflect.Type) error {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			return fmt.Errorf("must be a whole number, got %s", n.Value)
		}
	}
	return nil
}

// splitTags accepts DD_TAGS as Datadog does: separated by commas or spaces.
func splitTags(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// normalize makes every empty list and map nil: an empty list is no list,
// wherever it was written.
func normalize(c *Config) {
	root := reflect.ValueOf(c).Elem()
	for _, k := range schema() {
		if v := root.FieldByIndex(k.index); (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}

// serviceLink matches the variables Kubernetes gives every container for
// each Service of its namespace (enableServiceLinks): a Service named
// gwpipe-ingest makes GWPIPE_INGEST_SERVICE_HOST, GWPIPE_INGEST_PORT, ….
var serviceLink = regexp.MustCompile(`_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$`)

// EnvWarnings reports each GWPIPE_ variable of environ that names no
// configuration key, with the closest key: gwpipe ignores it, which is
// what a misspelt name would silently cause. They are warnings, not
// errors, because other software sets GWPIPE_ variables too (Kubernetes
// service links, which this skips; wrappers and test harnesses).
func EnvWarnings(environ []string) []string {
	known := map[string]bool{}
	var names []string
	for _, k := range schema() {
		known[k.env] = true
		names = append(names, k.env)
	}
	var out []string
	for name := range environMap(environ) {
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || serviceLink.MatchString(name) {
			continue
		}
		msg := fmt.Sprintf("%s names no configuration key and is ignored", name)
		if s := closest(name, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %s, key %s?)", s, schemaByEnv(s).name)
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

func schemaByEnv(env string) key { return findKey(func(k key) bool { return k.env == env }) }
