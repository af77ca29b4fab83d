package sqssource

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// Kind is what a message carries.
type Kind uint8

const (
	KindSkip       Kind = iota // nothing to ingest (test events, other S3 events); delete it
	KindS3                     // S3 objects to read
	KindCloudWatch             // CloudWatch Logs subscription data
	KindFirehose               // Firehose records (a delivery request body or error-backup record)
)

var kindNames = [...]string{"skip", "s3", "cloudwatch", "firehose"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Body is what a message body was understood to be.
type Body struct {
	Kind Kind
	// Wrapping names the envelopes peeled to reach the content, outermost
	// first: "sns", "eventbridge", "awslogs", "base64".
	Wrapping []string
	Objects  []ObjectRef // KindS3
	Records  []RawRecord // KindCloudWatch, KindFirehose: for the raw topic
	// Skip says why there is nothing to ingest (KindSkip), or what part of
	// a notification was ignored.
	Skip string
}

// ObjectRef is an object announced by an S3 event notification.
type ObjectRef struct {
	Bucket    string
	Key       string // decoded
	Version   string // the version written, in a versioned bucket; else empty
	ETag      string
	Sequencer string // orders the events of one key; the same for copies of one event
	Size      int64
	Region    string
	EventName string
	EventTime time.Time
	// Unreadable says why the notification's record names no object that
	// can be read (a key not form-encoded, no bucket or key), beside
	// records that do: it is dead-lettered with that, the others read.
	Unreadable string
}

// Event identifies the S3 event that announced the object, so that a copy
// of it (S3 delivers event notifications at least once) is recognised:
// bucket, key, version, eTag and sequencer. A version is written once, and
// a sequencer is unique among a key's events; without either (or with a
// sequencer but no eTag to tell two writes apart should a producer reuse
// one), nothing tells a copy from a new write of the same key, and Event
// is empty.
func (r ObjectRef) Event() string {
	if r.Version == "" && (r.Sequencer == "" || r.ETag == "") {
		return ""
	}
	return strings.Join([]string{r.Bucket, r.Key, r.Version, r.ETag, r.Sequencer}, "\x00")
}

// version is a notification's version id: "null" is the version of an
// object written while versioning was off, which is the current one or
// gone, so it is read as the current one.
func version(v []byte) string {
	if string(v) == "null" {
		return ""
	}
	return string(v)
}

// RawRecord is one record for the raw topic: base64 text (record.KindRaw)
// or bytes the decode stage gunzips or reads as envelopes or lines
// (record.KindLine).
type RawRecord struct {
	Kind record.Kind
	Data []byte
}

// ErrUnrecognised is wrapped by ParseBody's error for a body of no known
// shape: a poison message, left to the queue's redrive policy.
var ErrUnrecognised = errors.New("unrecognised message body")

// maxWrapping bounds how many envelopes ParseBody peels (SNS around SNS…).
const maxWrapping = 4

// ParseBody understands an SQS message body
// (docs/wire-formats.md#sqs-s3-notifications-and-sns): an S3 event
// notification (direct, in an SNS notification with or without raw message
// delivery, or an EventBridge "Object Created" event), the S3 test event,
// CloudWatch Logs subscription data (gzip, base64 gzip, the JSON envelope,
// or the {"awslogs":{"data":…}} wrapper), or Firehose records (a delivery
// request body or an error-backup record).
func ParseBody(body []byte) (Body, error) {
	var p fastjson.Parser
	var b Body
	if err := parse(&p, &b, body, 0); err != nil {
		return Body{}, err
	}
	return b, nil
}

func parse(p *fastjson.Parser, b *Body, body []byte, depth int) error {
	if depth > maxWrapping {
		return fmt.Errorf("%w: more than %d nested envelopes", ErrUnrecognised, maxWrapping)
	}
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return fmt.Errorf("%w: empty body", ErrUnrecognised)
	}
	switch {
	case t[0] == '{':
		v, err := p.ParseBytes(t)
		if err != nil {
			return fmt.Errorf("%w: invalid JSON: %v", ErrUnrecognised, err)
		}
		return parseJSON(p, b, v, t, depth)
	case len(t) >= 2 && t[0] == 0x1f && t[1] == 0x8b:
		// Gzip bytes (SQS allows them only when they happen to be valid
		// characters, but a producer may try): the decode stage reads them.
		b.Kind = KindCloudWatch
		b.Records = append(b.Records, RawRecord{Kind: record.KindLine, Data: bytes.Clone(t)})
		return nil
	case bytes.HasPrefix(t, []byte("H4sI")):
		// base64 of a gzip header (1f 8b 08): a subscription record as
		// Kinesis or Firehose carries it.
		b.Kind = KindCloudWatch
		b.Wrapping = append(b.Wrapping, "base64")
		b.Records = append(b.Records, RawRecord{Kind: record.KindRaw, Data: bytes.Clone(t)})
		return nil
	}
	return fmt.Errorf("%w: neither JSON nor base64 gzip (starts %q)", ErrUnrecognised, head(t, 40))
}

func parseJSON(p *fastjson.Parser, b *Body, v *fastjson.Value, raw []byte, depth int) error {
	if v.Type() != fastjson.TypeObject {
		return fmt.Errorf("%w: JSON %s, not an object", ErrUnrecognised, v.Type())
	}
	str := func(v *fastjson.Value, keys ...string) string { return string(v.GetStringBytes(keys...)) }

	// SNS notification (raw message delivery off): the content is the
	// Message string.
	switch str(v, "Type") {
	case "Notification":
		if m := v.Get("Message"); m != nil && m.Type() == fastjson.TypeString {
			b.Wrapping = append(b.Wrapping, "sns")
			inner := bytes.Clone(m.GetStringBytes()) // the parser is reused below
			return parse(p, b, inner, depth+1)
		}
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		b.Kind = KindSkip
		b.Skip = "SNS " + str(v, "Type") + " for " + str(v, "TopicArn") + " (an SQS subscription is confirmed by SNS itself; nothing to ingest)"
		return nil
	}

	if str(v, "Event") == "s3:TestEvent" {
		b.Kind = KindSkip
		b.Skip = "s3:TestEvent for bucket " + str(v, "Bucket")
		return nil
	}

	if recs := v.Get("Records"); recs != nil && recs.Type() == fastjson.TypeArray {
		return parseS3Records(b, recs)
	}

	if str(v, "source") == "aws.s3" && v.Exists("detail-type") {
		b.Wrapping = append(b.Wrapping, "eventbridge")
		dt := str(v, "detail-type")
		if dt != "Object Created" {
			b.Kind = KindSkip
			b.Skip = "EventBridge S3 event " + dt
			return nil
		}
		obj := v.Get("detail", "object")
		ref := ObjectRef{
			Bucket: str(v, "detail", "bucket", "name"), Key: str(obj, "key"), Version: version(obj.GetStringBytes("version-id")),
			// AWS writes "etag"; some emulators "eTag".
			ETag: cmp.Or(str(obj, "etag"), str(obj, "eTag")), Sequencer: str(obj, "sequencer"),
			Size: obj.GetInt64("size"), Region: str(v, "region"), EventName: "ObjectCreated:" + str(v, "detail", "reason"),
		}
		ref.EventTime, _ = time.Parse(time.RFC3339, str(v, "time"))
		if ref.Bucket == "" || ref.Key == "" {
			return fmt.Errorf("%w: EventBridge Object Created without detail.bucket.name and detail.object.key", ErrUnrecognised)
		}
		b.Kind = KindS3
		b.Objects = append(b.Objects, ref)
		return nil
	}

	if d := v.Get("awslogs", "data"); d != nil && d.Type() == fastjson.TypeString {
		b.Kind = KindCloudWatch
		b.Wrapping = append(b.Wrapping, "awslogs")
		b.Records = append(b.Records, RawRecord{Kind: record.KindRaw, Data: bytes.Clone(d.GetStringBytes())})
		return nil
	}

	if v.Exists("messageType") || v.Exists("logEvents") {
		b.Kind = KindCloudWatch
		b.Records = append(b.Records, RawRecord{Kind: record.KindLine, Data: bytes.Clone(raw)})
		return nil
	}

	if recs := v.Get("records"); recs != nil && recs.Type() == fastjson.TypeArray && v.Exists("requestId") {
		// A Firehose HTTP endpoint delivery request, forwarded as it was.
		items, _ := recs.Array()
		for i, it := range items {
			d := it.Get("data")
			if d == nil || d.Type() != fastjson.TypeString {
				return fmt.Errorf("%w: Firehose request record %d has no data string", ErrUnrecognised, i)
			}
			b.Records = append(b.Records, RawRecord{Kind: record.KindRaw, Data: bytes.Clone(d.GetStringBytes())})
		}
		b.Kind = KindFirehose
		return nil
	}

	if d := v.Get("rawData"); d != nil && d.Type() == fastjson.TypeString {
		// A Firehose error-backup record: rawData is the original record.
		b.Kind = KindFirehose
		b.Records = append(b.Records, RawRecord{Kind: record.KindRaw, Data: bytes.Clone(d.GetStringBytes())})
		return nil
	}

	return fmt.Errorf("%w: JSON object with none of the known shapes (S3 notification, SNS, EventBridge, CloudWatch Logs, Firehose): starts %q", ErrUnrecognised, head(raw, 80))
}

// parseS3Records reads an S3 event notification's Records.
func parseS3Records(b *Body, recs *fastjson.Value) error {
	items, _ := recs.Array()
	var skipped []string
	for i, r := range items {
		src := string(r.GetStringBytes("eventSource"))
		if src != "aws:s3" {
			return fmt.Errorf("%w: Records[%d] has eventSource %q, not aws:s3", ErrUnrecognised, i, src)
		}
		if major, _, _ := strings.Cut(string(r.GetStringBytes("eventVersion")), "."); major != "2" {
			return fmt.Errorf("%w: S3 event version %q (this build reads 2.x)", ErrUnrecognised, r.GetStringBytes("eventVersion"))
		}
		name := string(r.GetStringBytes("eventName"))
		if !strings.HasPrefix(name, "ObjectCreated:") {
			skipped = append(skipped, name)
			continue
		}
		// Keys are form-encoded in notifications: "red flower.jpg" arrives
		// as "red+flower.jpg".
		rawKey := string(r.GetStringBytes("s3", "object", "key"))
		key, err := url.QueryUnescape(rawKey)
		var unreadable string
		if err != nil {
			key, unreadable = rawKey, fmt.Sprintf("Records[%d]: object key %q: %v", i, head([]byte(rawKey), 200), err)
		}
		obj := r.Get("s3", "object")
		ref := ObjectRef{
			Bucket: string(r.GetStringBytes("s3", "bucket", "name")), Key: key, Version: version(obj.GetStringBytes("versionId")),
			ETag: string(obj.GetStringBytes("eTag")), Sequencer: string(obj.GetStringBytes("sequencer")),
			Size: obj.GetInt64("size"), Region: string(r.GetStringBytes("awsRegion")), EventName: name,
		}
		ref.EventTime, _ = time.Parse(time.RFC3339Nano, string(r.GetStringBytes("eventTime")))
		if unreadable == "" && (ref.Bucket == "" || key == "") {
			unreadable = fmt.Sprintf("Records[%d] names no bucket or key", i)
		}
		ref.Unreadable = unreadable
		b.Objects = append(b.Objects, ref)
	}
	// Records naming no object among others are dead-lettered, the others
	// read; when none can be read, the message is of no known shape.
	if i := slices.IndexFunc(b.Objects, func(r ObjectRef) bool { return r.Unreadable == "" }); i < 0 && len(b.Objects) > 0 {
		return fmt.Errorf("%w: %s", ErrUnrecognised, b.Objects[0].Unreadable)
	}
	if len(skipped) > 0 {
		b.Skip = "S3 events other than ObjectCreated: " + strings.Join(skipped, ", ")
	}
	if len(b.Objects) == 0 {
		if len(items) == 0 {
			return fmt.Errorf("%w: S3 notification without records", ErrUnrecognised)
		}
		b.Kind = KindSkip
		return nil
	}
	b.Kind = KindS3
	return nil
}

func head(p []byte, n int) []byte {
	if len(p) > n {
		return p[:n]
	}
	return p
}
