// Package docs_test keeps the repository's references to docs/wire-formats.md
// honest: every citation of a section of docs/wire-formats.md written
// anywhere in the repository (code comments, test data, README) must name a
// heading of that document, and nothing may cite the internal reference
// document that the wire-format notes replaced.
package docs_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

const wireFormats = "wire-formats.md"

// citation matches a reference to a section of the wire-format notes.
var citation = regexp.MustCompile(`docs/wire-formats\.md#([A-Za-z0-9_-]+)`)

// staleCitation is how comments cited the internal reference; spelled in
// two pieces so that this file does not match itself.
var staleCitation = "specs" + " §"

// anchor turns a Markdown heading into its anchor the way GitHub does:
// lower case, punctuation other than '-' and '_' removed, spaces as '-'.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// anchors returns the anchors of the Markdown headings of path, outside
// fenced code blocks.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	fenced := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimLeft(line, "#")
		if !strings.HasPrefix(heading, " ") {
			continue
		}
		a := anchor(heading)
		if out[a] {
			t.Errorf("%s: two headings have the anchor #%s; citations to it would be ambiguous", path, a)
		}
		out[a] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAnchor(t *testing.T) {
	t.Parallel()
	for heading, want := range map[string]string{
		" Firehose HTTP delivery":               "firehose-http-delivery",
		" SQS, S3 notifications and SNS":        "sqs-s3-notifications-and-sns",
		" Resource Groups Tagging API and ARNs": "resource-groups-tagging-api-and-arns",
		" Metrics v2 series":                    "metrics-v2-series",
	} {
		if got := anchor(heading); got != want {
			t.Errorf("anchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestWireFormatCitations walks the repository (the parent of docs/) and
// checks every citation of the wire-format notes against their headings.
func TestWireFormatCitations(t *testing.T) {
	t.Parallel()
	known := anchors(t, wireFormats)
	if len(known) == 0 {
		t.Fatalf("%s has no headings", wireFormats)
	}
	cited := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "data", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.ContainsRune(string(b[:min(len(b), 8000)]), 0) {
			return nil // binary
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, staleCitation) {
				t.Errorf("%s:%d cites %q, a document outside the repository: cite docs/wire-formats.md#<section> or the public document instead", path, i+1, staleCitation)
			}
			for _, m := range citation.FindAllStringSubmatch(line, -1) {
				cited++
				if !known[m[1]] {
					t.Errorf("%s:%d cites docs/wire-formats.md#%s, which is not a heading of docs/wire-formats.md", path, i+1, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the code: the notes exist because code
	// relies on them.
	if cited < 10 {
		t.Errorf("found only %d citations of docs/wire-formats.md; is the walk reading the repository?", cited)
	}
}
