package s3obj

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

const group = "/aws/api-gateway/a1b2c3d4e5/prod"

func TestLayouts(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ms := t0.UnixMilli()
	docA := envelopeDoc(group, "sA", ev{"1", ms, "a1"}, ev{"2", ms + 1, "a2"})
	docB := envelopeDoc(group, "sB", ev{"3", ms + 2, "b1"})
	line1 := `{"requestId":"r1","httpMethod":"GET","status":200}`
	line2 := `{"requestId":"r2","httpMethod":"POST","status":500}`
	clf := `203.0.113.7 - - [04/Mar/2026:05:06:07 +0000] "GET /pets HTTP/1.1" 200 512 r3`
	lineEntry := dlqLine(t, dlq.Entry{Stage: "deliver-logs", Reason: "rejected", Kind: "access", EventID: "77", Timestamp: ms,
		Origin: dlq.Origin{Source: "firehose", RequestID: "req-1", Account: "111122223333", Region: "eu-west-1", LogGroup: group, LogStream: "s9"},
		Data:   []byte("a dead line")})
	rawEntry := dlqLine(t, dlq.Entry{Stage: "decode", Reason: "gunzip: truncated", Kind: "raw", Timestamp: ms,
		Origin: dlq.Origin{Source: "firehose", RequestID: "req-2", Region: "us-east-1"},
		Data:   []byte(b64(corpus.Gzip(docB)))})
	emptyEntry := dlqLine(t, dlq.Entry{Stage: DeadStage, Reason: "object s3://b/k unreadable", Kind: "raw"})
	backup := func(raw []byte) string {
		return fmt.Sprintf(`{"attemptsMade":5,"arrivalTimestamp":%d,"errorCode":"HttpEndpoint.DestinationException","errorMessage":"Unauthorized","attemptEndingTimestamp":%d,"rawData":%q,"subsequenceNumber":0,"dataId":"4960.0"}`, ms, ms+5, b64(raw))
	}

	cases := []struct {
		name     string
		key      string
		data     []byte
		layout   Layout
		comp     string
		messages []string
		ids      []string
		check    func(t *testing.T, events []record.Record, st Stats)
	}{
		{name: "firehose gzip members, no delimiter", key: "fh/2026/03/04/05/stream-1-2026-03-04-05-06-07-abc",
			data: concat(corpus.Gzip(docA), corpus.Gzip([]byte(controlDoc)), corpus.Gzip(docB)), layout: LayoutEnvelopes, comp: "gzip",
			messages: []string{"a1", "a2", "b1"}, ids: []string{"1", "2", "3"},
			check: func(t *testing.T, events []record.Record, st Stats) {
				assert.EqualValues(t, 1, st.Control, "the CONTROL_MESSAGE is dropped and counted")
				assert.Equal(t, group, events[0].Origin.LogGroup)
				assert.Equal(t, "sA", events[0].Origin.LogStream)
				assert.Equal(t, "sB", events[2].Origin.LogStream)
				assert.Equal(t, "123456789012", events[0].Origin.Account)
				assert.Equal(t, "stream", events[0].Origin.Stream, "the delivery stream, from the key")
				assert.Equal(t, ms+1, events[1].Timestamp)
				assert.Same(t, events[0].Origin, events[1].Origin, "events of one envelope share their origin")
			}},
		{name: "firehose plain JSON with newline delimiters", data: concat(docA, []byte("\n"), docB, []byte("\n")),
			layout: LayoutEnvelopes, comp: "none", messages: []string{"a1", "a2", "b1"}},
		{name: "S3 gzip around gzip members", data: corpus.Gzip(concat(corpus.Gzip(docA), corpus.Gzip(docB))), layout: LayoutEnvelopes, comp: "gzip+gzip",
			messages: []string{"a1", "a2", "b1"}},
		{name: "zstd, whatever the extension", key: "x/object.gz", data: zst(concat(docA, docB)), layout: LayoutEnvelopes, comp: "zstd",
			messages: []string{"a1", "a2", "b1"}},
		{name: "access lines, JSON without delimiter", key: "2026/03/04/05/amazon-apigateway-pets-1-2026-03-04-05-06-07-0a1b",
			data: []byte(line1 + line2), layout: LayoutAccessLines, comp: "none", messages: []string{line1, line2},
			check: func(t *testing.T, events []record.Record, _ Stats) {
				assert.Equal(t, "amazon-apigateway-pets", events[0].Origin.Stream, "routes the lines as access logs")
				assert.Empty(t, events[0].Origin.LogGroup)
			}},
		{name: "access lines, JSON with newlines, gzip", data: corpus.Gzip([]byte(line1 + "\n" + line2 + "\n")), layout: LayoutAccessLines, comp: "gzip",
			messages: []string{line1, line2}},
		{name: "access lines, CLF with CRLF", data: []byte(clf + "\r\n\r\n" + clf + "\r\n"), layout: LayoutAccessLines,
			messages: []string{clf, clf}},
		{name: "export task, group and stream from the key", key: "exports/API-Gateway-Execution-Logs_a1b2c3d4e5/prod/0f8e7d6c-1234-4abc-9def-0123456789ab/stream-1/000000.gz",
			data: corpus.Gzip([]byte("2026-03-04T05:06:07.123Z (r1) Method request path: {}\n" +
				"2026-03-04T05:06:08.000Z (r1) Endpoint response body before transformations: {\n  \"a\": 1\n}\n" +
				"2026-03-04T05:06:09Z last\n")),
			layout: LayoutExport, comp: "gzip",
			messages: []string{"(r1) Method request path: {}", "(r1) Endpoint response body before transformations: {\n  \"a\": 1\n}", "last"},
			check: func(t *testing.T, events []record.Record, _ Stats) {
				assert.Equal(t, t0.Add(123*time.Millisecond).UnixMilli(), events[0].Timestamp)
				assert.Equal(t, t0.Add(2*time.Second).UnixMilli(), events[2].Timestamp)
				assert.Equal(t, "exports/API-Gateway-Execution-Logs_a1b2c3d4e5/prod", events[0].Origin.LogGroup)
				assert.Equal(t, "stream-1", events[0].Origin.LogStream)
			}},
		{name: "firehose error backup of CloudWatch records",
			data:   []byte(backup(corpus.Gzip(docA)) + "\n" + backup(corpus.Gzip(docB)) + "\n"),
			layout: LayoutErrorBackup, messages: []string{"a1", "a2", "b1"}, ids: []string{"1", "2", "3"},
			check: func(t *testing.T, events []record.Record, _ Stats) {
				assert.Equal(t, group, events[0].Origin.LogGroup)
			}},
		{name: "firehose error backup of direct access lines", data: []byte(backup([]byte(line1 + "\n"))),
			layout: LayoutErrorBackup, messages: []string{line1},
			check: func(t *testing.T, events []record.Record, _ Stats) {
				assert.Equal(t, ms, events[0].Timestamp, "the arrival time")
			}},
		{name: "gwpipe dead-letter archive", data: corpus.Gzip(concat(lineEntry, rawEntry, emptyEntry)), layout: LayoutDLQ, comp: "gzip",
			messages: []string{"a dead line", "b1"}, ids: []string{"77", "3"},
			check: func(t *testing.T, events []record.Record, st Stats) {
				o := events[0].Origin
				assert.Equal(t, "firehose", o.Source)
				assert.Equal(t, "req-1", o.RequestID)
				assert.Equal(t, "111122223333", o.Account)
				assert.Equal(t, "eu-west-1", o.Region)
				assert.Equal(t, group, o.LogGroup)
				assert.Equal(t, "s9", o.LogStream)
				assert.True(t, o.Replay, "replayed")
				assert.Equal(t, ms, events[0].Timestamp)
				assert.Equal(t, group, events[1].Origin.LogGroup, "the raw record is decoded again")
				assert.Equal(t, "req-2", events[1].Origin.RequestID)
				assert.EqualValues(t, 1, st.Empty, "an entry with nothing to replay is counted")
			}},
		// A write that failed (a full disk, a crash) may leave the last
		// line cut short, its newline at least missing: skipped, counted,
		// never a letter (its batch was refused and sent again).
		{name: "gwpipe dead-letter archive ending with a partial line", data: concat(lineEntry, rawEntry[:len(rawEntry)/2]), layout: LayoutDLQ,
			messages: []string{"a dead line"}, ids: []string{"77"},
			check: func(t *testing.T, _ []record.Record, st Stats) {
				assert.EqualValues(t, 1, st.Partial)
			}},
		{name: "gwpipe dead-letter archive ending without its last newline", data: concat(lineEntry, bytes.TrimSuffix(rawEntry, []byte("\n"))), layout: LayoutDLQ,
			messages: []string{"a dead line"}, ids: []string{"77"},
			check: func(t *testing.T, _ []record.Record, st Stats) {
				assert.EqualValues(t, 1, st.Partial)
			}},
		{name: "empty object", data: nil, layout: LayoutAccessLines},
		{name: "empty gzip", data: corpus.Gzip(nil), layout: LayoutAccessLines, comp: "gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.key
			if key == "" {
				key = "some/key"
			}
			events, dead, st := readAll(t, c.data, Object{Bucket: "b", Key: key, Region: "us-east-1", Source: "replay", Replay: true}, Config{})
			assert.Empty(t, dead)
			assert.Equal(t, c.layout, st.Layout)
			if c.comp != "" {
				assert.Equal(t, c.comp, st.Compression)
			}
			if len(c.messages) == 0 {
				assert.Empty(t, events)
			} else {
				assert.Equal(t, c.messages, messages(events))
			}
			if c.ids != nil {
				assert.Equal(t, c.ids, ids(events))
			}
			for _, e := range events {
				assert.True(t, e.Origin.Replay)
				if e.Origin.Source == "replay" {
					assert.Equal(t, "s3://b/"+key, e.Origin.RequestID)
					assert.Equal(t, "arn:aws:s3:::b", e.Origin.SourceARN)
				}
				assert.NotEmpty(t, e.Origin.Region)
			}
			assert.EqualValues(t, len(c.messages), st.Events)
			assert.EqualValues(t, len(c.data), st.BytesIn)
			if c.check != nil {
				c.check(t, events, st)
			}
		})
	}
}

func TestExtractedFieldsOverrideAccountAndRegion(t *testing.T) {
	t.Parallel()
	doc := `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[` +
		`{"id":"1","timestamp":1,"message":"m1","extractedFields":{"@aws.account":"999888777666","@aws.region":"us-west-2"}},` +
		`{"id":"2","timestamp":2,"message":"m2"}]}`
	events, _, _ := readAll(t, corpus.Gzip([]byte(doc)), Object{Bucket: "b", Key: "k", Region: "eu-west-1"}, Config{})
	require.Len(t, events, 2)
	assert.Equal(t, "999888777666", events[0].Origin.Account)
	assert.Equal(t, "us-west-2", events[0].Origin.Region)
	assert.Equal(t, "123456789012", events[1].Origin.Account)
	assert.Equal(t, "eu-west-1", events[1].Origin.Region)
}

func TestBatchesAreBounded(t *testing.T) {
	t.Parallel()
	docs := [][]byte{}
	for i := range 7 {
		docs = append(docs, corpus.Gzip(envelopeDoc(group, "s", manyEvents(1000, int64(i)*1000)...)))
	}
	data := concat(docs...)
	cases := []struct {
		name       string
		cfg        Config
		maxEvents  int
		maxBatches int
	}{
		{"by count", Config{EventsPerBatch: 300}, 300, 0},
		{"by bytes", Config{EventsPerBatch: 100_000, BatchBytes: 8 << 10}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(data), Object{Bucket: "b", Key: "k"}, c.cfg)
			total := 0
			eachChunk(t, r, func(ch Chunk) {
				if c.maxEvents > 0 {
					assert.LessOrEqual(t, len(ch.Batch.Records), c.maxEvents)
				}
				if c.cfg.BatchBytes > 0 {
					n := 0
					for _, r := range ch.Batch.Records {
						n += len(r.Message) + len(r.EventID)
					}
					last := len(ch.Batch.Records[len(ch.Batch.Records)-1].Message) + 8
					assert.Less(t, n, c.cfg.BatchBytes+last)
				}
				total += len(ch.Batch.Records)
			})
			assert.Equal(t, 7000, total)
		})
	}
}

func TestPoisonObjects(t *testing.T) {
	t.Parallel()
	good := corpus.Gzip(envelopeDoc(group, "s", ev{"1", 1, "ok1"}, ev{"2", 2, "ok2"}))
	good2 := corpus.Gzip(envelopeDoc(group, "s", ev{"3", 3, "ok3"}))
	badEnvelope := []byte(`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"9","timestamp":1,"message":"x"},{"id":"10","timestamp":1}]}`)
	corrupt := corpus.Gzip(envelopeDoc(group, "s", ev{"4", 4, "lost"}))
	corrupt[len(corrupt)-6] ^= 0xff // the CRC no longer matches
	cases := []struct {
		name     string
		data     []byte
		cfg      Config
		messages []string
		reasons  []string // substrings, one per dead letter
		deadData []bool   // whether each dead letter keeps data to replay
	}{
		{name: "not gzip inside a gzip stream", data: concat(good, []byte("this is not gzip at all")),
			messages: []string{"ok1", "ok2"}, reasons: []string{"unreadable after"}, deadData: []bool{false}},
		// A member's checksum is checked at its end, after its data was
		// streamed on: what follows it is lost, and the reason says where.
		{name: "corrupt member mid-way", data: concat(good, corrupt, good2),
			messages: []string{"ok1", "ok2", "lost"}, reasons: []string{"unreadable"}, deadData: []bool{false}},
		{name: "truncated gzip", data: concat(good, good2[:len(good2)-10]),
			messages: []string{"ok1", "ok2"}, reasons: []string{"unreadable"}, deadData: []bool{false}},
		{name: "binary between documents", data: corpus.Gzip(concat(envelopeDoc(group, "s", ev{"1", 1, "ok1"}), []byte("\nGARBAGE\x00LINE\n"), envelopeDoc(group, "s", ev{"3", 3, "ok3"}))),
			messages: []string{"ok1", "ok3"}, reasons: []string{"line 2 (decompressed offset 199): not text: control byte 0x00 at byte 7"}, deadData: []bool{true}},
		{name: "malformed envelope is dead-lettered whole", data: corpus.Gzip(concat(envelopeDoc(group, "s", ev{"1", 1, "ok1"}), badEnvelope, envelopeDoc(group, "s", ev{"3", 3, "ok3"}))),
			messages: []string{"ok1", "ok3"}, reasons: []string{"no message string"}, deadData: []bool{true}},
		{name: "unknown messageType is dead-lettered, not dropped as control", data: corpus.Gzip(concat(envelopeDoc(group, "s", ev{"1", 1, "ok1"}),
			[]byte(`{"messageType":"DATA_MESSAGE_V2","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"5","timestamp":1,"message":"new"}]}`),
			envelopeDoc(group, "s", ev{"3", 3, "ok3"}))),
			messages: []string{"ok1", "ok3"}, reasons: []string{`unknown messageType "DATA_MESSAGE_V2"`}, deadData: []bool{true}},
		{name: "document beyond the limit", cfg: Config{MaxItemBytes: 1 << 10},
			data:     concat(envelopeDoc(group, "s", ev{"1", 1, "ok1"}), envelopeDoc(group, "s", ev{"2", 2, strings.Repeat("x", 5000)}), envelopeDoc(group, "s", ev{"3", 3, "ok3"})),
			messages: []string{"ok1", "ok3"}, reasons: []string{"line 1 (decompressed offset 198): longer than 1024 bytes; skipped"}, deadData: []bool{false}},
		{name: "document cut by the end of the object", data: concat(envelopeDoc(group, "s", ev{"1", 1, "ok1"}), []byte(`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"2"`)),
			messages: []string{"ok1"}, reasons: []string{"line 1 (decompressed offset 198): CloudWatch envelope: truncated JSON document"}, deadData: []bool{true}},
		{name: "line beyond the limit", cfg: Config{MaxItemBytes: 100},
			data:     []byte("short line\n" + strings.Repeat("y", 1000) + "\nanother line\n"),
			messages: []string{"short line", "another line"}, reasons: []string{"line 2 (decompressed offset 11): longer than 100 bytes; skipped"}, deadData: []bool{false}},
		{name: "bad base64 in an error backup", data: []byte(`{"attemptsMade":1,"rawData":"@@@not base64@@@","errorCode":"x"}` + "\n" + `{"attemptsMade":1,"rawData":"` + b64([]byte("a line")) + `","errorCode":"x"}`),
			messages: []string{"a line"}, reasons: []string{"invalid base64"}, deadData: []bool{true}},
		{name: "gzip header broken from the start", data: []byte{0x1f, 0x8b, 0x99, 0x00, 0x01},
			reasons: []string{"unreadable"}, deadData: []bool{false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			events, dead, st := readAll(t, c.data, Object{Bucket: "b", Key: "k"}, c.cfg)
			assert.Equal(t, c.messages, nilIfEmpty(short(messages(events))))
			require.Len(t, dead, len(c.reasons), "dead letters: %v", dead)
			for i, d := range dead {
				assert.Contains(t, d.Reason, c.reasons[i])
				assert.Equal(t, record.KindRaw, d.Kind)
				assert.Equal(t, c.deadData[i], len(d.Message) > 0, "dead letter %d data", i)
				assert.Equal(t, "s3://b/k", d.Origin.RequestID)
			}
			assert.EqualValues(t, len(dead), st.DeadLetters)
		})
	}
}

// short keeps failure output readable when a long message leaks through.
func short(ms []string) []string {
	for i, m := range ms {
		if len(m) > 40 {
			ms[i] = fmt.Sprintf("%s… (%d bytes)", m[:20], len(m))
		}
	}
	return ms
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestDeadLettersOfEnvelopesReplayAsTheyWere(t *testing.T) {
	t.Parallel()
	// A malformed document goes to the archive as base64 raw data; once
	// "fixed" (here: nothing to fix, the archive is read as it is) the
	// dead-letter layout decodes it with the decode stage's code.
	bad := []byte(`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"9","timestamp":1,"message":"x"},{"id":"10","timestamp":1}]}`)
	_, dead, _ := readAll(t, bad, Object{Bucket: "b", Key: "k"}, Config{})
	require.Len(t, dead, 1)
	entry := dlqLine(t, dlq.Entry{Stage: DeadStage, Reason: dead[0].Reason, Kind: dead[0].Kind.String(), Data: dead[0].Message})
	_, again, _ := readAll(t, entry, Object{URL: "dlq/file.jsonl", Replay: true, Source: "replay"}, Config{})
	require.Len(t, again, 1, "still malformed: dead-lettered again, with the decode stage's reason")
	assert.Contains(t, again[0].Reason, "no message string")
}

func TestSourceErrorsAreNotDeadLetters(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset by peer")
	data := concat(corpus.Gzip(envelopeDoc(group, "s", manyEvents(3000, 0)...)), corpus.Gzip(envelopeDoc(group, "s", manyEvents(3000, 0)...)))
	r := NewReader(&failingReader{data: data[:len(data)/2], err: boom}, Object{Bucket: "b", Key: "k"}, Config{EventsPerBatch: 100})
	var err error
	for err == nil {
		var c Chunk
		c, err = r.Next()
		if err == nil {
			assert.False(t, c.Dead)
		}
	}
	require.ErrorIs(t, err, ErrSource)
	require.ErrorIs(t, err, boom)
	_, again := r.Next()
	assert.ErrorIs(t, again, ErrSource, "the error sticks")
}

func TestDetect(t *testing.T) {
	t.Parallel()
	cases := []struct {
		head string
		key  string
		want Layout
	}{
		{`{"messageType":"DATA_MESSAGE"`, "", LayoutEnvelopes},
		{`{"logEvents":[{"id":"1"`, "", LayoutEnvelopes},
		{`  {"owner":"1","logGroup":"g","messageType":"DATA_MESSAGE"`, "", LayoutEnvelopes},
		{`{"attemptsMade":4,"arrivalTimestamp":1,"errorCode":"x","rawData":"aGk="}`, "", LayoutErrorBackup},
		{`{"rawData":"aGk=","errorCode":"Lambda.FunctionError"}`, "", LayoutErrorBackup},
		{`{"v":1,"time":"2026-01-01T00:00:00Z","stage":"decode","reason":"\"messageType\"","kind":"raw"}`, "", LayoutDLQ},
		{`{"requestId":"r1","status":200}`, "", LayoutAccessLines},
		{`2026-03-04T05:06:07.123Z hello`, "", LayoutExport},
		{`2026-03-04T05:06:07Z hello`, "", LayoutExport},
		{`203.0.113.7 - - [04/Mar/2026]`, "", LayoutAccessLines},
		{"\xef\xbb\xbf" + `{"messageType":"x"}`, "", LayoutEnvelopes},
		{``, "p/0f8e7d6c-1234-4abc-9def-0123456789ab/s/000000.gz", LayoutExport},
		{``, "p/k", LayoutAccessLines},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Detect([]byte(c.head), c.key), "%q", c.head)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	kt, ok := KeyTime("firehose/2023/10/29/07/my-delivery-stream-1-2023-10-29-07-01-21-a188030a-62d2-49e6-b7c2-b11f1a7ba250")
	require.True(t, ok)
	assert.Equal(t, time.Date(2023, 10, 29, 7, 0, 0, 0, time.UTC), kt)
	kt, ok = KeyTime("2024/06/12/08/x")
	require.True(t, ok)
	assert.Equal(t, time.Date(2024, 6, 12, 8, 0, 0, 0, time.UTC), kt)
	for _, k := range []string{"a/b/c", "2024/13/12/08/x", "2024/06/12/x", "x2024/06/12/08/y"} {
		_, ok := KeyTime(k)
		assert.False(t, ok, k)
	}

	for key, want := range map[string]string{
		"firehose/2023/10/29/00/my-delivery-stream-1-2023-10-29-00-01-21-a188030a-62d2-49e6-b7c2-b11f1a7ba250": "my-delivery-stream",
		"2024/06/12/08/amazon-apigateway-pets-prod-2-2024-06-12-08-45-12-796e56c0-1111-2222-3333-444455556666": "amazon-apigateway-pets-prod",
		"a/b/object.gz": "",
	} {
		assert.Equal(t, want, DeliveryStream(key), key)
	}

	g, s, ok := ExportKey("exportedlogs/0f8e7d6c-1234-4abc-9def-0123456789ab/2026/03/04/[$LATEST]abc/000001.gz")
	assert.False(t, ok, "a stream name with a slash is not one folder: %s %s", g, s)
	g, s, ok = ExportKey("exportedlogs/API-Gateway-Execution-Logs_x/prod/0f8e7d6c-1234-4abc-9def-0123456789ab/stream-1/000001.gz")
	require.True(t, ok)
	assert.Equal(t, "exportedlogs/API-Gateway-Execution-Logs_x/prod", g)
	assert.Equal(t, "stream-1", s)

	for _, c := range []struct {
		key  string
		size int64
		skip bool
	}{{"exports/aws-logs-write-test", 27, true}, {"aws-logs-write-test", 27, true}, {"dir/", 0, true}, {"dir/obj", 0, false}, {"k", 10, false}} {
		_, skip := Skip(c.key, c.size)
		assert.Equal(t, c.skip, skip, c.key)
	}

	b, p, err := ParseURL("s3://bucket/some/prefix/")
	require.NoError(t, err)
	assert.Equal(t, "bucket", b)
	assert.Equal(t, "some/prefix/", p)
	_, _, err = ParseURL("/local/dir")
	assert.Error(t, err)
}

func TestScannerMemoryIsBounded(t *testing.T) {
	t.Parallel()
	// One 8 MiB line with a 64 KiB limit: the buffer never holds the line.
	data := concat([]byte("a\n"), bytes.Repeat([]byte("z"), 8<<20), []byte("\nb\n"))
	sc := newScanner(bytes.NewReader(data), 64<<10)
	var lines []string
	for {
		it, err := sc.nextLine()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if it.truncated {
			lines = append(lines, fmt.Sprintf("truncated:%d", len(it.data)))
		} else {
			lines = append(lines, string(it.data))
		}
		assert.LessOrEqual(t, len(sc.buf), 64<<10+readChunk)
	}
	assert.Equal(t, []string{"a", fmt.Sprintf("truncated:%d", 64<<10), "b"}, lines)
}

func TestJSONScannerAcrossRefills(t *testing.T) {
	t.Parallel()
	// Escapes and braces inside strings, split at every possible point by a
	// reader that returns one byte at a time.
	docs := []string{`{"a":"x\\\"}{"}`, `{"b":{"c":[1,{"d":"\\"}]}}`, `{"e":"\\\\"}`}
	data := strings.Join(docs, "")
	sc := newScanner(&oneByteReader{data: []byte(data)}, 1<<10)
	var got []string
	for {
		it, err := sc.nextJSON()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, string(it.data))
	}
	assert.Equal(t, docs, got)
}

type oneByteReader struct{ data []byte }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(o.data) == 0 {
		return 0, io.EOF
	}
	p[0] = o.data[0]
	o.data = o.data[1:]
	return 1, nil
}

// TestDeadLetterEntriesAreNumbered: records of the dead-letter archive
// carry the number of the entry they came from — one number per entry
// whatever it decodes into, partial lines not counted — and SkipItem
// passes entries over before they are read.
func TestDeadLetterEntriesAreNumbered(t *testing.T) {
	t.Parallel()
	ms := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).UnixMilli()
	docB := envelopeDoc(group, "sB", ev{"3", ms, "b1"}, ev{"4", ms, "b2"})
	line := func(id string) []byte {
		return dlqLine(t, dlq.Entry{Stage: "deliver-logs", Reason: "rejected", Kind: "access", EventID: id, Timestamp: ms,
			Origin: dlq.Origin{Source: "firehose", Region: "eu-west-1", LogGroup: group}, Data: []byte("line " + id)})
	}
	raw := dlqLine(t, dlq.Entry{Stage: "decode", Reason: "gunzip", Kind: "raw", Timestamp: ms, Origin: dlq.Origin{Source: "firehose", Region: "us-east-1"},
		Data: []byte(b64(corpus.Gzip(docB)))})
	bad := dlqLine(t, dlq.Entry{Stage: "decode", Reason: "x", Kind: "raw", Timestamp: ms, Origin: dlq.Origin{Source: "firehose", Region: "us-east-1"},
		Data: []byte("!!not base64")})
	empty := dlqLine(t, dlq.Entry{Stage: DeadStage, Reason: "object unreadable", Kind: "raw"})
	data := concat(line("a"), raw, empty, bad, line("c"), line("d")[:20])

	read := func(skip func(int64) bool) (items map[string]int64, deadItems []int64, st Stats) {
		r := NewReader(bytes.NewReader(data), Object{Key: "dlq-1.jsonl", Region: "us-east-1"}, Config{Layout: LayoutDLQ, EventsPerBatch: 1, SkipItem: skip})
		defer r.Close()
		items = map[string]int64{}
		eachChunk(t, r, func(c Chunk) {
			require.Len(t, c.Items, len(c.Batch.Records), "one entry number per record")
			for i, rec := range c.Batch.Records {
				if c.Dead {
					deadItems = append(deadItems, c.Items[i])
				} else {
					items[rec.EventID] = c.Items[i]
				}
			}
		})
		return items, deadItems, r.Stats()
	}
	items, deadItems, st := read(nil)
	assert.Equal(t, map[string]int64{"a": 0, "3": 1, "4": 1, "c": 4}, items, "a raw letter's events share its number")
	assert.Equal(t, []int64{3}, deadItems, "a letter that cannot be read again is numbered too")
	assert.EqualValues(t, 1, st.Partial)
	assert.EqualValues(t, 1, st.Empty)

	items, deadItems, st = read(func(i int64) bool { return i == 1 || i == 3 })
	assert.Equal(t, map[string]int64{"a": 0, "c": 4}, items)
	assert.Empty(t, deadItems)
	assert.EqualValues(t, 2, st.Skipped)
}

// TestGzipMembersWithLineDelimiters: an S3 destination's "new line
// delimiter" (AppendDelimiterToRecord) writes "\n" after each Firehose
// record, and CloudWatch Logs records are gzip members, so such an object
// is gzip members with line ends between them (inside the destination's
// own gzip too). Every member is read. Only the first was: the line end
// was taken for a broken gzip header and the rest of the object, 2 of its
// 3 envelopes, dead-lettered as unreadable. What is neither a line end
// nor a member still ends the reading with a dead letter.
func TestGzipMembersWithLineDelimiters(t *testing.T) {
	t.Parallel()
	ms := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).UnixMilli()
	docA := envelopeDoc(group, "sA", ev{"1", ms, "a1"}, ev{"2", ms + 1, "a2"})
	docB := envelopeDoc(group, "sB", ev{"3", ms + 2, "b1"})
	docC := envelopeDoc(group, "sC", ev{"4", ms + 3, "c1"})
	key := "fh/2026/03/04/05/cwl-to-s3-1-2026-03-04-05-06-07-abc"
	nl := []byte("\n")
	delimited := concat(corpus.Gzip(docA), nl, corpus.Gzip([]byte(controlDoc)), []byte("\r\n"), corpus.Gzip(docB), nl, corpus.Gzip(docC), nl)
	for name, data := range map[string][]byte{
		"members":                delimited,
		"inside the S3 gzip":     corpus.Gzip(delimited),
		"blank lines in between": concat(corpus.Gzip(docA), nl, nl, corpus.Gzip(docB), corpus.Gzip(docC)),
	} {
		t.Run(name, func(t *testing.T) {
			events, dead, st := readAll(t, data, Object{Bucket: "b", Key: key, Region: "us-east-1"}, Config{})
			assert.Empty(t, dead)
			assert.Equal(t, []string{"1", "2", "3", "4"}, ids(events))
			assert.Equal(t, LayoutEnvelopes, st.Layout)
		})
	}

	events, dead, _ := readAll(t, concat(corpus.Gzip(docA), nl, []byte("not gzip\n"), corpus.Gzip(docB)), Object{Bucket: "b", Key: key, Region: "us-east-1"}, Config{})
	assert.Equal(t, []string{"1", "2"}, ids(events))
	require.Len(t, dead, 1)
	assert.Contains(t, dead[0].Reason, "unreadable")
}
