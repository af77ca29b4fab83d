package s3obj

import (
	"bytes"
	"testing"
)

// runStepwise is jsonState.run as it was before its byte loop over
// strings: a vectorised search for the next quote, then for a backslash
// before it, stepping over one escape at a time. The differential fuzz test
// holds the byte loop to it.
func (st *jsonState) runStepwise(p []byte) int {
	i := 0
	for i < len(p) {
		if st.esc {
			st.esc = false
			i++
			continue
		}
		if st.inStr {
			j := bytes.IndexByte(p[i:], '"')
			if j < 0 {
				if bytes.IndexByte(p[i:], '\\') >= 0 && p[len(p)-1] == '\\' {
					st.esc = trailingBackslashes(p[i:])%2 == 1
				}
				return -1
			}
			if k := bytes.IndexByte(p[i:i+j], '\\'); k >= 0 {
				i += k + 1
				st.esc = true
				continue
			}
			i += j + 1
			st.inStr = false
			continue
		}
		switch p[i] {
		case '"':
			st.inStr = true
		case '{', '[':
			st.depth++
		case '}', ']':
			st.depth--
			if st.depth <= 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

func trailingBackslashes(p []byte) int {
	n := 0
	for i := len(p) - 1; i >= 0 && p[i] == '\\'; i-- {
		n++
	}
	return n
}

// FuzzJSONStateRun: fed the same bytes in the same pieces (a document cut
// where a buffer refill would cut it), the byte loop ends every
// piece in the state the stepwise scan does and finds the same end.
func FuzzJSONStateRun(f *testing.F) {
	for _, s := range []string{
		`{"a":"b"}`,
		`{"message":"{\"apiId\":\"x\",\"q\":\"a\\\\\"b\"}","n":[1,{"x":"}"}]}`,
		`{"a":"\\\\\\\\"}`,
		`{"a":"\\\"}\\"}`,
		`{"a":"x\\`,
		`{"a":"\\\\\\\"","b":"}"}tail`,
		`{"esc":"` + string(envelopeDoc(group, "s", ev{"1", 1, `{"requestId":"r1","status":200}`}, ev{"2", 2, "x\"y\\z"})) + `"}`,
	} {
		for _, cut := range []uint16{0, 1, 7, 9, 10, 11} {
			f.Add([]byte(s), cut, uint16(3))
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, cut, step uint16) {
		var fast, slow jsonState
		pieces := split(doc, int(cut), int(step))
		off := 0
		for _, p := range pieces {
			nf, ns := fast.run(p), slow.runStepwise(p)
			if nf != ns {
				t.Fatalf("%q in pieces %q: piece at %d ends at %d, stepwise at %d", doc, pieces, off, nf, ns)
			}
			if nf >= 0 {
				return
			}
			if fast != slow {
				t.Fatalf("%q in pieces %q: after the piece at %d the state is %+v, stepwise %+v", doc, pieces, off, fast, slow)
			}
			off += len(p)
		}
	})
}

// split cuts doc first at cut, then every step bytes (all of it at once
// when step is 0).
func split(doc []byte, cut, step int) [][]byte {
	if cut > len(doc) {
		cut = len(doc)
	}
	out := [][]byte{doc[:cut]}
	for rest := doc[cut:]; len(rest) > 0; {
		n := len(rest)
		if step > 0 {
			n = min(n, step)
		}
		out, rest = append(out, rest[:n]), rest[n:]
	}
	return out
}

// BenchmarkJSONStateRun scans CloudWatch envelopes of JSON access logs for
// their end, as objectItem does for every envelope of an archive.
func BenchmarkJSONStateRun(b *testing.B) {
	evs := make([]ev, 0, 100)
	for i := range 100 {
		evs = append(evs, ev{"1", int64(i), `{"apiId":"cr12t30x5e","stage":"prod","requestId":"59a611cd-6d8a-4b4d-b87c-4a1ba1498571","ip":"2001:db8:44f7:d0de::6db","caller":"-","user":"-","requestTime":1796298531416,"httpMethod":"GET","resourcePath":"/pets/{petId}","status":200,"protocol":"HTTP/1.1","responseLength":1234,"userAgent":"Mozilla/5.0 (X11; Linux x86_64) \"quoted\""}`})
	}
	doc := envelopeDoc(group, "s", evs...)
	for _, m := range []struct {
		name string
		run  func(*jsonState, []byte) int
	}{{"byte-loop", (*jsonState).run}, {"stepwise", (*jsonState).runStepwise}} {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				var st jsonState
				if m.run(&st, doc) != len(doc) {
					b.Fatal("end not found")
				}
			}
		})
	}
}
