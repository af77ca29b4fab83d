// Package corpus holds realistic Firehose requests and S3 objects (see
// ObjectCase), written from the formats' specifications (CloudWatch Logs
// subscription envelopes, Firehose HTTP endpoint delivery and S3
// destination, API Gateway access logs delivered directly to an
// amazon-apigateway-* stream, CloudWatch metric streams in JSON and
// OpenTelemetry 1.0), each with a manifest of what gwpipe must make of it.
// The decode stage's and the S3 object reader's tests and the pipeline's
// end-to-end tests read it.
//
// # Layout
//
// testdata/<name>.records.yaml is one Firehose request: its records, each
// the payload AWS puts in a record's "data" and how it is framed:
//
//	source_arn: arn:aws:firehose:…:deliverystream/…   # X-Amz-Firehose-Source-Arn
//	content_encoding: gzip                            # optional: the HTTP body gzipped
//	records:
//	  - gzip: true          # data gzipped, as CloudWatch Logs sends it
//	    data: |-
//	      {"messageType":"DATA_MESSAGE",…}
//	  - gzip_members: [a, b] # each its own gzip member, one after the other
//	  - data: a line         # exactly these bytes, not compressed
//	  - otel: |-             # metric-stream JSON datums, encoded as OpenTelemetry 1.0 frames
//	  - wire: "…"            # the record's data string exactly as on the wire (bad base64, binary)
//	    cut: 20              # with gzip: the last 20 bytes cut off (a truncated member)
//	    unescape: true       # \xNN in data stands for that byte (YAML holds text only)
//
// testdata/<name>.manifest.yaml says what must come out (see Manifest).
//
// Both files are templates (text/template, delimiters ${ and }), because
// Datadog refuses metric points more than an hour old and derived metrics
// follow the logs' times: ${ms -60} is the test's clock 60 s ago in epoch
// milliseconds, ${minute -180} the start of the minute 3 minutes ago (a
// metric period), ${clf -60} the time as API Gateway's $context.requestTime
// writes it, and ${range $i := seq 88}…${end} repeats a line.
package corpus

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/klauspost/compress/gzip"
	"gopkg.in/yaml.v3"
)

//go:embed testdata/*.yaml testdata/objects/*.yaml
var files embed.FS

// Case is one request of the corpus.
type Case struct {
	Name   string
	source string // the .records.yaml template
	want   string // the .manifest.yaml template
}

// Request is a case rendered for a time: what Firehose sends, and what
// must come out.
type Request struct {
	Name            string // the case's
	SourceARN       string
	ContentEncoding string   // "" or "gzip"
	Data            []string // each record's "data", as on the wire
	Manifest        Manifest
}

// Manifest is what gwpipe must make of a request.
type Manifest struct {
	Description string `yaml:"description"`
	// Events are the CloudWatch log events delivered, each exactly once.
	Events []Event `yaml:"events"`
	// Lines are the logs without an event id (direct access-log lines,
	// lines beside envelopes), delivered each exactly once, by content.
	Lines []string `yaml:"lines"`
	// MetricPoints counts the Datadog points made of metric-stream data,
	// by metric name.
	MetricPoints map[string]int `yaml:"metric_points"`
	// Counters of the decode stage (decode.<name>) this request moves; of
	// an object case, ControlMessages are those its reader drops.
	ControlMessages     int `yaml:"control_messages"`
	UnknownMessageTypes int `yaml:"unknown_message_types"`
	EmptyRecords        int `yaml:"empty_records"`
	BinaryRecords       int `yaml:"binary_records"`
	NonTextLines        int `yaml:"non_text_lines"`
	// DeadLetters are the decode stage's dead letters, in order.
	DeadLetters []DeadLetter `yaml:"dead_letters"`
	// Layout is the layout an object case is read as (s3obj.Layout's
	// names); Firehose requests have none.
	Layout string `yaml:"layout"`
}

// EventIDs are the ids of Events, in order.
func (m Manifest) EventIDs() []string {
	ids := make([]string, len(m.Events))
	for i, e := range m.Events {
		ids[i] = e.ID
	}
	return ids
}

// Event returns the event of that id.
func (m Manifest) Event(id string) (Event, bool) {
	for _, e := range m.Events {
		if e.ID == id {
			return e, true
		}
	}
	return Event{}, false
}

// DeadData is what the i-th dead letter of the manifest must hold as raw
// data, which the decode stage reads again on a replay: the record exactly
// as delivered (its base64 text), or the base64 of the part's bytes.
func (r Request) DeadData(i int) (string, error) {
	d := r.Manifest.DeadLetters[i]
	if d.Whole {
		return r.Data[d.Record], nil
	}
	part, err := d.PartBytes()
	return base64.StdEncoding.EncodeToString(part), err
}

// Counters are the decode stage's counters the request moves, by name.
func (m Manifest) Counters() map[string]int {
	return map[string]int{
		"decode.control_messages": m.ControlMessages, "decode.unknown_message_types": m.UnknownMessageTypes,
		"decode.empty_records": m.EmptyRecords, "decode.binary_records": m.BinaryRecords, "decode.non_text_lines": m.NonTextLines,
	}
}

// Event is a delivered CloudWatch log event; Account and Region, when set,
// are the ones its log must carry (extractedFields of cross-account and
// centralised subscriptions).
type Event struct {
	ID      string `yaml:"id"`
	Account string `yaml:"account"`
	Region  string `yaml:"region"`
}

// DeadLetter is a record, or a part of one, that could not go on.
type DeadLetter struct {
	Record int    `yaml:"record"` // index in the request
	Reason string `yaml:"reason"` // a substring of the reason
	// Whole: the record itself, exactly as delivered. Otherwise a part of
	// it: Part (its decoded bytes), or PartBase64 for binary parts.
	Whole      bool   `yaml:"whole"`
	Part       string `yaml:"part"`
	PartBase64 string `yaml:"part_base64"`
	Unescape   bool   `yaml:"unescape"` // \xNN in Part stands for that byte
	// NoData: the dead letter holds nothing (an object case: the object is
	// named, not copied).
	NoData bool `yaml:"no_data"`
}

// PartBytes is the part's decoded bytes.
func (d DeadLetter) PartBytes() ([]byte, error) {
	if d.PartBase64 != "" {
		return base64.StdEncoding.DecodeString(d.PartBase64)
	}
	if d.Unescape {
		return unescape(d.Part), nil
	}
	return []byte(d.Part), nil
}

var byteEscape = regexp.MustCompile(`\\x[0-9a-fA-F]{2}`)

// unescape replaces each \xNN of s with the byte NN.
func unescape(s string) []byte {
	return byteEscape.ReplaceAllFunc([]byte(s), func(m []byte) []byte {
		b, _ := strconv.ParseUint(string(m[2:]), 16, 8)
		return []byte{byte(b)}
	})
}

// Cases returns every case of the corpus, by name.
func Cases() ([]Case, error) { return templates("testdata", ".records.yaml") }

// templates lists the cases of a folder: each <name><suffix> with its
// <name>.manifest.yaml, by name.
func templates(dir, suffix string) ([]Case, error) {
	names, err := fs.Glob(files, dir+"/*"+suffix)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Case
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), suffix)
		src, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		want, err := files.ReadFile(dir + "/" + name + ".manifest.yaml")
		if err != nil {
			return nil, fmt.Errorf("corpus %s: every case has a manifest: %w", name, err)
		}
		out = append(out, Case{Name: name, source: string(src), want: string(want)})
	}
	return out, nil
}

// recordSpec is one record as the .records.yaml file describes it.
type recordSpec struct {
	Data        *string  `yaml:"data"`
	Gzip        bool     `yaml:"gzip"`
	GzipMembers []string `yaml:"gzip_members"`
	OTel        *string  `yaml:"otel"`
	Wire        *string  `yaml:"wire"`
	Cut         int      `yaml:"cut"`
	Unescape    bool     `yaml:"unescape"`
}

type requestSpec struct {
	SourceARN       string       `yaml:"source_arn"`
	ContentEncoding string       `yaml:"content_encoding"`
	Records         []recordSpec `yaml:"records"`
}

// Render builds the case's request for the clock now.
func (c Case) Render(now time.Time) (Request, error) {
	var spec requestSpec
	if err := c.decode(c.source, now, &spec); err != nil {
		return Request{}, err
	}
	r := Request{Name: c.Name, SourceARN: spec.SourceARN, ContentEncoding: spec.ContentEncoding}
	if err := c.decode(c.want, now, &r.Manifest); err != nil {
		return Request{}, err
	}
	for i, rs := range spec.Records {
		d, err := rs.data()
		if err != nil {
			return Request{}, fmt.Errorf("corpus %s: record %d: %w", c.Name, i, err)
		}
		r.Data = append(r.Data, d)
	}
	for _, d := range r.Manifest.DeadLetters {
		if d.Record < 0 || d.Record >= len(r.Data) {
			return Request{}, fmt.Errorf("corpus %s: a dead letter names record %d of %d", c.Name, d.Record, len(r.Data))
		}
	}
	return r, nil
}

func (c Case) decode(src string, now time.Time, v any) error {
	t, err := template.New(c.Name).Delims("${", "}").Funcs(funcs(now)).Option("missingkey=error").Parse(src)
	if err != nil {
		return fmt.Errorf("corpus %s: %w", c.Name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return fmt.Errorf("corpus %s: %w", c.Name, err)
	}
	dec := yaml.NewDecoder(&b)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("corpus %s: %w", c.Name, err)
	}
	return nil
}

func funcs(now time.Time) template.FuncMap {
	now = now.UTC()
	at := func(sec int) time.Time { return now.Add(time.Duration(sec) * time.Second) }
	return template.FuncMap{
		"ms":     func(sec int) int64 { return at(sec).UnixMilli() },
		"minute": func(sec int) int64 { return at(sec).Truncate(time.Minute).UnixMilli() },
		"clf":    func(sec int) string { return at(sec).Format("02/Jan/2006:15:04:05 -0700") },
		"hour":   func(sec int) string { return at(sec).Format("2006/01/02/15") },
		"stamp":  func(sec int) string { return at(sec).Format("2006-01-02-15-04-05") },
		"seq": func(n int) []int {
			s := make([]int, n)
			for i := range s {
				s[i] = i
			}
			return s
		},
	}
}

func (rs recordSpec) data() (string, error) {
	var raw []byte
	switch {
	case rs.Wire != nil:
		return *rs.Wire, nil
	case rs.GzipMembers != nil:
		for _, m := range rs.GzipMembers {
			raw = append(raw, Gzip([]byte(m))...)
		}
	case rs.OTel != nil:
		var err error
		if raw, err = otelFrames(*rs.OTel); err != nil {
			return "", err
		}
	case rs.Data != nil:
		raw = []byte(*rs.Data)
		if rs.Unescape {
			raw = unescape(*rs.Data)
		}
		if rs.Gzip {
			raw = Gzip(raw)
		}
	default:
		return "", fmt.Errorf("neither data, gzip_members, otel nor wire")
	}
	if rs.Cut > 0 {
		raw = raw[:max(0, len(raw)-rs.Cut)]
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// Gzip compresses p as CloudWatch Logs does (gzip level 6, which is also
// compress/gzip's default).
func Gzip(p []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, 6)
	_, _ = zw.Write(p)
	_ = zw.Close()
	return b.Bytes()
}

// Body is the Firehose HTTP endpoint request body
// (docs/wire-formats.md#firehose-request), before any
// Content-Encoding.
func (r Request) Body(requestID string, now time.Time) []byte {
	type rec struct {
		Data string `json:"data"`
	}
	body := struct {
		RequestID string `json:"requestId"`
		Timestamp int64  `json:"timestamp"`
		Records   []rec  `json:"records"`
	}{RequestID: requestID, Timestamp: now.UnixMilli(), Records: make([]rec, len(r.Data))}
	for i, d := range r.Data {
		body.Records[i].Data = d
	}
	b, _ := json.Marshal(body)
	return b
}
