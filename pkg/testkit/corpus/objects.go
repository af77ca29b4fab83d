package corpus

import (
	"bytes"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ObjectCase is an S3 object of the corpus: what Firehose (or another
// writer) leaves in a bucket, with a manifest of what gwpipe must make of it
// when it reads the object (an S3 notification through SQS, a replay).
//
// testdata/objects/<name>.object.yaml is the object, parts concatenated:
//
//	key: firehose/${hour -60}/gw-logs-1-${stamp -60}-4f1c0a9e  # its key
//	compression: gzip      # the whole object: gzip, zstd or none
//	members: true          # each part its own gzip member first (CloudWatch's records)
//	parts:
//	  - data: |-           # exactly these bytes
//	    unescape: true     # \xNN stands for that byte
//	  - otel: |-           # metric-stream JSON datums as OpenTelemetry frames
//
// testdata/objects/<name>.manifest.yaml is a Manifest: its dead letters
// name the part they come from (record), and hold the part's bytes, the
// bytes given (part, part_base64: a part of the part, or several items
// joined by '\n'), or nothing (no_data: the object is named, not copied).
type ObjectCase Case

// Object is an object case rendered for a time.
type Object struct {
	Name     string // the case's
	Key      string
	Body     []byte // as stored
	Parts    [][]byte
	Manifest Manifest
}

type objectSpec struct {
	Key         string       `yaml:"key"`
	Compression string       `yaml:"compression"`
	Members     bool         `yaml:"members"`
	Parts       []recordSpec `yaml:"parts"`
}

// ObjectCases returns every object case of the corpus, by name.
func ObjectCases() ([]ObjectCase, error) {
	cases, err := templates("testdata/objects", ".object.yaml")
	out := make([]ObjectCase, len(cases))
	for i, c := range cases {
		out[i] = ObjectCase(c)
	}
	return out, err
}

// Render builds the object for the clock now.
func (c ObjectCase) Render(now time.Time) (Object, error) {
	cs := Case(c)
	var spec objectSpec
	if err := cs.decode(c.source, now, &spec); err != nil {
		return Object{}, err
	}
	o := Object{Name: c.Name, Key: spec.Key}
	if err := cs.decode(c.want, now, &o.Manifest); err != nil {
		return Object{}, err
	}
	var body []byte
	for i, ps := range spec.Parts {
		if ps.Gzip || ps.GzipMembers != nil || ps.Wire != nil || ps.Cut > 0 {
			return Object{}, fmt.Errorf("corpus object %s: part %d: only data, unescape and otel describe a part", c.Name, i)
		}
		p, err := ps.raw()
		if err != nil {
			return Object{}, fmt.Errorf("corpus object %s: part %d: %w", c.Name, i, err)
		}
		o.Parts = append(o.Parts, p)
		if spec.Members {
			p = Gzip(p)
		}
		body = append(body, p...)
	}
	switch spec.Compression {
	case "", "none":
	case "gzip":
		body = Gzip(body)
	case "zstd":
		zw, err := zstd.NewWriter(nil)
		if err != nil {
			return Object{}, err
		}
		body = zw.EncodeAll(body, nil)
	default:
		return Object{}, fmt.Errorf("corpus object %s: compression %q (gzip, zstd or none)", c.Name, spec.Compression)
	}
	o.Body = body
	for _, d := range o.Manifest.DeadLetters {
		if d.Record < 0 || d.Record >= len(o.Parts) {
			return Object{}, fmt.Errorf("corpus object %s: a dead letter names part %d of %d", c.Name, d.Record, len(o.Parts))
		}
	}
	return o, nil
}

// DeadData is what the i-th dead letter of the manifest must hold, decoded
// (the archive holds its base64), and false when it must hold nothing.
func (o Object) DeadData(i int) ([]byte, bool, error) {
	d := o.Manifest.DeadLetters[i]
	switch {
	case d.NoData:
		return nil, false, nil
	case d.Whole:
		return bytes.TrimRight(o.Parts[d.Record], "\n"), true, nil
	}
	b, err := d.PartBytes()
	return b, true, err
}

// raw is a part's bytes.
func (rs recordSpec) raw() ([]byte, error) {
	switch {
	case rs.OTel != nil:
		return otelFrames(*rs.OTel)
	case rs.Data != nil && rs.Unescape:
		return unescape(*rs.Data), nil
	case rs.Data != nil:
		return []byte(*rs.Data), nil
	}
	return nil, fmt.Errorf("neither data nor otel")
}
