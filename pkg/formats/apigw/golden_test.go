package apigw

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw/goldentest"
	"github.com/gwpipe/gwpipe/pkg/record"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenCase is one input line of a testdata/*.txt file with its context.
type goldenCase struct{ goldentest.Case }

// readCases reads a testdata/*.txt file (see goldentest.Read).
func readCases(t testing.TB, path string) []goldenCase {
	var out []goldenCase
	for _, c := range goldentest.Read(t, path) {
		out = append(out, goldenCase{c})
	}
	return out
}

func (c goldenCase) parser(t testing.TB) *Parser {
	cfg := Config{}
	key := c.Group
	if key == "" {
		key = c.Stream
	}
	if c.Format != "" {
		cfg.Formats = []FormatRule{{LogGroup: key, Format: c.Format}}
	}
	if c.Prefix != "" {
		cfg.AccessLogGroupPrefixes = []string{c.Prefix}
	}
	p, err := New(cfg)
	require.NoError(t, err)
	return p
}

func (c goldenCase) record() record.Record {
	return record.Record{
		Origin:    &record.Origin{Source: "firehose", LogGroup: c.Group, Stream: c.Stream, LogStream: "14ff1bdcd999b9026e06c0c7e1fe47d5"},
		Timestamp: 1551194973000,
		Message:   []byte(c.Line),
	}
}

// goldenOut is the reviewed expectation for one record.
type goldenOut struct {
	Line       string   `json:"line"`
	Kind       string   `json:"kind"`
	Source     string   `json:"source"`
	Level      string   `json:"level"`
	Timestamp  int64    `json:"timestamp"`
	ParseError string   `json:"parse_error,omitempty"`
	Attrs      []string `json:"attrs"`
}

func attrString(a record.Attr) string {
	switch a.Kind {
	case record.Int:
		return fmt.Sprintf("%s: %d (int)", a.Key, a.Int)
	case record.Bool:
		return fmt.Sprintf("%s: %t (bool)", a.Key, a.Int != 0)
	case record.Number:
		return fmt.Sprintf("%s: %s (number)", a.Key, a.Str)
	case record.Null:
		return a.Key + ": null"
	}
	q, _ := json.Marshal(string(a.Str))
	return fmt.Sprintf("%s: %s", a.Key, q)
}

func outOf(c goldenCase, rec *record.Record) goldenOut {
	o := goldenOut{Line: c.Line, Kind: rec.Kind.String(), Source: rec.Source, Level: rec.Level.String(),
		Timestamp: rec.Timestamp, ParseError: rec.ParseError, Attrs: []string{}}
	for _, a := range rec.Attrs {
		o.Attrs = append(o.Attrs, attrString(a))
	}
	return o
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			var got []goldenOut
			for _, c := range readCases(t, file) {
				p := c.parser(t)
				rec := c.record()
				p.Parse(&record.Batch{}, &rec)
				require.NoError(t, recordAttrsOK(&rec), c.Line)
				got = append(got, outOf(c, &rec))
			}
			golden := strings.TrimSuffix(file, ".txt") + ".golden.json"
			js, err := json.MarshalIndent(got, "", "  ")
			require.NoError(t, err)
			js = append(js, '\n')
			if *update {
				require.NoError(t, os.WriteFile(golden, js, 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -run TestGolden -update")
			require.Equal(t, string(want), string(js))
		})
	}
}
