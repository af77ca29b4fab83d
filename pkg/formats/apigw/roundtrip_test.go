package apigw

import (
	"fmt"
	"iter"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// renderer renders a compiled format with chosen values, the way API
// Gateway does (JSON templates: values escaped by the test so that the
// rendering is valid JSON).
func render(t testing.TB, f *Format, vals map[string]string) string {
	t.Helper()
	src := strings.TrimSpace(f.src)
	var b strings.Builder
	for i := 0; i < len(src); {
		name, n := scanVar(src, i)
		if n == 0 {
			b.WriteByte(src[i])
			i++
			continue
		}
		v, ok := vals[name]
		require.True(t, ok, "no value for %s", name)
		if f.json != nil {
			v = strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `"`, `\"`)
		}
		b.WriteString(v)
		i += n
	}
	return b.String()
}

// genValue makes a random value for a variable that avoids the bytes in
// forbid (the template's literal characters) so the rendering is
// unambiguous.
func genValue(r *rand.Rand, v *varInfo, forbid string) string {
	switch v.name {
	case "httpMethod":
		return []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"}[r.IntN(7)]
	case "protocol":
		return []string{"HTTP/1.1", "HTTP/2.0"}[r.IntN(2)]
	}
	switch v.class {
	case classCLFTime:
		// whatever the literals: the class, not the literal, ends the value
		return fmt.Sprintf("%02d/%s/20%02d:%02d:%02d:%02d %c0%d00", 1+r.IntN(28), []string{"Jan", "Jun", "Dec"}[r.IntN(3)], r.IntN(40), r.IntN(24), r.IntN(60), r.IntN(60), "+-"[r.IntN(2)], r.IntN(10))
	case classStatus:
		if r.IntN(10) == 0 {
			return "-"
		}
		return strconv.Itoa(100 + r.IntN(500))
	case classNumber:
		switch r.IntN(8) {
		case 0:
			return "-"
		case 1:
			return strconv.Itoa(r.IntN(100000)) + "." + strconv.Itoa(r.IntN(1000))
		}
		return strconv.Itoa(r.IntN(100000))
	case classPath:
		if r.IntN(8) == 0 {
			return "-"
		}
		return "/" + genValue(r, knownVars["requestId"], forbid)
	}
	alpha := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+{}()*!?#&%'"
	if v.class == classAny {
		alpha += ` ,;"<>[]|é€`
	}
	var b strings.Builder
	n := 1 + r.IntN(24)
	for b.Len() < n {
		c := string([]rune(alpha)[r.IntN(len([]rune(alpha)))])
		if strings.ContainsAny(c, forbid) {
			continue
		}
		b.WriteString(c)
	}
	s := strings.TrimSpace(b.String())
	if s == "" || s == "-" {
		s = "x" + s
	}
	return s
}

func literalChars(f *Format) string {
	var b strings.Builder
	if f.seq != nil {
		b.Write(f.seq.prefix)
		for _, g := range f.seq.segs {
			b.Write(g.lit)
		}
	}
	if f.json != nil {
		for _, fl := range f.json.fields {
			if fl.sub != nil {
				b.Write(fl.sub.prefix)
				for _, g := range fl.sub.segs {
					b.Write(g.lit)
				}
			}
		}
	}
	return b.String()
}

// checkRoundTrip renders f with random values and checks both Extract and
// Parse recover them.
func checkRoundTrip(t *testing.T, r *rand.Rand, f *Format) {
	t.Helper()
	forbid := literalChars(f)
	vals := map[string]string{}
	for _, v := range f.vars {
		vals[v.name] = genValue(r, v, forbid)
	}
	line := render(t, f, vals)
	got := map[string]string{}
	require.True(t, f.Extract([]byte(line), func(name string, value []byte) { got[name] = string(value) }),
		"format %q\nline %q", f.src, line)
	require.Equal(t, vals, got, "format %q\nline %q", f.src, line)

	p, err := New(Config{Formats: []FormatRule{{LogGroup: "rt", Format: f.src}}})
	require.NoError(t, err)
	rec := record.Record{Origin: &record.Origin{LogGroup: "rt"}, Message: []byte(line)}
	p.Parse(&record.Batch{}, &rec)
	require.Equal(t, record.KindAccess, rec.Kind, "%q: %s", line, rec.ParseError)
	require.NoError(t, recordAttrsOK(&rec))
	for _, v := range f.vars {
		want := vals[v.name]
		a, ok := rec.Attr(v.key)
		if want == "-" || want == "" {
			require.False(t, ok, "unset %s produced an attribute", v.name)
			continue
		}
		require.True(t, ok, "missing %s in %q", v.key, line)
		require.Equal(t, want, string(a.Str), v.key)
		if v.typ != typeString && record.ValidNumber([]byte(want)) {
			require.Equal(t, record.Number, a.Kind, v.key)
		} else {
			require.Equal(t, record.String, a.Kind, v.key)
		}
	}
	if s := vals["status"]; s != "" && s != "-" {
		a, ok := rec.Attr(KeyStatusCode)
		require.True(t, ok)
		n, _ := strconv.Atoi(s)
		require.Equal(t, int64(n), a.Int)
		require.Equal(t, record.LevelForHTTPStatus(n), rec.Level)
	}
}

func TestRoundTripConsoleFormats(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, src := range []string{FormatRESTCLF, FormatRESTCLF2, FormatRESTCLFNoExt, FormatRESTCSVNoExt, FormatServerlessREST, FormatWebSocketCLF, FormatWebSocketCLFNoStatus, FormatWebSocketCSV, FormatRESTJSON, FormatRESTXML, FormatRESTCSV,
		FormatHTTPCLF, FormatHTTPJSON, FormatHTTPXML, FormatHTTPCSV, FormatDatadog} {
		f := mustCompile(src)
		for i := 0; i < 500; i++ {
			checkRoundTrip(t, r, f)
		}
	}
}

// TestRoundTripRouteKeyWithSpaces: the HTTP CLF's routeKey contains the
// literal that follows it.
func TestRoundTripRouteKeyWithSpaces(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	f := mustCompile(FormatHTTPCLF)
	for i := 0; i < 500; i++ {
		route := []string{"GET", "POST", "ANY", "$default"}[r.IntN(4)]
		if route != "$default" {
			route += " /" + genValue(r, knownVars["resourcePath"], " \"")
		}
		vals := map[string]string{
			"identity.sourceIp": "198.51.100." + strconv.Itoa(r.IntN(255)),
			"requestTime":       "29/Jun/2023:12:01:02 +0000",
			"httpMethod":        "GET",
			"routeKey":          route,
			"protocol":          "HTTP/1.1",
			"status":            strconv.Itoa(200 + r.IntN(300)),
			"responseLength":    strconv.Itoa(r.IntN(1000)),
			"requestId":         genValue(r, knownVars["requestId"], " "),
		}
		got := map[string]string{}
		require.True(t, f.Extract([]byte(render(t, f, vals)), func(n string, v []byte) { got[n] = string(v) }))
		require.Equal(t, vals, got)
	}
}

// randomTemplate builds a template from random literals and variables.
func randomTemplate(r *rand.Rand) string {
	names := append(slices.Collect(maps.Keys(knownVars)), "authorizer.claims.sub", "authorizer.tenant", "requestOverride.header.x-trace")
	// deterministic order for reproducibility
	slices.Sort(names)
	if r.IntN(3) == 0 {
		// JSON template
		var b strings.Builder
		b.WriteString("{")
		for i, name := range distinct(r, names, 1+r.IntN(12)) {
			if b.Len() > 1 {
				b.WriteString(",")
			}
			v := knownVars[name]
			if v != nil && v.class == classNumber && r.IntN(2) == 0 {
				fmt.Fprintf(&b, `"k%d":$context.%s`, i, name)
			} else {
				fmt.Fprintf(&b, `"k%d":"$context.%s"`, i, name)
			}
		}
		b.WriteString("}")
		return b.String()
	}
	lits := []string{" ", ",", " - ", "|", "\t", " [", "] ", `"`, "=", ";", "<x>", "</x>", " :: ", "#"}
	var b strings.Builder
	if r.IntN(2) == 0 {
		b.WriteString(lits[r.IntN(len(lits))])
	}
	for _, name := range distinct(r, names, 1+r.IntN(10)) {
		if r.IntN(2) == 0 {
			b.WriteString("$context." + name)
		} else {
			b.WriteString("${context." + name + "}")
		}
		b.WriteString(lits[r.IntN(len(lits))])
	}
	return b.String()
}

// distinct draws n names at random, and yields each the first time it is
// drawn, with the number of its draw.
func distinct(r *rand.Rand, names []string, n int) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		used := map[string]bool{}
		for i := 0; i < n; i++ {
			name := names[r.IntN(len(names))]
			if used[name] {
				continue
			}
			used[name] = true
			if !yield(i, name) {
				return
			}
		}
	}
}

func TestRoundTripRandomTemplates(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 2000; i++ {
		src := randomTemplate(r)
		f, err := CompileFormat(src)
		if err != nil {
			continue
		}
		for j := 0; j < 5; j++ {
			checkRoundTrip(t, r, f)
		}
	}
}
