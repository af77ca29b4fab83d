package apigw

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gwpipe/gwpipe/pkg/formats/logsource"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// SourceAPIGateway is the ddsource of every API Gateway record.
const SourceAPIGateway = "apigateway"

// DefaultOtherSource is the ddsource of logs that are not from API Gateway
// and whose log group names no source the Datadog Forwarder knows.
const DefaultOtherSource = "cloudwatch"

// FormatRule assigns an access-log format to log groups matching a pattern.
type FormatRule struct {
	// LogGroup is a glob: path.Match syntax ('*', '?', '[...]', '\\'),
	// except that '*' also matches '/'. For access logs delivered directly
	// by Firehose it is matched against the delivery stream name.
	LogGroup string `yaml:"log_group"`
	// Format is the stage's accessLogSettings.format ($context template).
	Format string `yaml:"format"`
}

// Config configures a Parser; it is the parse section of gwpipe's
// configuration (but for its correlation).
type Config struct {
	// Formats maps log-group glob patterns to access-log format strings;
	// the first matching rule wins.
	Formats []FormatRule `yaml:"formats"`
	// AccessLogGroupPrefixes are extra log-group prefixes (case-insensitive)
	// treated as access-log groups.
	AccessLogGroupPrefixes []string `yaml:"access_log_group_prefixes"`
	// OtherSource is the ddsource for logs not from API Gateway (empty:
	// DefaultOtherSource).
	OtherSource string `yaml:"other_source"`
}

// DefaultConfig names other logs' source "cloudwatch" and knows no custom
// format.
func DefaultConfig() Config { return Config{OtherSource: DefaultOtherSource} }

// Validate checks patterns and compiles every format.
func (c Config) Validate() error {
	var errs []error
	for i, r := range c.Formats {
		if r.LogGroup == "" {
			errs = append(errs, fmt.Errorf("formats[%d].log_group: empty log group pattern", i))
		} else if err := validGlob(r.LogGroup); err != nil {
			errs = append(errs, fmt.Errorf("formats[%d].log_group: %q: %w", i, r.LogGroup, err))
		}
		if _, err := CompileFormat(r.Format); err != nil {
			errs = append(errs, fmt.Errorf("formats[%d].format: of log group %s: %w", i, r.LogGroup, err))
		}
	}
	for i, p := range c.AccessLogGroupPrefixes {
		if strings.TrimSpace(p) == "" {
			errs = append(errs, fmt.Errorf("access_log_group_prefixes[%d]: empty prefix", i))
		}
	}
	return errors.Join(errs...)
}

type formatRule struct {
	pattern string
	format  *Format
}

// groupInfo is the cached routing decision and format for one key.
type groupInfo struct {
	route  Route
	format *Format // nil: detect
	// other is what the log group's name says of a log that is not API
	// Gateway's (RouteOther): its Datadog source and service.
	other  logsource.Group
	cached bool
	// learned is the key layout of the group's detected JSON lines.
	learned atomic.Pointer[jsonTemplate]
}

// maxCachedGroups bounds the routing cache.
const maxCachedGroups = 8192

// Parser parses API Gateway log records. It is safe for concurrent use.
type Parser struct {
	// conf is the configuration's part (SetConfig replaces it): loaded
	// once per record, so that each record is parsed with one of them.
	conf atomic.Pointer[parserConf]

	mu    sync.Mutex                         // serialises writers of conf, set and cache
	set   atomic.Pointer[map[string]*Format] // SetFormat registry (copy-on-write)
	cache atomic.Pointer[routeCache]         // routing decisions (copy-on-write)
	gen   atomic.Uint64                      // bumped when the configuration changes
}

// New validates cfg and builds a Parser.
func New(cfg Config) (*Parser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Parser{}
	p.conf.Store(compileConf(cfg))
	empty := map[string]*Format{}
	p.set.Store(&empty)
	p.cache.Store(&routeCache{})
	return p, nil
}

// parserConf is what the configuration tells the parser: immutable.
type parserConf struct {
	rules       []formatRule
	prefixes    []string
	otherSource string
}

// compileConf compiles a validated cfg.
func compileConf(cfg Config) *parserConf {
	c := &parserConf{otherSource: cfg.OtherSource}
	if c.otherSource == "" {
		c.otherSource = DefaultOtherSource
	}
	for _, r := range cfg.Formats {
		f, _ := CompileFormat(r.Format)
		c.rules = append(c.rules, formatRule{pattern: r.LogGroup, format: f})
	}
	for _, pr := range cfg.AccessLogGroupPrefixes {
		c.prefixes = append(c.prefixes, strings.TrimSpace(pr))
	}
	return c
}

// SetConfig replaces the configuration (a reload): the formats, the
// access-log group prefixes and the source of other logs. It validates cfg
// first and keeps the current one when it is not valid. A record being
// parsed finishes with the configuration it started with; the formats
// learned with SetFormat are kept (the rules still take precedence).
func (p *Parser) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c := compileConf(cfg)
	p.mu.Lock()
	defer p.mu.Unlock()
	// conf before gen: a routing decision made with the old conf is never
	// cached under the new generation (info reads gen first).
	p.conf.Store(c)
	p.gen.Add(1)
	p.cache.Store(&routeCache{})
	return nil
}

// SetFormat registers a stage's access-log format for a log group (or, for
// direct Firehose delivery, a delivery stream name), as learned at run time.
// Config.Formats rules still take precedence. An empty format unregisters.
func (p *Parser) SetFormat(logGroup, format string) error {
	if logGroup == "" {
		return errors.New("apigw: SetFormat: empty log group")
	}
	var f *Format
	if strings.TrimSpace(format) != "" {
		var err error
		if f, err = CompileFormat(format); err != nil {
			return fmt.Errorf("apigw: SetFormat %s: %w", logGroup, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := *p.set.Load()
	if old, ok := cur[logGroup]; ok && f != nil && old.src == f.src {
		return nil
	}
	next := make(map[string]*Format, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	if f == nil {
		delete(next, logGroup)
	} else {
		next[logGroup] = f
	}
	p.set.Store(&next)
	p.gen.Add(1)
	p.cache.Store(&routeCache{}) // routing may change: start over
	return nil
}

// RouteOf routes an origin with this parser's configuration (format rules
// and SetFormat groups count as access-log groups, plus the configured
// prefixes) on top of the built-in rules.
func (p *Parser) RouteOf(origin *record.Origin) Route {
	return p.info(origin).route
}

// FormatFor returns the format that applies to a log group (rules, then
// SetFormat), or nil when the format is detected per line.
func (p *Parser) FormatFor(key string) *Format { return p.formatFor(p.conf.Load(), key) }

func (p *Parser) formatFor(c *parserConf, key string) *Format {
	for i := range c.rules {
		if globMatch(c.rules[i].pattern, key) {
			return c.rules[i].format
		}
	}
	if f := (*p.set.Load())[key]; f != nil {
		return f
	}
	return nil
}

func (p *Parser) info(origin *record.Origin) *groupInfo {
	if origin == nil {
		return &otherInfo
	}
	c := p.cache.Load()
	key, byStream := origin.LogGroup, false
	if key != "" {
		if gi := c.groups[key]; gi != nil {
			return gi
		}
	} else if key = firehoseStreamName(origin); key != "" {
		byStream = true
		if gi := c.streams[key]; gi != nil {
			return gi
		}
	}
	gen := p.gen.Load()
	conf := p.conf.Load()
	configured := func(key string) bool { return p.formatFor(conf, key) != nil }
	gi := &groupInfo{route: routeOf(origin, configured, conf.prefixes)}
	switch gi.route.Kind {
	case RouteAccess:
		gi.format = p.formatFor(conf, gi.route.Key)
	case RouteOther:
		gi.other = logsource.OfGroup(origin.LogGroup)
	}
	if key == "" {
		return gi
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.cache.Load()
	if p.gen.Load() != gen || len(cur.groups)+len(cur.streams) >= maxCachedGroups {
		return gi // configuration changed meanwhile, or the cache is full
	}
	next := &routeCache{groups: cur.groups, streams: cur.streams}
	m := cur.groups
	if byStream {
		m = cur.streams
	}
	cp := make(map[string]*groupInfo, len(m)+1)
	for k, v := range m {
		cp[k] = v
	}
	gi.cached = true
	cp[strings.Clone(key)] = gi
	if byStream {
		next.streams = cp
	} else {
		next.groups = cp
	}
	p.cache.Store(next)
	return gi
}

// routeCache holds routing decisions by log group, and by delivery stream
// for records without a log group. It is replaced, never modified.
type routeCache struct {
	groups, streams map[string]*groupInfo
}

var otherInfo = groupInfo{}

// Parse understands one record in place. It sets rec.Kind, rec.Source,
// rec.Level, rec.Attrs (replacing any previous attributes, reusing their
// capacity), rec.ParseError, and rec.Timestamp when the log carries its own
// time. Attribute values alias rec.Message or the batch arena (b.Keep); b may
// be nil, then copies are heap-allocated. Safe for concurrent use with
// distinct records and batches.
func (p *Parser) Parse(b *record.Batch, rec *record.Record) {
	gi := p.info(rec.Origin)
	rec.ParseError = ""
	switch gi.route.Kind {
	case RouteOther:
		rec.Kind = record.KindOther
		rec.Source, rec.Service = p.conf.Load().otherSource, ""
		var stream string
		if rec.Origin != nil {
			stream = rec.Origin.LogStream
		}
		// Named as the Datadog Forwarder names them (/aws/lambda/<fn> →
		// source lambda, service <fn>; /aws/rds/… → rds; …); the
		// service of the others defaults to their source (package ddlogs).
		if source, service, ok := gi.other.Name(stream); ok {
			rec.Source, rec.Service = source, service
		}
		rec.Attrs = rec.Attrs[:0]
		return
	}
	rec.Source = SourceAPIGateway
	s := getScratch(b)
	s.begin(rec)
	switch gi.route.Kind {
	case RouteAccess:
		p.parseAccess(rec, gi, s)
	case RouteExecution:
		if !parseExecution(rec, s) {
			s.reset()
			rec.Kind = record.KindUnparsed
			rec.Level = record.LevelInfo
			rec.ParseError = errUnknownExecLine
		}
	case RouteWebSocketExecution:
		if !parseExecution(rec, s) {
			// The /aws/apigateway/ prefix is also a common access-log
			// group name: a line that is not an execution line but is a
			// recognisable access log is parsed as one.
			s.reset()
			line := trimSpace(rec.Message)
			if detectAccess(line, s) {
				rec.Kind = record.KindAccess
				rec.ParseError = ""
				s.finishAccess(rec)
			} else {
				s.reset()
				rec.Kind = record.KindUnparsed
				rec.Level = record.LevelInfo
				rec.ParseError = errUnknownExecLine
			}
		}
	}
	if gi.route.Canary {
		s.add(record.BoolAttr(KeyCanary, true))
	}
	s.commit(rec)
	putScratch(s)
}

const (
	errNoFormat        = "apigw: access log: no known format matched the line"
	errFormatMismatch  = "apigw: access log: line does not match the log group's format"
	errEmptyLine       = "apigw: empty line"
	errUnknownExecLine = "apigw: execution log: unrecognised line"
)

func (p *Parser) parseAccess(rec *record.Record, gi *groupInfo, s *scratch) {
	line := rec.Message
	if len(trimSpace(line)) == 0 {
		rec.Kind = record.KindUnparsed
		rec.ParseError = errEmptyLine
		rec.Level = record.LevelInfo
		return
	}
	ok := false
	if gi.format != nil {
		ok = gi.format.parseInto(line, s)
		if !ok {
			// The stage's format may have changed since it was learned:
			// fall back to detection before giving up.
			s.reset()
		}
	}
	if !ok {
		line = trimSpace(line)
		if len(line) > 0 && line[0] == '{' {
			ok = p.detectJSON(line, gi, s)
		} else {
			ok = detectAccess(line, s)
		}
	}
	if !ok {
		s.reset()
		rec.Kind = record.KindUnparsed
		rec.Level = record.LevelInfo
		if gi.format != nil {
			rec.ParseError = errFormatMismatch
		} else {
			rec.ParseError = errNoFormat
		}
		return
	}
	rec.Kind = record.KindAccess
	s.finishAccess(rec)
}

// detectJSON parses a JSON line of a group without a known format, using
// (and learning) the group's key layout.
func (p *Parser) detectJSON(line []byte, gi *groupInfo, s *scratch) bool {
	if jt := gi.learned.Load(); jt != nil {
		if jt.parse(line, s) {
			return true
		}
		s.reset()
		return false
	}
	ok, jt := parseDetectedJSON(line, s, gi.cached)
	if !ok {
		s.reset()
		return false
	}
	if jt != nil {
		gi.learned.CompareAndSwap(nil, jt)
	}
	return true
}

// detectAccess parses a line whose format is unknown: JSON, XML, then the
// console's CLF and CSV templates for REST, HTTP and WebSocket APIs (and the
// Serverless Framework's defaults among them).
func detectAccess(line []byte, s *scratch) bool {
	if len(line) == 0 {
		return false
	}
	switch line[0] {
	case '{':
		if ok, _ := parseDetectedJSON(line, s, false); ok {
			return true
		}
		s.reset()
		return false
	case '<':
		if parseXML(line, s) {
			return true
		}
		s.reset()
		return false
	}
	hasBracket := false
	hasComma := false
	for _, c := range line {
		if c == '[' {
			hasBracket = true
		} else if c == ',' {
			hasComma = true
		}
	}
	if hasBracket {
		for _, f := range consoleCLF {
			if f.seq.parse(line, s) {
				return true
			}
			s.reset()
		}
	}
	if hasComma {
		for _, f := range consoleCSV {
			if f.seq.parse(line, s) {
				return true
			}
			s.reset()
		}
	}
	return false
}

// Console formats (docs/wire-formats.md#console-access-log-formats).
const (
	FormatRESTCLF = `$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId $context.extendedRequestId`
	// FormatRESTCLFNoExt and FormatRESTCSVNoExt are the console's REST
	// formats from before extendedRequestId was added to them: still the
	// format of many stages (and of AWS CLI and Terraform examples).
	FormatRESTCLFNoExt = `$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId`
	FormatRESTCSVNoExt = `$context.identity.sourceIp,$context.identity.caller,$context.identity.user,$context.requestTime,$context.httpMethod,$context.resourcePath,$context.protocol,$context.status,$context.responseLength,$context.requestId`
	FormatRESTCLF2     = `$context.extendedRequestId $context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId`
	FormatRESTJSON     = `{ "requestId":"$context.requestId", "extendedRequestId":"$context.extendedRequestId", "ip": "$context.identity.sourceIp", "caller":"$context.identity.caller", "user":"$context.identity.user", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod", "resourcePath":"$context.resourcePath", "status":"$context.status", "protocol":"$context.protocol", "responseLength":"$context.responseLength" }`
	FormatRESTXML      = `<request id="$context.requestId"> <extendedRequestId>$context.extendedRequestId</extendedRequestId> <ip>$context.identity.sourceIp</ip> <caller>$context.identity.caller</caller> <user>$context.identity.user</user> <requestTime>$context.requestTime</requestTime> <httpMethod>$context.httpMethod</httpMethod> <resourcePath>$context.resourcePath</resourcePath> <status>$context.status</status> <protocol>$context.protocol</protocol> <responseLength>$context.responseLength</responseLength> </request>`
	FormatRESTCSV      = `$context.identity.sourceIp,$context.identity.caller,$context.identity.user,$context.requestTime,$context.httpMethod,$context.resourcePath,$context.protocol,$context.status,$context.responseLength,$context.requestId,$context.extendedRequestId`
	FormatHTTPCLF      = `$context.identity.sourceIp - - [$context.requestTime] "$context.httpMethod $context.routeKey $context.protocol" $context.status $context.responseLength $context.requestId`
	FormatHTTPJSON     = `{ "requestId":"$context.requestId", "ip": "$context.identity.sourceIp", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod","routeKey":"$context.routeKey", "status":"$context.status","protocol":"$context.protocol", "responseLength":"$context.responseLength" }`
	FormatHTTPXML      = `<request id="$context.requestId"> <ip>$context.identity.sourceIp</ip> <requestTime>$context.requestTime</requestTime> <httpMethod>$context.httpMethod</httpMethod> <routeKey>$context.routeKey</routeKey> <status>$context.status</status> <protocol>$context.protocol</protocol> <responseLength>$context.responseLength</responseLength> </request>`
	FormatHTTPCSV      = `$context.identity.sourceIp,$context.requestTime,$context.httpMethod,$context.routeKey,$context.protocol,$context.status,$context.responseLength,$context.requestId`
	// FormatWebSocketCLF and FormatWebSocketCSV are the console's formats
	// for WebSocket APIs; FormatWebSocketCLFNoStatus is the CLF without
	// $context.status, the Serverless Framework's default for them.
	FormatWebSocketCLF         = `$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.eventType $context.routeKey $context.connectionId" $context.status $context.requestId`
	FormatWebSocketCLFNoStatus = `$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.eventType $context.routeKey $context.connectionId" $context.requestId`
	FormatWebSocketCSV         = `$context.identity.sourceIp,$context.identity.caller,$context.identity.user,$context.requestTime,$context.eventType,$context.routeKey,$context.connectionId,$context.status,$context.requestId`
	// FormatServerlessREST is the Serverless Framework's default access-log
	// format for REST APIs (provider.logs.restApi: true), "key: value"
	// pairs separated by commas.
	FormatServerlessREST = `requestId: $context.requestId, ip: $context.identity.sourceIp, caller: $context.identity.caller, user: $context.identity.user, requestTime: $context.requestTime, httpMethod: $context.httpMethod, resourcePath: $context.resourcePath, status: $context.status, protocol: $context.protocol, responseLength: $context.responseLength`
	// FormatDatadog is the JSON format Datadog recommends (unquoted numbers).
	FormatDatadog = `{"apiId":"$context.apiId","stage":"$context.stage","requestId":"$context.requestId","ip":"$context.identity.sourceIp","caller":"$context.identity.caller","user":"$context.identity.user","requestTime":$context.requestTimeEpoch,"httpMethod":"$context.httpMethod","resourcePath":"$context.resourcePath","status":$context.status,"protocol":"$context.protocol","responseLength":$context.responseLength}`
)

func mustCompile(f string) *Format {
	c, err := CompileFormat(f)
	if err != nil {
		panic(err)
	}
	return c
}

var (
	// Tried in order: a REST format without extendedRequestId comes before
	// the HTTP one of as many fields, which would take its line with the
	// fields shifted (the CSV) or its resource path for a route key (the
	// CLF: an HTTP route key is "METHOD /path" or "$default", never a
	// path alone, so the REST format cannot take an HTTP line).
	// The WebSocket formats have fewer fields after the quoted part (or
	// after the time): no REST or HTTP line fits them, nor they those.
	consoleCLF = []*Format{mustCompile(FormatRESTCLF), mustCompile(FormatRESTCLF2), mustCompile(FormatRESTCLFNoExt), mustCompile(FormatHTTPCLF),
		mustCompile(FormatWebSocketCLF), mustCompile(FormatWebSocketCLFNoStatus)}
	// The Serverless Framework's format first: its "requestId: " prefix
	// rejects other lines at once.
	consoleCSV = []*Format{mustCompile(FormatServerlessREST), mustCompile(FormatRESTCSV), mustCompile(FormatRESTCSVNoExt), mustCompile(FormatWebSocketCSV), mustCompile(FormatHTTPCSV)}
)
