package cwlogs

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// calls records the callbacks of one read of a document.
type calls struct {
	envs   []Envelope
	events []string
}

func record(c *calls) (func(*Envelope) error, func(*Envelope, *Event) error) {
	return func(e *Envelope) error { c.envs = append(c.envs, *e); return nil },
		func(e *Envelope, ev *Event) error {
			c.envs = append(c.envs, *e)
			c.events = append(c.events, fmt.Sprintf("%q %d %q %q %q", ev.ID, ev.Timestamp, ev.Message, ev.Account, ev.Region))
			return nil
		}
}

// agree fails unless the scanner, when it accepts doc, calls back exactly
// as ParseDocument does. It reports whether the scanner accepted.
func agree(t *testing.T, sc *Scanner, doc []byte) bool {
	t.Helper()
	if !sc.Scan(doc) {
		return false
	}
	var fast, slow calls
	require.NoError(t, sc.Emit(record(&fast)))
	var p fastjson.Parser
	onEnv, onEvent := record(&slow)
	require.NoError(t, ParseDocument(&p, doc, onEnv, onEvent), "scanner accepted what the parser refuses: %q", doc)
	assert.Equal(t, slow, fast, "%q", doc)
	return true
}

// The scanner must take the documents CloudWatch writes (or it is not the
// hot path) and agree with the parser on them.
func TestScannerReadsTheUsualDocuments(t *testing.T) {
	var sc Scanner
	for _, doc := range []string{
		dataMessage,
		extracted,
		`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":[],"logEvents":[]}`,
		"\n {\"messageType\" : \"DATA_MESSAGE\", \"logEvents\" : [ {\"message\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\u20ac\" , \"timestamp\" : 5 } ] , \"x\":[1,2.5e3,true,null,[\"q\"]]}\r\n",
		`{"logEvents":[{"message":"m","id":"7","timestamp":1,"extractedFields":{"@aws.region":"eu-west-1","other":"x"}}],"messageType":"DATA_MESSAGE","owner":"o"}`,
	} {
		assert.True(t, agree(t, &sc, []byte(doc)), "declined %s", doc)
	}
	// Every envelope of the corpus that the parser reads as data, the
	// scanner reads too, unless it holds what the scanner leaves to the
	// parser.
	cases, err := corpus.Cases()
	require.NoError(t, err)
	n := 0
	for _, c := range cases {
		req, err := c.Render(time.Unix(1_800_000_000, 0))
		require.NoError(t, err)
		for _, d := range req.Data {
			for _, doc := range documents(d) {
				if agree(t, &sc, doc) {
					n++
				}
			}
		}
	}
	assert.Greater(t, n, 10, "envelopes of the corpus read by the scanner")
}

// documents are the JSON objects of a Firehose record's data, each alone.
func documents(data string) [][]byte {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil
	}
	text, err := Gunzip(nil, raw, 1<<24)
	if err != nil {
		return nil
	}
	var out [][]byte
	for _, line := range bytes.Split(text, []byte("\n")) {
		for rest := bytes.TrimSpace(line); len(rest) > 0; rest = bytes.TrimSpace(rest) {
			end, err := ObjectEnd(rest)
			if err != nil {
				out = append(out, rest)
				break
			}
			out = append(out, rest[:end])
			rest = rest[end:]
		}
	}
	return out
}

// What the scanner leaves to the parser, it declines whole.
func TestScannerDeclinesWhatItDoesNotRead(t *testing.T) {
	var sc Scanner
	for _, doc := range []string{
		controlMessage,
		`{"messageType":"FUTURE_MESSAGE","logEvents":[]}`,
		`{"logEvents":[]}`,
		`{"messageType":"DATA_MESSAGE"}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","message":"b"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","extractedFields":{"@aws.account":"1","@aws.account":"2"}}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","extractedFields":{"@aws.region":1}}]}`,
		`{"messageType":"DATA_MESSAGE","messageType":"DATA_MESSAGE","logEvents":[]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","id":7}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","timestamp":1.5}]}`,
		// A timestamp missing or not positive: the parser says why.
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","timestamp":-5}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","timestamp":0}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","id":"1"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","timestamp":"1796328482099"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","timestamp":012}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a","timestamp":1234567890123456789}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\ud83d\ude00"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\x"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\u12"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"mess\u0061ge":"a"}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[],"x":{"nested":1}}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[]}{}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[]`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a"}],"n":01}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"a"}],"n":NaN}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"unclosed}]}`,
	} {
		assert.False(t, sc.Scan([]byte(doc)), "accepted %s", doc)
	}
}

// The scanner's buffer is reused: what Emit gives is the document scanned
// last, whatever came before.
func TestScannerReuse(t *testing.T) {
	var sc Scanner
	require.True(t, agree(t, &sc, []byte(extracted)))
	require.False(t, sc.Scan([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"half`)))
	require.True(t, agree(t, &sc, []byte(dataMessage)))
}

func FuzzScannerAgreesWithParse(f *testing.F) {
	for _, ts := range timestampCases {
		f.Add([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"m"` + ts.field + `}]}`))
	}
	for _, doc := range []string{dataMessage, controlMessage, extracted,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00","timestamp":-0}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"x","timestamp":999999999999999999,"id":""}],"a":[[],[1e-5,"s\"\\"]]}`,
		// Shapes the S3 reader's own single-pass parser was tried on
		// before it gave way to this one.
		`{"logEvents":[{"id":31953106606966983378809025079804211143289615424298221568,"timestamp":1432826855000,"message":"x"}],"logGroup":"g","logStream":"s","messageType":"DATA_MESSAGE","owner":"1","subscriptionFilters":["f"]}`,
		`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[],"policyLevel":"ACCOUNT_LEVEL_POLICY"}`,
		` { "messageType" : "DATA_MESSAGE" , "logEvents" : [ { "message" : "\ud83d\ude00" , "timestamp" : 1.5 } ] } `,
		`{"messageType":"DATA_MESSAGE","x":[1,{"y":null},true,false,-0.5e3],"logEvents":[{"id":"1","timestamp":-7,"message":"m","k":{"z":[]}}]}`,
		`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"bad \q escape"}]}`,
	} {
		f.Add([]byte(doc))
	}
	if cases, err := corpus.Cases(); err == nil {
		for _, c := range cases {
			if req, err := c.Render(time.Unix(1_800_000_000, 0)); err == nil {
				for _, d := range req.Data {
					for _, doc := range documents(d) {
						f.Add(doc)
					}
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var sc Scanner
		agree(t, &sc, doc)
	})
}

// Trim drops what a large document made the scanner grow, and only that.
func TestScannerTrim(t *testing.T) {
	var sc Scanner
	big := `{"messageType":"DATA_MESSAGE","logEvents":[{"timestamp":1,"message":"` + strings.Repeat("x", 1<<20) + `"}]}`
	require.True(t, sc.Scan([]byte(big)))
	sc.Trim(1 << 16)
	assert.Zero(t, cap(sc.buf), "a large document's buffer is let go")
	require.True(t, agree(t, &sc, []byte(dataMessage)))
	before := cap(sc.buf)
	sc.Trim(1 << 16)
	assert.Equal(t, before, cap(sc.buf), "a small one's is kept")
}

// The scanner unescapes a word at a time; it must agree with the parser on
// strings dense with escapes of every kind, whatever their place in a word
// (an escape split across two words, runs of backslashes), with one
// scanner reused across documents of growing and shrinking size.
func TestScannerAgreesOnDenseEscapes(t *testing.T) {
	t.Parallel()
	tokens := []string{`\"`, `\\`, `\/`, `\n`, `\t`, `\b`, `\f`, `\r`, `\u0041`, `\u00e9`, `\u20AC`,
		"a", "xyz", "é", "😀", "{", ":", ",", " ", "\x7f", "0123456789"}
	rng := rand.New(rand.NewPCG(9, 10))
	var sc Scanner
	for n := range 20_000 {
		var events []string
		for range 1 + rng.IntN(4) {
			var m strings.Builder
			for range rng.IntN(40 + n%200) {
				m.WriteString(tokens[rng.IntN(len(tokens))])
			}
			events = append(events, fmt.Sprintf(`{"id":"%d","timestamp":1,"message":"%s"}`, n, m.String()))
		}
		doc := `{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[` + strings.Join(events, ",") + `]}`
		require.True(t, agree(t, &sc, []byte(doc)), "%q", doc)
	}
}
