package filter

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// Built-in redactions (Config.Redact).
const (
	RedactIP    = "ip"    // IPv4 and IPv6, IPv4-mapped and -embedded forms included
	RedactEmail = "email" // the Datadog Forwarder's REDACT_EMAIL expression
)

// Config is the filters section of gwpipe's configuration: what is scrubbed
// from, and which of, the logs sent to Datadog. The metrics derived from
// logs are computed before it applies and never change with it.
type Config struct {
	// Redact lists built-in redactions: ip, email.
	Redact []string `yaml:"redact"`
	// Rules are custom scrubbing rules, applied after the built-ins, in order.
	Rules []Rule `yaml:"rules"`
	// IncludeAtMatch and ExcludeAtMatch are regular expressions searched in
	// the raw message, with the Datadog Forwarder's semantics: a log that
	// matches ExcludeAtMatch is dropped; otherwise, with IncludeAtMatch set,
	// a log that does not match it is dropped.
	IncludeAtMatch string `yaml:"include_at_match"`
	ExcludeAtMatch string `yaml:"exclude_at_match"`
	// Drop drops the logs any matcher matches (every field given must match).
	Drop []Matcher `yaml:"drop"`
	// Sample keeps a fraction of the logs a matcher matches, by request: the
	// first matching entry decides.
	Sample []Sample `yaml:"sample"`
}

// Rule is a custom scrubbing rule: every match of Pattern in the message
// and in every string attribute is replaced by Replace ($1, ${name} refer
// to groups), in the logs of its scope (all logs when no scope is given;
// otherwise every scope given must contain the log).
type Rule struct {
	Name      string   `yaml:"name"`
	Pattern   string   `yaml:"pattern"`
	Replace   string   `yaml:"replace"`
	LogGroups []string `yaml:"log_groups,omitempty"` // globs: '*' matches any run of characters, '/' included
	APIIDs    []string `yaml:"api_ids,omitempty"`
	Stages    []string `yaml:"stages,omitempty"`
}

// Matcher selects logs by what parsing and enrichment found in them. Every
// field given must match; a log without the field does not match.
type Matcher struct {
	// Name names the matcher's counters; default drop[i] or sample[i].
	Name   string `yaml:"name"`
	Route  string `yaml:"route"`  // glob on http.route ("/health", "/pets/*")
	Method string `yaml:"method"` // GET, POST, … (any case)
	// Status is the HTTP status code; a pointer, so that a status written
	// out of range, 0 included, is refused rather than read as none given.
	Status *int `yaml:"status"`
	// StatusClass is 1xx … 5xx.
	StatusClass string `yaml:"status_class"`
	APIID       string `yaml:"api_id"`
	APIName     string `yaml:"api_name"`
	Stage       string `yaml:"stage"`
	LogGroup    string `yaml:"log_group"` // glob
	// LogType is the kind of log: access, execution, summary, other or
	// unparsed.
	LogType string `yaml:"log_type"`
	// Attribute is any attribute path (apigateway.identity.userAgent); it
	// matches when the attribute's value, as delivered, equals Value, or,
	// with no Value, when the log has the attribute.
	Attribute string `yaml:"attribute"`
	Value     string `yaml:"value"`
}

// Sample keeps Rate (0 to 1) of the logs its matcher matches.
type Sample struct {
	Matcher `yaml:",inline"`
	// Rate is required: a rate left out would read as 0, dropping every
	// log the matcher matches.
	Rate *float64 `yaml:"rate"`
}

// DefaultConfig is no filtering: every log delivered as parsed.
func DefaultConfig() Config { return Config{} }

// Empty reports whether the configuration filters nothing.
func (c Config) Empty() bool {
	return len(c.Redact) == 0 && len(c.Rules) == 0 && c.IncludeAtMatch == "" && c.ExcludeAtMatch == "" &&
		len(c.Drop) == 0 && len(c.Sample) == 0
}

// nameRE is what a rule's name may be: it names counters.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

var (
	methodRE      = regexp.MustCompile(`^[A-Za-z]{1,16}$`)
	statusClassRE = regexp.MustCompile(`^[1-5]xx$`)
)

// logTypes are the kinds Matcher.LogType names.
var logTypes = map[string]record.Kind{
	"access": record.KindAccess, "execution": record.KindExecution, "summary": record.KindSummary,
	"other": record.KindOther, "unparsed": record.KindUnparsed,
}

// Validate reports every problem, each starting with its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	names := map[string]string{} // counter name → the key that took it
	name := func(key, n string) {
		if n == "" { // the default: the matcher's own key, free
			names[strings.TrimSuffix(key, ".name")] = key
			return
		}
		if !nameRE.MatchString(n) {
			bad(key, "must be 1 to 64 letters, digits, '_', '.' or '-', got %q", n)
			return
		}
		if prev, ok := names[n]; ok {
			bad(key, "%q is taken by %s already (names label the counters)", n, prev)
			return
		}
		names[n] = key
	}
	for _, n := range []string{"include_at_match", "exclude_at_match"} {
		names[n] = n
	}
	for i, r := range c.Redact {
		key := fmt.Sprintf("redact[%d]", i)
		switch {
		case r != RedactIP && r != RedactEmail:
			bad(key, "must be %s or %s, got %q", RedactIP, RedactEmail, r)
		case slices.Index(c.Redact, r) < i:
			bad(key, "%q is listed twice", r)
		default:
			names[r] = key
		}
	}
	for i, r := range c.Rules {
		key := fmt.Sprintf("rules[%d]", i)
		if r.Name == "" {
			bad(key+".name", "is required (it labels the rule's counters)")
		} else {
			name(key+".name", r.Name)
		}
		if r.Pattern == "" {
			bad(key+".pattern", "is required")
		} else if re, err := regexp.Compile(r.Pattern); err != nil {
			bad(key+".pattern", "%s (RE2 syntax: no lookaround, no backreferences)", reMessage(err))
		} else if msg := groupProblem(re, r.Replace); msg != "" {
			bad(key+".replace", "%s", msg)
		}
		for j, g := range r.LogGroups {
			if err := apigw.ValidGlob(g); err != nil {
				bad(fmt.Sprintf("%s.log_groups[%d]", key, j), "%s", globMessage(g, err))
			}
		}
		for j, v := range r.APIIDs {
			if msg := tagValueProblem(v); msg != "" {
				bad(fmt.Sprintf("%s.api_ids[%d]", key, j), "%s", msg)
			}
		}
		for j, v := range r.Stages {
			if msg := tagValueProblem(v); msg != "" {
				bad(fmt.Sprintf("%s.stages[%d]", key, j), "%s", msg)
			}
		}
	}
	for _, p := range []struct{ key, expr string }{{"include_at_match", c.IncludeAtMatch}, {"exclude_at_match", c.ExcludeAtMatch}} {
		if p.expr == "" {
			continue
		}
		if _, err := regexp.Compile(p.expr); err != nil {
			bad(p.key, "%s (RE2 syntax: no lookaround, no backreferences)", reMessage(err))
		}
	}
	for i, m := range c.Drop {
		key := fmt.Sprintf("drop[%d]", i)
		if m.empty() {
			bad(key, "gives no field to match: it would drop every log")
		}
		errs = append(errs, m.validate(key)...)
		name(key+".name", m.Name)
	}
	for i, s := range c.Sample {
		key := fmt.Sprintf("sample[%d]", i)
		switch {
		case s.Rate == nil:
			bad(key+".rate", "is required: the fraction of the matching logs to keep, 0 to 1")
		case !(*s.Rate >= 0 && *s.Rate <= 1) || math.IsNaN(*s.Rate):
			bad(key+".rate", "must be 0 to 1, got %v", *s.Rate)
		}
		errs = append(errs, s.validate(key)...)
		name(key+".name", s.Name)
	}
	return errors.Join(errs...)
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (m Matcher) empty() bool {
	m.Name = ""
	return m == Matcher{}
}

func (m Matcher) validate(key string) []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf(key+"."+field+": "+format, a...))
	}
	if m.Method != "" && !methodRE.MatchString(m.Method) {
		bad("method", "must be an HTTP method (GET, POST, …), got %q", m.Method)
	}
	if m.Status != nil && (*m.Status < 100 || *m.Status > 599) {
		bad("status", "must be an HTTP status 100 to 599, got %d", *m.Status)
	}
	if m.StatusClass != "" && !statusClassRE.MatchString(m.StatusClass) {
		bad("status_class", "must be 1xx, 2xx, 3xx, 4xx or 5xx, got %q", m.StatusClass)
	}
	if m.Status != nil && statusClassRE.MatchString(m.StatusClass) && m.StatusClass[0] != byte('0'+*m.Status/100) {
		bad("status_class", "%s never holds status %d: the matcher would match nothing", m.StatusClass, *m.Status)
	}
	if _, ok := logTypes[m.LogType]; m.LogType != "" && !ok {
		bad("log_type", "must be access, execution, summary, other or unparsed, got %q", m.LogType)
	}
	for _, g := range []struct{ field, v string }{{"route", m.Route}, {"log_group", m.LogGroup}} {
		if g.v != "" {
			if err := apigw.ValidGlob(g.v); err != nil {
				bad(g.field, "%s", globMessage(g.v, err))
			}
		}
	}
	for _, f := range []struct{ field, v string }{{"api_id", m.APIID}, {"api_name", m.APIName}, {"stage", m.Stage}} {
		if msg := tagValueProblem(f.v); f.v != "" && msg != "" {
			bad(f.field, "%s", msg)
		}
	}
	if m.Value != "" && m.Attribute == "" {
		bad("value", "needs attribute: the attribute path whose value to compare")
	}
	return errs
}

// groupProblem says which reference of repl ($1, ${1}, $name, ${name})
// names a group re does not have: regexp.Expand replaces it by nothing,
// so the rule would delete what it was meant to keep.
func groupProblem(re *regexp.Regexp, repl string) string {
	for {
		i := strings.IndexByte(repl, '$')
		if i < 0 || i == len(repl)-1 {
			return ""
		}
		repl = repl[i+1:]
		if repl[0] == '$' { // $$ is a '$'
			repl = repl[1:]
			continue
		}
		name, braced, rest, ok := groupRef(repl)
		if !ok {
			continue // a '$' Expand copies as it is
		}
		ref := "$" + name
		if braced {
			ref = "${" + name + "}"
		}
		repl = rest
		n, err := strconv.Atoi(name)
		switch {
		case err == nil && (name == "0" || name[0] != '0'):
			if n > re.NumSubexp() {
				return fmt.Sprintf("%s refers to group %d, but the pattern has %d", ref, n, re.NumSubexp())
			}
		case re.SubexpIndex(name) < 0:
			hint := ""
			if j := strings.IndexFunc(name, func(r rune) bool { return r < '0' || r > '9' }); !braced && j > 0 {
				hint = fmt.Sprintf(" (for group %s followed by %q, write ${%s}%s)", name[:j], name[j:], name[:j], name[j:])
			}
			return fmt.Sprintf("%s refers to a group named %q, which the pattern does not have%s", ref, name, hint)
		}
	}
}

// groupRef reads the name of a reference after its '$' as regexp.Expand
// does: the longest run of letters, digits and '_', or one in braces.
func groupRef(s string) (name string, braced bool, rest string, ok bool) {
	if braced = strings.HasPrefix(s, "{"); braced {
		s = s[1:]
	}
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' })
	if i < 0 {
		i = len(s)
	}
	if i == 0 {
		return "", false, "", false
	}
	name, rest = s[:i], s[i:]
	if braced {
		if !strings.HasPrefix(rest, "}") {
			return "", false, "", false
		}
		rest = rest[1:]
	}
	return name, braced, rest, true
}

// tagValueProblem says why v, an API id, name or stage, can name none:
// it is compared as the tags write it (awstags.NormalizeValue), and a
// value that is nothing once so written would match every log.
func tagValueProblem(v string) string {
	switch {
	case strings.TrimSpace(v) == "":
		return "is empty"
	case awstags.NormalizeValue(v) == "":
		return fmt.Sprintf("%q is nothing once written as a tag (characters other than letters, digits and _-./: become _, and a trailing _ goes)", v)
	}
	return ""
}

// reMessage is a regexp compile error without its "error parsing regexp: "
// framing.
func reMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// globMessage says what is wrong with a glob ValidGlob refused.
func globMessage(p string, err error) string {
	if e := errors.Unwrap(err); e != nil {
		err = e
	}
	return fmt.Sprintf("malformed glob %q: %v", p, err)
}
