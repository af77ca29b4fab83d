package s3obj

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// fuzzSeeds are one small object of every layout and of each way an object
// goes wrong. testdata/fuzz/FuzzReadObject holds them as the fuzzer's
// corpus (regenerate with GWPIPE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus).
func fuzzSeeds(t testing.TB) map[string]struct {
	data []byte
	key  string
} {
	docA := envelopeDoc(group, "s", ev{"1", 1700000000000, `{"requestId":"r1","status":200}`}, ev{"2", 1700000000001, "x\"y\\z"})
	docB := []byte(controlDoc)
	corrupt := corpus.Gzip(docA)
	corrupt[len(corrupt)/2] ^= 0x5a
	return map[string]struct {
		data []byte
		key  string
	}{
		"envelopes-gzip-members": {concat(corpus.Gzip(docA), corpus.Gzip(docB), corpus.Gzip(docA)), "fh/2026/01/02/03/s-1-2026-01-02-03-04-05-abcd"},
		"envelopes-newlines":     {concat(docA, []byte("\n"), docA, []byte("\n")), ""},
		"gzip-members-newlines":  {concat(corpus.Gzip(docA), []byte("\n"), corpus.Gzip(docB), []byte("\r\n")), "fh/2026/01/02/03/s-1-2026-01-02-03-04-05-abcd"},
		"envelopes-zstd":         {zst(concat(docA, docA)), "x.gz"},
		"envelopes-double-gzip":  {corpus.Gzip(concat(corpus.Gzip(docA), corpus.Gzip(docA))), ""},
		"access-json":            {[]byte(`{"requestId":"a","status":200}{"requestId":"b","status":404}`), "2026/01/02/03/amazon-apigateway-x-1-2026-01-02-03-04-05-ab"},
		"access-clf":             {[]byte("1.2.3.4 - - [02/Jan/2026:03:04:05 +0000] \"GET / HTTP/1.1\" 200 5\r\n"), ""},
		"export":                 {corpus.Gzip([]byte("2026-01-02T03:04:05.678Z a\n continued\n2026-01-02T03:04:06Z b\n")), "e/0f8e7d6c-1234-4abc-9def-0123456789ab/s/000000.gz"},
		"error-backup":           {[]byte(`{"attemptsMade":1,"arrivalTimestamp":1,"errorCode":"x","rawData":"` + b64(corpus.Gzip(docA)) + `"}` + "\n"), ""},
		"dlq":                    {concat(dlqLine(t, dlq.Entry{Kind: "raw", Stage: "decode", Reason: "r", Data: []byte(b64(corpus.Gzip(docA)))}), dlqLine(t, dlq.Entry{Kind: "line", Stage: "x", Reason: "r", Data: []byte("l")})), ""},
		"corrupt-gzip":           {concat(corpus.Gzip(docA), corrupt), ""},
		"truncated-json":         {docA[:len(docA)/2], ""},
		"garbage":                {[]byte("\x00\x01{{{\"\\"), ""},
	}
}

func FuzzReadObject(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.data, s.key)
	}
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		// Small limits, so that the fuzzer reaches them.
		cfg := Config{EventsPerBatch: 7, BatchBytes: 512, MaxItemBytes: 2048}
		r := NewReader(bytes.NewReader(data), Object{Bucket: "b", Key: key}, cfg)
		defer r.Close()
		next := int64(0)
		for {
			c, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("a bytes.Reader never fails, so no error may reach the caller: %v", err)
			}
			if c.Batch.Len() == 0 || c.First != next {
				t.Fatalf("chunk at %d with %d records, want it at %d and not empty", c.First, c.Batch.Len(), next)
			}
			next += int64(c.Batch.Len())
			if !c.Dead && len(c.Batch.Records) > cfg.EventsPerBatch {
				t.Fatalf("batch of %d events exceeds %d", len(c.Batch.Records), cfg.EventsPerBatch)
			}
			for _, rec := range c.Batch.Records {
				if c.Dead && rec.Reason == "" {
					t.Fatal("dead letter without a reason")
				}
				if rec.Origin == nil {
					t.Fatal("record without an origin")
				}
			}
		}
		if st := r.Stats(); st.BytesIn != int64(len(data)) && st.DeadLetters == 0 {
			t.Fatalf("read %d of %d bytes without a dead letter saying why", st.BytesIn, len(data))
		}
	})
}

func TestWriteFuzzCorpus(t *testing.T) {
	t.Parallel()
	if os.Getenv("GWPIPE_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set GWPIPE_WRITE_FUZZ_CORPUS=1 to rewrite testdata/fuzz/FuzzReadObject")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReadObject")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nstring(%s)\n", strconv.Quote(string(s.data)), strconv.Quote(s.key))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
