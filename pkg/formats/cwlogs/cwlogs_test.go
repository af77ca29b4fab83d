package cwlogs

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// Samples as documented and observed
// (docs/wire-formats.md#cloudwatch-logs-subscription-payload).
const dataMessage = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"API-Gateway-Execution-Logs_a1b2c3d4e5/prod","logStream":"14ff1bdcd999b9026e06c0c7e1fe47d5","subscriptionFilters":["my-filter"],"logEvents":[{"id":"31953106606966983378809025079804211143289615424298221568","timestamp":1432826855000,"message":"(3323ffe5-6ddf-45c8-896a-b45ec2284cc0) Method completed with status: 200"}],"policyLevel":"ACCOUNT_LEVEL_POLICY"}`
const controlMessage = `{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1741312971934,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}`
const extracted = `{"messageType":"DATA_MESSAGE","owner":"111122223333","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":5,"message":"{\"status\":\"200\"}","extractedFields":{"@aws.account":"999888777666","@aws.region":"us-west-2"}}]}`

type seen struct {
	envs   []Envelope
	events []string
	accts  []string
}

func parseAll(t *testing.T, data []byte) (seen, error) {
	t.Helper()
	var s seen
	var p fastjson.Parser
	err := Parse(&p, data, func(e *Envelope) error { s.envs = append(s.envs, *e); return nil },
		func(e *Envelope, ev *Event) error {
			s.events = append(s.events, string(ev.ID)+"|"+string(ev.Message))
			s.accts = append(s.accts, string(ev.Account)+"/"+string(ev.Region))
			return nil
		})
	return s, err
}

func TestParseRealSamples(t *testing.T) {
	t.Parallel()
	s, err := parseAll(t, []byte(dataMessage))
	require.NoError(t, err)
	require.Len(t, s.envs, 1)
	assert.Equal(t, Envelope{MessageType: Data, Owner: "123456789012", LogGroup: "API-Gateway-Execution-Logs_a1b2c3d4e5/prod", LogStream: "14ff1bdcd999b9026e06c0c7e1fe47d5"}, s.envs[0])
	assert.Equal(t, []string{"31953106606966983378809025079804211143289615424298221568|(3323ffe5-6ddf-45c8-896a-b45ec2284cc0) Method completed with status: 200"}, s.events)

	s, err = parseAll(t, []byte(controlMessage))
	require.NoError(t, err)
	assert.Equal(t, Control, s.envs[0].MessageType)
	assert.Empty(t, s.events, "control messages carry no log events")

	s, err = parseAll(t, []byte(extracted))
	require.NoError(t, err)
	assert.Equal(t, []string{`1|{"status":"200"}`}, s.events, "escaped quotes are unescaped")
	assert.Equal(t, []string{"999888777666/us-west-2"}, s.accts)
}

func TestParseConcatenatedDocuments(t *testing.T) {
	t.Parallel()
	for name, sep := range map[string]string{"no delimiter": "", "newline": "\n", "crlf and spaces": "\r\n  "} {
		t.Run(name, func(t *testing.T) {
			s, err := parseAll(t, []byte(dataMessage+sep+controlMessage+sep+extracted+sep))
			require.NoError(t, err)
			assert.Len(t, s.envs, 3)
			assert.Len(t, s.events, 2)
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"truncated":           dataMessage[:len(dataMessage)-10],
		"broken json":         `{"messageType":"DATA_MESSAGE","logEvents":[{"message":}]}`,
		"events not array":    `{"messageType":"DATA_MESSAGE","logEvents":{}}`,
		"event no message":    `{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1"}]}`,
		"event not object":    `{"messageType":"DATA_MESSAGE","logEvents":[1]}`,
		"data without events": `{"messageType":"DATA_MESSAGE"}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseAll(t, []byte(in))
			require.Error(t, err)
		})
	}
	_, err := parseAll(t, []byte(`{"requestId":"abc","status":200}`))
	assert.ErrorIs(t, err, ErrNotEnvelope, "an access-log line is not an envelope")
	_, err = parseAll(t, []byte(`   `))
	assert.ErrorIs(t, err, ErrNotEnvelope)
}

func TestGunzip(t *testing.T) {
	t.Parallel()
	payload := []byte(strings.Repeat(dataMessage, 20))
	out, err := Gunzip(nil, corpus.Gzip(payload), 1<<20)
	require.NoError(t, err)
	assert.Equal(t, payload, out)

	// Multi-member: each CloudWatch record is its own member in S3 objects.
	multi := append(corpus.Gzip([]byte(dataMessage)), corpus.Gzip([]byte(controlMessage))...)
	out, err = Gunzip(make([]byte, 0, 16), multi, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, dataMessage+controlMessage, string(out))

	// Nested layers are peeled.
	out, err = Gunzip(nil, corpus.Gzip(corpus.Gzip(payload)), 1<<20)
	require.NoError(t, err)
	assert.Equal(t, payload, out)

	// Not gzip: returned as is.
	out, err = Gunzip(nil, []byte("plain"), 10)
	require.NoError(t, err)
	assert.Equal(t, "plain", string(out))
}

func TestGunzipBadInput(t *testing.T) {
	t.Parallel()
	full := corpus.Gzip(bytes.Repeat([]byte("a"), 10_000))
	_, err := Gunzip(nil, full[:len(full)/2], 1<<20)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "truncated")

	bomb := corpus.Gzip(make([]byte, 10<<20))
	_, err = Gunzip(nil, bomb, 1<<20)
	assert.True(t, errors.Is(err, ErrTooLarge), "got %v", err)

	_, err = Gunzip(nil, []byte{0x1f, 0x8b, 0, 0}, 100)
	require.Error(t, err)

	deep := []byte("x")
	for i := 0; i < maxLayers+1; i++ {
		deep = corpus.Gzip(deep)
	}
	_, err = Gunzip(nil, deep, 100)
	require.Error(t, err)
}

func TestUnknownMessageTypeIsAnError(t *testing.T) {
	t.Parallel()
	for _, mt := range []string{`"DATA_MESSAGE_V2"`, `""`, `null`, `7`} {
		doc := `{"messageType":` + mt + `,"owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1,"message":"m"}]}`
		s, err := parseAll(t, []byte(doc))
		require.ErrorIs(t, err, ErrUnknownMessageType, mt)
		assert.Contains(t, err.Error(), mt, "the reason names the type")
		assert.Len(t, s.envs, 1, "the envelope is reported, so that the caller knows its log group")
		assert.Empty(t, s.events, "events of an unknown type are not read as data")
	}
	_, err := parseAll(t, []byte(`{"owner":"1","logEvents":[{"id":"1","timestamp":1,"message":"m"}]}`))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNotEnvelope, "logEvents without a type are not a log line either")
}

func TestMalformedDocumentEmitsNothing(t *testing.T) {
	t.Parallel()
	doc := `{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"m"},{"id":"2"}]}`
	s, err := parseAll(t, []byte(doc))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "logEvents[1] has no message")
	assert.Empty(t, s.events, "the good first event is not emitted before the second is found bad")
}

func TestObjectEnd(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		`{}`: 2, `{"a":"}"}{`: 9, `{"a":"\\"}x`: 10, `{"a":[{"b":1}]} `: 15, "{\n}\n": 3,
	} {
		n, err := ObjectEnd([]byte(in))
		require.NoError(t, err, in)
		assert.Equal(t, want, n, in)
	}
	_, err := ObjectEnd([]byte(`{"a":"}`))
	assert.ErrorIs(t, err, ErrTruncated)
	_, err = ObjectEnd([]byte(` {}`))
	assert.ErrorIs(t, err, ErrNotEnvelope)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(dataMessage))
	f.Add([]byte(controlMessage + "\n" + extracted))
	f.Add([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"\u00e9\ud800"}]}`))
	f.Add([]byte(`{"a":"}"}{`))
	for _, ts := range timestampCases {
		f.Add([]byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"m"` + ts.field + `}]}`))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p fastjson.Parser
		n := 0
		_ = Parse(&p, data, nil, func(_ *Envelope, ev *Event) error {
			n++
			_ = string(ev.Message)
			// An event has a time or says why not, never neither.
			if (ev.TimestampError == "") != (ev.Timestamp > 0) {
				t.Fatalf("timestamp %d with error %q", ev.Timestamp, ev.TimestampError)
			}
			return nil
		})
	})
}

// timestampCases are event timestamps as producers write them: the time
// kept when reading it loses nothing, otherwise why not.
var timestampCases = []struct {
	field string // what follows "message":"m" in the event
	ms    int64
	err   string
}{
	{`,"timestamp":1796328482099`, 1796328482099, ""},
	{`,"timestamp":"1796328482099"`, 1796328482099, ""},
	{`,"timestamp":1796328482099.0`, 1796328482099, ""},
	{`,"timestamp":1.796328482099e12`, 1796328482099, ""},
	{`,"timestamp":1796328482099.5`, 0, TimestampNotWholeMS},
	{`,"timestamp":1e300`, 0, TimestampNotWholeMS},
	{`,"timestamp":"1796328482099.5"`, 0, TimestampNotANumber},
	{`,"timestamp":"+5"`, 0, TimestampNotANumber},
	{`,"timestamp":"soon"`, 0, TimestampNotANumber},
	{`,"timestamp":-5`, 0, TimestampNotPositive},
	{`,"timestamp":"-5"`, 0, TimestampNotPositive},
	{`,"timestamp":"-"`, 0, TimestampNotANumber},
	{`,"timestamp":"--5"`, 0, TimestampNotANumber},
	{`,"timestamp":0`, 0, TimestampNotPositive},
	{`,"timestamp":null`, 0, TimestampNotANumber},
	{`,"timestamp":true`, 0, TimestampNotANumber},
	{``, 0, TimestampMissing},
}

// An event timestamp that is not an integer is read when that loses
// nothing; otherwise the event says why it has none, instead of being
// delivered silently undated (or dated 1969).
func TestEventTimestamps(t *testing.T) {
	for _, c := range timestampCases {
		var p fastjson.Parser
		var got []Event
		doc := `{"messageType":"DATA_MESSAGE","logEvents":[{"message":"m"` + c.field + `}]}`
		require.NoError(t, ParseDocument(&p, []byte(doc), nil, func(_ *Envelope, ev *Event) error {
			got = append(got, *ev)
			return nil
		}), doc)
		require.Len(t, got, 1)
		assert.Equal(t, c.ms, got[0].Timestamp, doc)
		assert.Equal(t, c.err, got[0].TimestampError, doc)
	}
}

func FuzzGunzip(f *testing.F) {
	f.Add(corpus.Gzip([]byte(dataMessage)))
	f.Add(append(corpus.Gzip([]byte("a")), corpus.Gzip([]byte("b"))...))
	f.Add(bytes.Join([][]byte{corpus.Gzip([]byte("a")), corpus.Gzip([]byte("b")), nil}, []byte("\r\n")))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Gunzip(nil, data, 1<<16)
		if err == nil && len(out) > 1<<16 && IsGzip(data) {
			t.Fatalf("output of %d bytes exceeds the limit", len(out))
		}
	})
}

func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1b2c3d4e5/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"id":"3195310660696698337880902507980421114328961542429822156` + string(rune('0'+i%10)) + `","timestamp":1432826855000,"message":"{\"apiId\":\"a1b2c3d4e5\",\"stage\":\"prod\",\"requestId\":\"3323ffe5-6ddf-45c8-896a-b45ec2284cc0\",\"ip\":\"203.0.113.7\",\"caller\":\"-\",\"user\":\"-\",\"requestTime\":1732850000000,\"httpMethod\":\"GET\",\"resourcePath\":\"/pets/{petId}\",\"status\":404,\"protocol\":\"HTTP/1.1\",\"responseLength\":512}"}`)
	}
	sb.WriteString(`]}`)
	data := corpus.Gzip([]byte(sb.String()))
	var p fastjson.Parser
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := Gunzip(buf, data, 1<<24)
		if err != nil {
			b.Fatal(err)
		}
		buf = out
		if err := Parse(&p, out, nil, func(*Envelope, *Event) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// TestGunzipMembersSeparatedByLineEnds: a delimiter processor writes "\n"
// after each record, and CloudWatch Logs records are gzip members: a
// record (or a dead letter, or an SQS body) may hold a member and a line
// end, or several members with line ends between them. Each member is
// read; a line end was taken for a broken gzip header, and the whole
// record, its good member included, dead-lettered ("truncated gzip").
// What is neither a line end nor a member is still an error.
func TestGunzipMembersSeparatedByLineEnds(t *testing.T) {
	t.Parallel()
	a, b := corpus.Gzip([]byte(dataMessage)), corpus.Gzip([]byte(controlMessage))
	for name, in := range map[string][]byte{
		"member, line end":             append(append([]byte{}, a...), '\n'),
		"members with line ends":       bytes.Join([][]byte{a, b, nil}, []byte("\r\n")),
		"inside another layer of gzip": corpus.Gzip(bytes.Join([][]byte{a, b}, []byte("\n\n"))),
	} {
		out, err := Gunzip(nil, in, 1<<20)
		require.NoError(t, err, name)
		want := dataMessage
		if !strings.HasPrefix(name, "member,") {
			want += controlMessage
		}
		assert.Equal(t, want, string(out), name)
	}
	_, err := Gunzip(nil, bytes.Join([][]byte{a, []byte("junk"), b}, []byte("\n")), 1<<20)
	require.Error(t, err)
	_, err = Gunzip(nil, append(append(append([]byte{}, a...), '\n'), b[:5]...), 1<<20)
	require.ErrorContains(t, err, "truncated")
}
