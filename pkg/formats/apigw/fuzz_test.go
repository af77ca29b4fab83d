package apigw

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// checkParsed asserts the invariants every parsed record must satisfy.
func checkParsed(t *testing.T, rec *record.Record, msg []byte) {
	t.Helper()
	if !bytes.Equal(rec.Message, msg) {
		t.Fatalf("message modified: %q -> %q", msg, rec.Message)
	}
	if err := recordAttrsOK(rec); err != nil {
		t.Fatalf("%v for %q", err, msg)
	}
	switch rec.Kind {
	case record.KindUnparsed:
		if rec.ParseError == "" {
			t.Fatalf("unparsed without ParseError: %q", msg)
		}
		if rec.Source != SourceAPIGateway {
			t.Fatalf("unparsed API Gateway record with source %q", rec.Source)
		}
	case record.KindAccess, record.KindExecution:
		if rec.ParseError != "" {
			t.Fatalf("parsed record with ParseError %q", rec.ParseError)
		}
		if rec.Source != SourceAPIGateway {
			t.Fatalf("source %q", rec.Source)
		}
	case record.KindOther:
		if len(rec.Attrs) != 0 {
			t.Fatalf("other record with attributes")
		}
	default:
		t.Fatalf("unexpected kind %v", rec.Kind)
	}
	if rec.Level > record.LevelError {
		t.Fatalf("bad level %d", rec.Level)
	}
	seen := map[string]bool{}
	for _, a := range rec.Attrs {
		if strings.HasPrefix(a.Key, "apigateway.") && a.Key != KeyCanary && !strings.HasPrefix(a.Key, "apigateway.execution.") {
			if seen[a.Key] {
				t.Fatalf("duplicate attribute %s in %q", a.Key, msg)
			}
			seen[a.Key] = true
		}
		if a.Key == KeyDuration && (a.Kind != record.Int || a.Int < 0) {
			t.Fatalf("bad duration %d", a.Int)
		}
	}
}

// seedLines adds every testdata line to f.
func seedLines(f *testing.F, prefix string) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, file := range files {
		if prefix != "" && !strings.HasPrefix(filepath.Base(file), prefix) {
			continue
		}
		for _, c := range readCases(f, file) {
			f.Add([]byte(c.Line))
		}
	}
}

func fuzzParse(t *testing.T, p *Parser, group string, line []byte) *record.Record {
	// No spare capacity: a read past the end of the line panics here, as
	// it would on a line at the end of its arena, instead of reading the
	// neighbour's bytes unnoticed.
	line = line[:len(line):len(line)]
	msg := append([]byte(nil), line...)
	rec := &record.Record{Origin: &record.Origin{LogGroup: group}, Message: line, Timestamp: 7}
	p.Parse(&record.Batch{}, rec)
	checkParsed(t, rec, msg)
	// parsing the same record again (reusing its attributes) gives the same result
	again := &record.Record{Origin: rec.Origin, Message: line, Timestamp: 7, Attrs: rec.Attrs[:0:cap(rec.Attrs)]}
	first := append([]record.Attr(nil), rec.Attrs...)
	p.Parse(&record.Batch{}, again)
	if len(again.Attrs) != len(first) {
		t.Fatalf("reparse: %d attributes, then %d", len(first), len(again.Attrs))
	}
	for i := range first {
		if first[i].Key != again.Attrs[i].Key || !bytes.Equal(first[i].Str, again.Attrs[i].Str) || first[i].Int != again.Attrs[i].Int {
			t.Fatalf("reparse differs at %d: %+v vs %+v", i, first[i], again.Attrs[i])
		}
	}
	return rec
}

func FuzzJSONAccess(f *testing.F) {
	seedLines(f, "access_")
	f.Add([]byte(`{"a":{"b":{"c":[1,{"d":"}"}]}},"status":"5\u0030\u0030","x":"\ud83d\ude00\ud800"}`))
	f.Add([]byte(`{"status":"200","status":"-","requestTime":"99999999999999999999"}`))
	detect := mustParser(f, Config{})
	tmpl := mustParser(f, Config{Formats: []FormatRule{{LogGroup: "api-gateway-dd", Format: FormatDatadog}}})
	f.Fuzz(func(t *testing.T, line []byte) {
		r := fuzzParse(t, detect, "api-gateway-json", line)
		if len(trimSpace(line)) > 0 && trimSpace(line)[0] == '{' && r.Kind != record.KindAccess && r.Kind != record.KindUnparsed {
			t.Fatalf("kind %v", r.Kind)
		}
		fuzzParse(t, tmpl, "api-gateway-dd", line)
	})
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{FormatRESTCLF, FormatRESTCLF2, FormatRESTCLFNoExt, FormatRESTCSVNoExt, FormatServerlessREST, FormatWebSocketCLF, FormatWebSocketCLFNoStatus, FormatWebSocketCSV, FormatRESTJSON, FormatRESTXML, FormatRESTCSV, FormatHTTPCLF, FormatHTTPJSON, FormatHTTPXML, FormatHTTPCSV, FormatDatadog} {
		f.Add(s, []byte(benchCLFLine))
		f.Add(s, []byte(benchDatadogLine))
	}
	f.Add(`$context.a$context.b$context.c`, []byte("abcdef"))
	// adjacent variables split by their shapes, requestTime's inner space
	f.Add(`$context.requestId https://$context.domainName$context.path $context.status`, []byte("r1 https://api.example.com/prod/pets/7 200"))
	f.Add(`$context.requestId $context.httpMethod$context.path$context.status$context.responseLength`, []byte("r1 GET/pets/7200512"))
	f.Add(`$context.requestId$context.status`, []byte("c0475a28-8de8-11e7-8d3f-4183da788123200"))
	f.Add(`$context.requestId $context.status$context.responseLatency`, []byte("r1 -12.5"))
	f.Add(`$context.requestTime $context.routeKey $context.status`, []byte("03/Dec/2026:19:00:00 +0000 GET /pets 200"))
	f.Add(`$context.requestTime$context.requestTimeEpoch:$context.requestId`, []byte("03/Dec/2026:19:00:00 -07001796324400000:r1"))
	// references begun and not completed are refused; '}' after one is literal
	f.Add(`$context.requestId ${context.status`, []byte("r1 ${context.status"))
	f.Add(`{"a":"$context.requestId","b":"${context}"} $context.`, []byte(`{"a":"r1","b":"x"}`))
	f.Add(`$context.requestId $context.status}`, []byte("r1 200}"))
	f.Add(`${context.requestId} "$context.authorizer.claims['cognito:username']" $context.requestOverride.header.x-y`, []byte(`r "u" h`))
	f.Add(`{"a":{"b":"$context.status x $context.requestId"},"c":$context.responseLatency}`, []byte(`{"a":{"b":"200 x r"},"c":12}`))
	f.Fuzz(func(t *testing.T, format string, line []byte) {
		fm, err := CompileFormat(format)
		if err != nil {
			return
		}
		if len(fm.Variables()) == 0 {
			t.Fatal("compiled a format without variables")
		}
		fm.Extract(line, func(name string, value []byte) {
			if name == "" {
				t.Fatal("empty variable name")
			}
		})
		p, err := New(Config{Formats: []FormatRule{{LogGroup: "g", Format: format}}})
		if err != nil {
			t.Fatalf("format compiled but config invalid: %v", err)
		}
		fuzzParse(t, p, "g", line)
	})
}

func FuzzCLF(f *testing.F) {
	seedLines(f, "access_rest")
	seedLines(f, "access_http")
	f.Add([]byte(benchHTTPCLFLine))
	f.Add([]byte(`1.1.1.1 - - [] "  " - - - -`))
	f.Add([]byte(`198.51.100.4 - - [29/Jun/2023:12:01:02 +0000] "CONNECT $connect L0SM9cOFvHcCIhw=" 200 L0SMAFDNoAMFo1A=`))
	f.Add([]byte(`198.51.100.4 - - [29/Jun/2023:12:01:02 +0000] "DISCONNECT $disconnect L0SM9cOFvHcCIhw=" L0SMAFDNoAMFo1A=`))
	detect := mustParser(f, Config{})
	rest := mustParser(f, Config{Formats: []FormatRule{{LogGroup: "clf", Format: FormatRESTCLF}}})
	http := mustParser(f, Config{Formats: []FormatRule{{LogGroup: "clf", Format: FormatHTTPCLF}}})
	f.Fuzz(func(t *testing.T, line []byte) {
		fuzzParse(t, detect, "api-gateway-clf", line)
		fuzzParse(t, rest, "clf", line)
		fuzzParse(t, http, "clf", line)
	})
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte(`203.0.113.7,-,-,29/Jun/2023:12:01:02 +0000,PUT,/pets/{id},HTTP/1.1,201,512,c0475a28,Dt6vFHHzNjMFahw=`))
	f.Add([]byte(`203.0.113.7,29/Jun/2023:12:01:02 +0000,GET,GET /pets/{id},HTTP/1.1,200,512,Dt6vFHHzNjMFahw=`))
	f.Add([]byte(`203.0.113.7,AIDAEXAMPLE,arn:aws:iam::123456789012:user/alice,29/Jun/2023:12:01:02 +0000,GET,/pets,HTTP/1.1,200,512,c0475a28`))
	f.Add([]byte(`requestId: c0475a28, ip: 203.0.113.7, caller: -, user: -, requestTime: 29/Jun/2023:12:01:02 +0000, httpMethod: GET, resourcePath: /pets, status: 200, protocol: HTTP/1.1, responseLength: 512`))
	f.Add([]byte(`198.51.100.4,-,-,29/Jun/2023:12:01:04 +0000,MESSAGE,sendmessage,L0SM9cOFvHcCIhw=,500,L0SMBFDNoAMFo1A=`))
	f.Add([]byte(`,,,,,,,,,,`))
	detect := mustParser(f, Config{})
	f.Fuzz(func(t *testing.T, line []byte) {
		fuzzParse(t, detect, "api-gateway-csv", line)
	})
}

func FuzzXML(f *testing.F) {
	seedLines(f, "access_rest")
	f.Add([]byte(`<request id="x"><a><b><c>1</c></b></a><status>200</status><e/><f></f><g>a<b</g></request>`))
	f.Add([]byte(`<request id='x' status="404"> <ip>1.2.3.4</ip>`))
	detect := mustParser(f, Config{})
	xml := mustParser(f, Config{Formats: []FormatRule{{LogGroup: "x", Format: FormatRESTXML}}})
	f.Fuzz(func(t *testing.T, line []byte) {
		fuzzParse(t, detect, "api-gateway-xml", line)
		fuzzParse(t, xml, "x", line)
	})
}

func FuzzExecution(f *testing.F) {
	seedLines(f, "exec_")
	f.Add([]byte("(a) Received response. Status: 99999999999999999999, Integration latency: -5 ms"))
	f.Add([]byte("(a) API Key  not authorized because method ''"))
	f.Add([]byte("(Dwz4lGRyvHcF0KQ=) Method completed with status: 500"))
	f.Add([]byte("(Iq9g+wFD/AMFo1A=) WebSocket Request Route: [$connect]"))
	f.Add([]byte("(/pets) (a=b) (Dwz4lGRyvHcF0K=Q)"))
	p := mustParser(f, Config{})
	c := NewCorrelator(CorrelatorConfig{MaxOpen: 64})
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, g := range []string{"API-Gateway-Execution-Logs_abc/prod", "/aws/apigateway/abcde12345/prod/Canary"} {
			rec := fuzzParse(t, p, g, line)
			if g[0] == 'A' && rec.Kind != record.KindExecution && rec.Kind != record.KindUnparsed {
				t.Fatalf("kind %v in an execution group", rec.Kind)
			}
			if s, ok := c.Observe(rec); ok {
				if s.Kind != record.KindSummary {
					t.Fatal("summary kind")
				}
				if err := recordAttrsOK(&s); err != nil {
					t.Fatal(err)
				}
			}
		}
		id, ev, ok := ParseExecutionLine(line)
		if ev != EventUnknown && !ok || (id != nil && !validReqID(id)) {
			t.Fatalf("ParseExecutionLine inconsistent: %q %v %v", id, ev, ok)
		}
	})
}

func FuzzRoute(f *testing.F) {
	for _, g := range []string{"API-Gateway-Execution-Logs_abc/prod", "API-Gateway-Execution-Logs_abc/prod/Canary", "/aws/apigateway/abcde12345/prod", "/aws/apigateway/x", "api-gateway", "/aws/http-api/x", "x", ""} {
		f.Add(g, "/aws/*-api/[a-z]*", "amazon-apigateway-s")
	}
	f.Fuzz(func(t *testing.T, group, pattern, stream string) {
		r := RouteOf(&record.Origin{LogGroup: group, Stream: stream})
		if r.Kind > RouteWebSocketExecution {
			t.Fatal("kind")
		}
		if api, stage, _, ok := ExecutionGroup(group); ok && (api == "" || stage == "" || strings.Contains(stage, "/")) {
			t.Fatalf("ExecutionGroup(%q) = %q %q", group, api, stage)
		}
		if validGlob(pattern) != nil {
			return
		}
		got := globMatch(pattern, group)
		// without '/' in the name our '*' behaves like path.Match's
		if !strings.Contains(group, "/") {
			if want, err := path.Match(pattern, group); err == nil && want != got {
				t.Fatalf("globMatch(%q, %q) = %v, path.Match says %v", pattern, group, got, want)
			}
		}
	})
}

// TestFuzzCorpusLayout keeps the committed corpora where go test finds them.
func TestFuzzCorpusLayout(t *testing.T) {
	for _, name := range []string{"FuzzJSONAccess", "FuzzTemplate", "FuzzCLF", "FuzzCSV", "FuzzXML", "FuzzExecution", "FuzzRoute"} {
		if _, err := os.Stat(filepath.Join("testdata", "fuzz", name)); err != nil {
			t.Errorf("missing corpus for %s: %v", name, err)
		}
	}
}
