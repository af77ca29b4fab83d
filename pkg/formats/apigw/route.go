package apigw

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// RouteKind says which parser a log group's records go to.
type RouteKind uint8

const (
	RouteOther              RouteKind = iota // not API Gateway: passed through
	RouteAccess                              // access logs (any format)
	RouteExecution                           // REST execution logs
	RouteWebSocketExecution                  // /aws/apigateway/{apiId}/{stage}
)

func (k RouteKind) String() string {
	switch k {
	case RouteAccess:
		return "access"
	case RouteExecution:
		return "execution"
	case RouteWebSocketExecution:
		return "websocket-execution"
	}
	return "other"
}

// Route is the routing decision for an origin.
type Route struct {
	Kind   RouteKind
	APIID  string // from execution log groups; empty for access logs
	Stage  string
	Canary bool
	// Key is what formats are looked up by: the log group, or for access logs
	// delivered directly by Firehose (no log group) the delivery stream name.
	Key string
}

const (
	execPrefix    = "API-Gateway-Execution-Logs_"
	execPrefixAlt = "API-Gateway-Execution-Logs/"
	wsPrefix      = "/aws/apigateway/"
	firehosePref  = "amazon-apigateway-"
)

// wellKnownAccessPrefixes are matched case-insensitively at the start of a
// log group (Datadog Forwarder conventions,
// docs/wire-formats.md#log-group-conventions).
var wellKnownAccessPrefixes = []string{"api-gateway", "/aws/api-gateway", "/aws/http-api", "/aws/apigateway"}

// ExecutionGroup parses an execution log group name:
// "API-Gateway-Execution-Logs_{apiId}/{stage}" (also with "/" after "Logs"),
// optionally followed by "/Canary", and the WebSocket form
// "/aws/apigateway/{apiId}/{stage}" when apiId looks like an API id
// (10 lower-case letters and digits).
func ExecutionGroup(group string) (apiID, stage string, canary bool, ok bool) {
	var rest string
	ws := false
	switch {
	case hasPrefixFold(group, execPrefix):
		rest = group[len(execPrefix):]
	case hasPrefixFold(group, execPrefixAlt):
		rest = group[len(execPrefixAlt):]
	case strings.HasPrefix(group, wsPrefix):
		rest = group[len(wsPrefix):]
		ws = true
	default:
		return "", "", false, false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false, false
	}
	apiID, stage = rest[:i], rest[i+1:]
	if j := strings.IndexByte(stage, '/'); j >= 0 {
		if stage[j+1:] != "Canary" || j == 0 {
			return "", "", false, false
		}
		stage, canary = stage[:j], true
	}
	if ws && !looksLikeAPIID(apiID) {
		return "", "", false, false
	}
	return apiID, stage, canary, true
}

func looksLikeAPIID(s string) bool {
	if len(s) != 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// RouteOf routes an origin using only the built-in rules (no configuration):
// execution groups, WebSocket execution groups, well-known access-log
// prefixes, and Firehose streams named amazon-apigateway-*. See doc.go.
func RouteOf(origin *record.Origin) Route {
	return routeOf(origin, nil, nil)
}

// routeOf implements the routing rules; configured(key) reports whether the
// configuration names key as an access-log group (format rule or SetFormat).
func routeOf(origin *record.Origin, configured func(string) bool, prefixes []string) Route {
	if origin == nil {
		return Route{}
	}
	g := origin.LogGroup
	if g == "" {
		// Access logs delivered directly by Firehose, or replayed from the
		// S3 objects such a stream writes.
		if name := firehoseStreamName(origin); name != "" && strings.HasPrefix(name, firehosePref) {
			return Route{Kind: RouteAccess, Key: name}
		}
		if origin.Source == "s3" && strings.Contains(origin.RequestID, firehosePref) {
			return Route{Kind: RouteAccess}
		}
		return Route{}
	}
	if hasPrefixFold(g, execPrefix) || hasPrefixFold(g, execPrefixAlt) {
		api, stage, canary, ok := ExecutionGroup(g)
		if ok {
			return Route{Kind: RouteExecution, APIID: api, Stage: stage, Canary: canary, Key: g}
		}
		// a group under the execution prefix that does not parse: still API
		// Gateway execution logs, without api/stage
		return Route{Kind: RouteExecution, Canary: strings.HasSuffix(g, "/Canary"), Key: g}
	}
	if configured != nil && configured(g) {
		return Route{Kind: RouteAccess, Key: g, Canary: strings.HasSuffix(g, "/Canary")}
	}
	if strings.HasPrefix(g, wsPrefix) {
		if api, stage, canary, ok := ExecutionGroup(g); ok {
			return Route{Kind: RouteWebSocketExecution, APIID: api, Stage: stage, Canary: canary, Key: g}
		}
	}
	for _, p := range prefixes {
		if hasPrefixFold(g, p) {
			return Route{Kind: RouteAccess, Key: g, Canary: strings.HasSuffix(g, "/Canary")}
		}
	}
	for _, p := range wellKnownAccessPrefixes {
		if hasPrefixFold(g, p) {
			return Route{Kind: RouteAccess, Key: g, Canary: strings.HasSuffix(g, "/Canary")}
		}
	}
	return Route{Key: g}
}

// firehoseStreamName returns the delivery stream name from Origin.Stream or
// the stream ARN ("arn:aws:firehose:r:a:deliverystream/NAME").
func firehoseStreamName(o *record.Origin) string {
	if o.Stream != "" {
		return o.Stream
	}
	if i := strings.Index(o.SourceARN, ":deliverystream/"); i >= 0 {
		return o.SourceARN[i+len(":deliverystream/"):]
	}
	return ""
}

// ---------------------------------------------------------------------------
// Glob patterns for Config.Formats: path.Match syntax ('*', '?', '[...]',
// '\\' escapes) except that '*' also matches '/'. The matcher is adapted
// from Go's path.Match (BSD licence) with that one change.

// validGlob reports a malformed pattern (path.Match's own check).
func validGlob(p string) error {
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("apigw: malformed log-group pattern %q: %w", p, err)
	}
	return nil
}

// ValidGlob reports a malformed log-group pattern, in the syntax of
// Config.Formats ('*' also matches '/'). Other components (the log filters)
// take their log-group patterns in the same syntax.
func ValidGlob(p string) error { return validGlob(p) }

// GlobMatch matches name against a pattern ValidGlob accepts.
func GlobMatch(pattern, name string) bool { return globMatch(pattern, name) }

// globMatch matches name against a validated pattern.
func globMatch(pattern, name string) bool {
Pattern:
	for len(pattern) > 0 {
		var star bool
		var chunk string
		star, chunk, pattern = scanChunk(pattern)
		if star && chunk == "" {
			return true // trailing '*' matches the rest, '/' included
		}
		t, ok := matchChunk(chunk, name)
		if ok && (len(t) == 0 || len(pattern) > 0) {
			name = t
			continue
		}
		if star {
			for i := 0; i < len(name); i++ {
				t, ok := matchChunk(chunk, name[i+1:])
				if ok {
					if len(pattern) == 0 && len(t) > 0 {
						continue
					}
					name = t
					continue Pattern
				}
			}
		}
		return false
	}
	return len(name) == 0
}

func scanChunk(pattern string) (star bool, chunk, rest string) {
	for len(pattern) > 0 && pattern[0] == '*' {
		pattern = pattern[1:]
		star = true
	}
	inrange := false
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
		case '[':
			inrange = true
		case ']':
			inrange = false
		case '*':
			if !inrange {
				return star, pattern[:i], pattern[i:]
			}
		}
	}
	return star, pattern, ""
}

// matchChunk checks whether chunk (literals, classes, '?') matches the
// start of s and returns the rest. The pattern is known to be valid.
func matchChunk(chunk, s string) (string, bool) {
	for len(chunk) > 0 {
		if len(s) == 0 {
			return "", false
		}
		switch chunk[0] {
		case '[':
			r, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			chunk = chunk[1:]
			negated := false
			if len(chunk) > 0 && chunk[0] == '^' {
				negated = true
				chunk = chunk[1:]
			}
			match := false
			nrange := 0
			for {
				if len(chunk) > 0 && chunk[0] == ']' && nrange > 0 {
					chunk = chunk[1:]
					break
				}
				var lo, hi rune
				lo, chunk = getEsc(chunk)
				hi = lo
				if len(chunk) > 0 && chunk[0] == '-' {
					hi, chunk = getEsc(chunk[1:])
				}
				match = match || lo <= r && r <= hi
				nrange++
				if len(chunk) == 0 {
					return "", false
				}
			}
			if match == negated {
				return "", false
			}
		case '?':
			if s[0] == '/' {
				return "", false
			}
			_, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			chunk = chunk[1:]
		case '\\':
			chunk = chunk[1:]
			if len(chunk) == 0 {
				return "", false
			}
			fallthrough
		default:
			if chunk[0] != s[0] {
				return "", false
			}
			s = s[1:]
			chunk = chunk[1:]
		}
	}
	return s, true
}

func getEsc(chunk string) (rune, string) {
	if len(chunk) > 0 && chunk[0] == '\\' {
		chunk = chunk[1:]
	}
	if len(chunk) == 0 {
		return 0, ""
	}
	r, n := utf8.DecodeRuneInString(chunk)
	return r, chunk[n:]
}
