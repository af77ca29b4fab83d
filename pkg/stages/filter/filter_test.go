package filter

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

func rate(r float64) *float64 { return &r }

var origin = &record.Origin{LogGroup: "/aws/apigateway/pets-access"}

// access is an access log as parse and enrich leave it.
func access(reqID, method, route string, status int, msg string, extra ...record.Attr) record.Record {
	attrs := []record.Attr{
		record.StringAttr("http.request_id", []byte(reqID)),
		record.StringAttr("http.method", []byte(method)),
		record.StringAttr("http.route", []byte(route)),
		record.IntAttr("http.status_code", int64(status)),
	}
	return record.Record{
		Origin: origin, Kind: record.KindAccess, Message: []byte(msg), EventID: "ev-" + reqID,
		Attrs: append(attrs, extra...), Tags: []string{"apiid:a1b2c3", "apiname:pets", "stage:prod"},
	}
}

func execution(reqID, msg string) record.Record {
	return record.Record{
		Origin: &record.Origin{LogGroup: "API-Gateway-Execution-Logs_a1b2c3/prod"}, Kind: record.KindExecution,
		Message: []byte(msg), Attrs: []record.Attr{record.StringAttr("http.request_id", []byte(reqID))},
		Tags: []string{"apiid:a1b2c3", "stage:prod"},
	}
}

// clone deep-copies a batch, to prove Apply leaves its input as it was.
func clone(b *record.Batch) *record.Batch {
	c := *b
	c.Records = make([]record.Record, len(b.Records))
	for i, r := range b.Records {
		r.Message = bytes.Clone(r.Message)
		r.Attrs = append([]record.Attr(nil), r.Attrs...)
		for j := range r.Attrs {
			r.Attrs[j].Str = bytes.Clone(r.Attrs[j].Str)
		}
		c.Records[i] = r
	}
	return &c
}

func mustNew(t *testing.T, c Config) (*Filters, *telemetry.Registry) {
	t.Helper()
	reg := telemetry.NewRegistry()
	f, err := New(c, reg)
	require.NoError(t, err)
	return f, reg
}

var addrRE = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-fA-F]{1,4}::?[0-9a-fA-F]{1,4}|[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+`)

func TestRedactMessageAndEveryStringAttribute(t *testing.T) {
	t.Parallel()
	f, reg := mustNew(t, Config{Redact: []string{"ip", "email"}})
	in := &record.Batch{ID: "b", Records: []record.Record{
		access("r1", "GET", "/pets", 200, `{"ip":"203.0.113.9","user":"jane@example.com","xff":"2001:db8::7, ::ffff:192.0.2.1"}`,
			record.StringAttr("network.client.ip", []byte("203.0.113.9")),
			record.StringAttr("apigateway.identity.sourceIp", []byte("2001:db8::7")),
			record.StringAttr("usr.email", []byte("jane@example.com")),
			record.StringAttr("apigateway.xff", []byte("::ffff:192.0.2.1")),
			record.IntAttr("network.bytes_written", 12)),
		access("r2", "GET", "/pets", 200, `{"nothing":"to see"}`),
	}}
	before := clone(in)
	out := f.Apply(in)
	assert.Equal(t, before, in, "the input batch is never modified")
	require.Len(t, out.Records, 2)
	r := out.Records[0]
	assert.Equal(t, `{"ip":"xxx.xxx.xxx.xxx","user":"xxxxx@xxxxx.com","xff":"xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx, xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx"}`, string(r.Message))
	for _, a := range r.Attrs {
		assert.False(t, addrRE.MatchString(strings.ReplaceAll(string(a.Str), EmailMask, "")), "%s = %q", a.Key, a.Str)
	}
	v, _ := r.Attr("network.client.ip")
	assert.Equal(t, IPv4Mask, string(v.Str))
	v, _ = r.Attr("apigateway.xff")
	assert.Equal(t, IPv6Mask, string(v.Str), "an IPv4-mapped address is masked whole")
	assert.Equal(t, in.Records[1].Message, out.Records[1].Message)

	assert.EqualValues(t, 1, reg.Value("filters.matched", "ip"), "one log changed")
	assert.EqualValues(t, 6, reg.Value("filters.redacted", "ip"), "3 in the message, 3 attributes")
	assert.EqualValues(t, 1, reg.Value("filters.matched", "email"))
	assert.EqualValues(t, 2, reg.Value("filters.redacted", "email"))
}

func TestNothingToDoReturnsTheBatch(t *testing.T) {
	t.Parallel()
	f, _ := mustNew(t, Config{Redact: []string{"ip"}, ExcludeAtMatch: "never-there"})
	in := &record.Batch{Records: []record.Record{access("r1", "GET", "/", 200, "clean")}}
	assert.Same(t, in, f.Apply(in))
	var none *Filters
	assert.Same(t, in, none.Apply(in))
	empty, _ := mustNew(t, DefaultConfig())
	assert.Same(t, in, empty.Apply(in))
}

// The Forwarder's semantics: exclude is searched first and wins; with an
// include expression, a log must match it to stay. Both read the raw
// message, before scrubbing.
func TestIncludeExcludeForwarderSemantics(t *testing.T) {
	t.Parallel()
	f, reg := mustNew(t, Config{Redact: []string{"ip"}, IncludeAtMatch: `"status":"[45]\d\d"`, ExcludeAtMatch: `10\.0\.0\.1`})
	in := &record.Batch{Records: []record.Record{
		{Message: []byte(`{"status":"500","ip":"10.0.0.1"}`)}, // excluded, though included
		{Message: []byte(`{"status":"503","ip":"10.0.0.2"}`)}, // kept
		{Message: []byte(`{"status":"200","ip":"10.0.0.2"}`)}, // not included
	}}
	out := f.Apply(in)
	require.Len(t, out.Records, 1)
	assert.Equal(t, `{"status":"503","ip":"xxx.xxx.xxx.xxx"}`, string(out.Records[0].Message))
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "exclude_at_match"))
	assert.EqualValues(t, 1, reg.Value("filters.matched", "exclude_at_match"))
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "include_at_match"))
	assert.EqualValues(t, 1, reg.Value("filters.matched", "include_at_match"))
}

func TestDropMatchers(t *testing.T) {
	t.Parallel()
	f, reg := mustNew(t, Config{Drop: []Matcher{
		{Name: "health", Route: "/health", Method: "get", Status: new(200)},
		{StatusClass: "3xx", APIName: "pets"},
		{LogType: "execution", Stage: "dev"},
		{Attribute: "apigateway.identity.userAgent", Value: "ELB-HealthChecker/2.0"},
		{LogGroup: "/aws/apigateway/noisy-*", Attribute: "apigateway.debug"},
	}})
	ua := func(v string) record.Attr { return record.StringAttr("apigateway.identity.userAgent", []byte(v)) }
	dev := execution("r9", "dev line")
	dev.Tags = []string{"apiid:a1b2c3", "stage:dev"}
	noisy := access("r10", "GET", "/x", 200, "noisy", record.BoolAttr("apigateway.debug", true))
	noisy.Origin = &record.Origin{LogGroup: "/aws/apigateway/noisy-api"}
	in := &record.Batch{Records: []record.Record{
		access("r1", "GET", "/health", 200, "health ok"),                 // dropped: health
		access("r2", "GET", "/health", 503, "health failing"),            // kept: another status
		access("r3", "POST", "/health", 200, "post health"),              // kept: another method
		access("r4", "GET", "/pets", 301, "moved"),                       // dropped: 3xx of pets
		execution("r5", "prod line"),                                     // kept: stage prod
		dev,                                                              // dropped
		access("r6", "GET", "/", 200, "lb", ua("ELB-HealthChecker/2.0")), // dropped
		access("r7", "GET", "/", 200, "browser", ua("Mozilla/5.0")),      // kept
		noisy, // dropped
	}}
	out := f.Apply(in)
	var kept []string
	for _, r := range out.Records {
		kept = append(kept, string(r.Message))
	}
	assert.Equal(t, []string{"health failing", "post health", "prod line", "browser"}, kept)
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "health"))
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "drop[1]"))
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "drop[2]"))
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "drop[3]"))
	assert.EqualValues(t, 1, reg.Value("filters.dropped", "drop[4]"))
}

// Sampling is by request id: a request's access log and execution lines
// are kept or dropped alike, by any process, and the fraction kept is the
// rate within statistical bounds.
func TestSampleByRequest(t *testing.T) {
	t.Parallel()
	cfg := Config{Sample: []Sample{{Matcher: Matcher{Stage: "prod"}, Rate: rate(0.25)}}}
	f1, reg := mustNew(t, cfg)
	f2, _ := mustNew(t, cfg) // another worker
	const n = 20000
	var b1, b2 record.Batch
	for i := range n {
		id := fmt.Sprintf("%08x-7c1e-4b5e-9a1d-%012d", i*2654435761, i)
		b1.Records = append(b1.Records, access(id, "GET", "/pets", 200, "a "+id))
		b2.Records = append(b2.Records, execution(id, "e "+id), execution(id, "e2 "+id))
	}
	out1, out2 := f1.Apply(&b1), f2.Apply(&b2)
	keptAccess := map[string]bool{}
	for _, r := range out1.Records {
		keptAccess[string(r.Message[2:])] = true
		a, ok := r.Attr(KeySampleRate)
		require.True(t, ok, "every kept sampled log carries its rate")
		assert.Equal(t, record.Number, a.Kind)
		assert.Equal(t, "0.25", string(a.Str))
	}
	keptExec := map[string]int{}
	for _, r := range out2.Records {
		id := string(r.Message[strings.IndexByte(string(r.Message), ' ')+1:])
		keptExec[id]++
	}
	assert.Len(t, keptExec, len(keptAccess))
	for id := range keptAccess {
		assert.Equal(t, 2, keptExec[id], "request %s: its execution lines are kept with its access log", id)
	}
	// Binomial(n, 0.25): 5 standard deviations either side.
	sd := math.Sqrt(n * 0.25 * 0.75)
	assert.InDelta(t, n*0.25, len(keptAccess), 5*sd)
	assert.EqualValues(t, n, reg.Value("filters.matched", "sample[0]"))
	assert.EqualValues(t, n-len(keptAccess), reg.Value("filters.sampled_out", "sample[0]"))
}

// The cost-saving example: 10 % of 2xx kept, every 4xx/5xx kept.
func TestSampleFirstMatchDecides(t *testing.T) {
	t.Parallel()
	f, _ := mustNew(t, Config{Sample: []Sample{
		{Matcher: Matcher{StatusClass: "2xx"}, Rate: rate(0.1)},
		{Matcher: Matcher{LogType: "access"}, Rate: rate(1)},
	}})
	var b record.Batch
	for i := range 1000 {
		b.Records = append(b.Records, access(fmt.Sprint(i), "GET", "/", 500, "err"))
	}
	out := f.Apply(&b)
	require.Len(t, out.Records, 1000, "rate 1 keeps every log")
	a, ok := out.Records[0].Attr(KeySampleRate)
	require.True(t, ok)
	assert.Equal(t, "1", string(a.Str))
}

// A request kept at a rate is kept at every higher rate: lines of a
// request that match rules of different rates are never kept without the
// lines of the lower rate's... rather, the lower rate's kept requests are
// a subset of the higher rate's.
func TestSampledNested(t *testing.T) {
	t.Parallel()
	for i := range 5000 {
		key := []byte(fmt.Sprint("req-", i))
		if Sampled(key, 0.1) {
			assert.True(t, Sampled(key, 0.5), "%s", key)
		}
		assert.True(t, Sampled(key, 1))
		assert.False(t, Sampled(key, 0))
	}
}

func TestScopedRule(t *testing.T) {
	t.Parallel()
	f, reg := mustNew(t, Config{Rules: []Rule{
		{Name: "token", Pattern: `token=(\w{4})\w+`, Replace: "token=${1}…", Stages: []string{"prod"}},
		{Name: "card", Pattern: `\b\d{4}(?:[ -]?\d{4}){3}\b`, Replace: "[card]", LogGroups: []string{"/aws/apigateway/*"}},
	}})
	dev := access("r2", "GET", "/", 200, "token=abcdefgh")
	dev.Tags = []string{"stage:dev"}
	in := &record.Batch{Records: []record.Record{
		access("r1", "GET", "/", 200, "token=abcdefgh card 4111 1111 1111 1111",
			record.StringAttr("apigateway.path", []byte("/?token=zyxwvuts"))),
		dev,
		execution("r3", "card 4111111111111111"), // another log group
	}}
	out := f.Apply(in)
	assert.Equal(t, "token=abcd… card [card]", string(out.Records[0].Message))
	a, _ := out.Records[0].Attr("apigateway.path")
	assert.Equal(t, "/?token=zyxw…", string(a.Str))
	assert.Equal(t, "token=abcdefgh", string(out.Records[1].Message), "out of the rule's stages")
	assert.Equal(t, "card 4111111111111111", string(out.Records[2].Message), "out of the rule's log groups")
	assert.EqualValues(t, 1, reg.Value("filters.matched", "token"))
	assert.EqualValues(t, 2, reg.Value("filters.redacted", "token"))
	assert.EqualValues(t, 1, reg.Value("filters.redacted", "card"))
}

// Stages, API names and ids are matched as the log's tags write them
// (lower case: the enrichment's stage:prod), so the name AWS shows, SAM's
// `Prod`, matches; a log without the tags is compared by its own fields,
// written so too. A scrubbing rule scoped to `Prod` scrubs.
func TestStageAndAPIMatchAsTagsWriteThem(t *testing.T) {
	t.Parallel()
	tagged := func(id, msg string) record.Record {
		r := access(id, "GET", "/", 200, msg)
		r.Tags = []string{"apiid:a1b2c3", "apiname:pet_store", "stage:prod"}
		return r
	}
	untagged := func(id, msg string) record.Record {
		r := access(id, "GET", "/", 200, msg, record.StringAttr("apigateway.stage", []byte("Prod")),
			record.StringAttr("apigateway.apiId", []byte("A1B2C3")))
		r.Tags = nil
		return r
	}
	for _, c := range []Config{
		{Drop: []Matcher{{Stage: "Prod"}}},
		{Drop: []Matcher{{APIName: "Pet Store", Stage: "PROD"}}},
		{Drop: []Matcher{{APIID: "A1B2C3"}}},
		{Sample: []Sample{{Matcher: Matcher{Stage: "Prod"}, Rate: rate(0)}}},
	} {
		f, _ := mustNew(t, c)
		in := &record.Batch{Records: []record.Record{tagged("r1", "a"), untagged("r2", "b")}}
		if c.Drop != nil && c.Drop[0].APIName != "" {
			in.Records = in.Records[:1] // the name is only in the tags
		}
		assert.Empty(t, f.Apply(in).Records, "%+v", c)
	}
	f, reg := mustNew(t, Config{Rules: []Rule{
		{Name: "secret", Pattern: "secret", Replace: "X", Stages: []string{"Prod"}, APIIDs: []string{"A1B2C3"}},
	}})
	out := f.Apply(&record.Batch{Records: []record.Record{tagged("r1", "secret"), untagged("r2", "secret")}})
	assert.Equal(t, "X", string(out.Records[0].Message))
	assert.Equal(t, "X", string(out.Records[1].Message))
	assert.EqualValues(t, 2, reg.Value("filters.matched", "secret"))

	// A value that is nothing once written as a tag would match every log.
	err := Config{Drop: []Matcher{{Stage: "$$"}}, Rules: []Rule{{Name: "r", Pattern: "x", Stages: []string{"!"}}}}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `drop[0].stage: "$$" is nothing once written as a tag`)
	assert.Contains(t, err.Error(), `rules[0].stages[0]: "!" is nothing once written as a tag`)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Config
		want []string
	}{
		{Config{Redact: []string{"ip", "phone", "ip"}}, []string{`redact[1]: must be ip or email, got "phone"`, `redact[2]: "ip" is listed twice`}},
		{Config{Rules: []Rule{{Pattern: "(?=x)y"}}}, []string{"rules[0].name: is required", "rules[0].pattern: invalid or unsupported Perl syntax"}},
		{Config{Rules: []Rule{{Name: "a b", Pattern: "x", LogGroups: []string{"[a-"}}}}, []string{`rules[0].name: must be`, `rules[0].log_groups[0]: malformed glob "[a-"`}},
		{Config{Rules: []Rule{{Name: "x", Pattern: "x"}, {Name: "x", Pattern: "y"}}}, []string{`rules[1].name: "x" is taken by rules[0].name`}},
		{Config{IncludeAtMatch: "(", ExcludeAtMatch: "[z-a]"}, []string{"include_at_match: missing closing )", "exclude_at_match: invalid character class range"}},
		{Config{Drop: []Matcher{{}}}, []string{"drop[0]: gives no field to match: it would drop every log"}},
		{Config{Drop: []Matcher{{Status: new(700), StatusClass: "6xx", LogType: "lambda", Method: "GET /", Value: "x"}}}, []string{
			"drop[0].method: must be an HTTP method", "drop[0].status: must be an HTTP status", "drop[0].status_class: must be 1xx",
			"drop[0].log_type: must be access", "drop[0].value: needs attribute"}},
		{Config{Drop: []Matcher{{Status: new(404), StatusClass: "5xx"}}}, []string{"drop[0].status_class: 5xx never holds status 404"}},
		{Config{Drop: []Matcher{{Name: "z", Status: new(0)}}}, []string{"drop[0].status: must be an HTTP status 100 to 599, got 0"}},
		{Config{Sample: []Sample{{Matcher: Matcher{Status: new(0)}, Rate: rate(0)}}}, []string{"sample[0].status: must be an HTTP status 100 to 599, got 0"}},
		{Config{Sample: []Sample{{Matcher: Matcher{StatusClass: "2xx"}}, {Rate: rate(1.5)}, {Rate: rate(math.NaN())}}}, []string{
			"sample[0].rate: is required", "sample[1].rate: must be 0 to 1, got 1.5", "sample[2].rate: must be 0 to 1, got NaN"}},
		{Config{Sample: []Sample{{Matcher: Matcher{Name: "ip"}, Rate: rate(0.5)}}, Redact: []string{"ip"}}, []string{`sample[0].name: "ip" is taken by redact[0]`}},
	} {
		err := tc.c.Validate()
		require.Error(t, err, "%+v", tc.c)
		msgs := strings.Split(err.Error(), "\n")
		assert.Len(t, msgs, len(tc.want), "%v", err)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w)
		}
		_, err = New(tc.c, nil)
		assert.Error(t, err, "New refuses what Validate refuses")
	}
	for repl, want := range map[string]string{
		"token=$2":   "$2 refers to group 2, but the pattern has 1",
		"token=${2}": "${2} refers to group 2, but the pattern has 1",
		"${user}":    `${user} refers to a group named "user", which the pattern does not have`,
		"$1x":        `$1x refers to a group named "1x", which the pattern does not have (for group 1 followed by "x", write ${1}x)`,
		"$01":        `$01 refers to a group named "01"`,
		"$name $2":   `$2 refers to group 2`,
	} {
		err := Config{Rules: []Rule{{Name: "t", Pattern: "token=(?P<name>[a-z0-9]+)", Replace: repl}}}.Validate()
		if assert.Error(t, err, repl) {
			assert.Contains(t, err.Error(), "rules[0].replace: "+want)
		}
	}
	for _, repl := range []string{"", "$1", "${1}x", "$name", "${name}", "$0", "$$2 costs $", "a$-b", "${1"} {
		assert.NoError(t, Config{Rules: []Rule{{Name: "t", Pattern: "token=(?P<name>[a-z0-9]+)", Replace: repl}}}.Validate(), repl)
	}
	ok := Config{Redact: []string{"ip", "email"}, Rules: []Rule{{Name: "r", Pattern: "x"}},
		Drop: []Matcher{{Route: "/health"}}, Sample: []Sample{{Rate: rate(0)}, {Matcher: Matcher{StatusClass: "2xx"}, Rate: rate(1)}}}
	assert.NoError(t, ok.Validate())
}

// Load swaps the set in use while batches are being filtered: each batch
// is filtered wholly by one set, and a bad configuration leaves the set in
// use as it was.
func TestLoadSwapsAtomically(t *testing.T) {
	t.Parallel()
	drop := func(route string) Config { return Config{Drop: []Matcher{{Route: route}}} }
	f, _ := mustNew(t, drop("/a"))
	b := &record.Batch{Records: []record.Record{access("1", "GET", "/a", 200, "a"), access("2", "GET", "/b", 200, "b")}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				out := f.Apply(b)
				require.Len(t, out.Records, 1)
				assert.Contains(t, []string{"a", "b"}, string(out.Records[0].Message))
			}
		})
	}
	for i := range 500 {
		require.NoError(t, f.Load(drop([]string{"/a", "/b"}[i%2])))
	}
	wg.Wait()
	require.NoError(t, f.Load(drop("/b")))
	assert.Error(t, f.Load(Config{IncludeAtMatch: "("}))
	assert.Equal(t, "a", string(f.Apply(b).Records[0].Message), "the set in use stays")
}
