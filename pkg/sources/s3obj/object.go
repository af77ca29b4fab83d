package s3obj

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// Object describes the object a Reader reads: where it is, and what the
// records read from it inherit.
type Object struct {
	Bucket string
	Key    string
	// URL names the object in origins and dead letters; empty means
	// "s3://Bucket/Key". A local file uses its path.
	URL          string
	Size         int64
	ETag         string
	LastModified time.Time

	Region  string // the bucket's region (from the notification or the configuration)
	Account string // fallback account when the data does not name one

	Source string // Origin.Source: "s3" (SQS notifications) or "replay"
	Replay bool   // Origin.Replay
}

// Name is the object's URL: s3://bucket/key, or the path of a local file.
func (o Object) Name() string {
	if o.URL != "" {
		return o.URL
	}
	return "s3://" + o.Bucket + "/" + o.Key
}

// Layout is what an object holds, once decompressed.
type Layout uint8

const (
	LayoutAuto         Layout = iota // detect from the content and the key
	LayoutEnvelopes                  // Firehose records, starting with a CloudWatch envelope (read item by item, as LayoutAccessLines)
	LayoutAccessLines                // Firehose records, starting with something else: access-log lines, metric-stream datums…
	LayoutExport                     // CloudWatch Logs export task: "<timestamp> <message>" lines
	LayoutErrorBackup                // Firehose error-backup records ({"attemptsMade":…,"rawData":…})
	LayoutDLQ                        // gwpipe's dead-letter archive (package dlq)
	LayoutMetricFrames               // a CloudWatch metric stream's OpenTelemetry output: length-delimited frames
	LayoutBinary                     // none of these, and not text: dead-lettered, not read
)

var layoutNames = [...]string{"auto", "cloudwatch-envelopes", "access-lines", "export-task", "firehose-error-backup", "gwpipe-dlq", "metric-stream-otel", "binary"}

func (l Layout) String() string {
	if int(l) < len(layoutNames) {
		return layoutNames[l]
	}
	return "unknown"
}

// ParseLayout reads a layout name as String writes it.
func ParseLayout(s string) (Layout, error) {
	for i, n := range layoutNames {
		if n == s {
			return Layout(i), nil
		}
	}
	return LayoutAuto, fmt.Errorf("unknown object layout %q (layouts: %s)", s, strings.Join(layoutNames[:], ", "))
}

// WriteTestKey is the marker object a CloudWatch Logs export task writes
// to check its permissions; it holds no logs.
const WriteTestKey = "aws-logs-write-test"

// Skip reports whether an object never holds logs, and why: directory
// markers, the export-task permission check, empty objects.
func Skip(key string, size int64) (reason string, skip bool) {
	switch {
	case path.Base(key) == WriteTestKey:
		return "CloudWatch Logs export-task permission check (" + WriteTestKey + ")", true
	case strings.HasSuffix(key, "/") && size == 0:
		return "directory marker", true
	}
	return "", false
}

// keyTimeRE finds the Firehose delivery hour in a key: YYYY/MM/DD/HH/.
var keyTimeRE = regexp.MustCompile(`(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/`)

// KeyTime returns the hour a Firehose key names (its YYYY/MM/DD/HH/ prefix,
// UTC): the object holds records Firehose delivered during that hour.
func KeyTime(key string) (time.Time, bool) {
	m := keyTimeRE.FindStringSubmatchIndex(key)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("2006/01/02/15", key[m[2]:m[3]]+"/"+key[m[4]:m[5]]+"/"+key[m[6]:m[7]]+"/"+key[m[8]:m[9]])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// firehoseNameRE matches the object name Firehose writes:
// DeliveryStreamName-DeliveryStreamVersion-YYYY-MM-DD-HH-MM-SS-RandomString.
var firehoseNameRE = regexp.MustCompile(`^(.+?)-\d+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9A-Za-z-]+(?:\.[a-z0-9]+)?$`)

// DeliveryStream returns the Firehose delivery stream that wrote key, when
// the object name follows Firehose's pattern.
func DeliveryStream(key string) string {
	m := firehoseNameRE.FindStringSubmatch(path.Base(key))
	if m == nil {
		return ""
	}
	return m[1]
}

// exportKeyRE matches a CloudWatch Logs export-task object:
// <destinationPrefix>/<taskId>/<logStreamName>/000000.gz.
var exportKeyRE = regexp.MustCompile(`^(?:(.*)/)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/([^/]+)/\d{6}(?:\.gz)?$`)

// ExportKey reads an export-task key. The export does not record the log
// group in the object: it is taken to be the destination prefix (name the
// prefix after the group when exporting), and the stream is the folder
// under the task id.
func ExportKey(key string) (group, stream string, ok bool) {
	m := exportKeyRE.FindStringSubmatch(key)
	if m == nil {
		return "", "", false
	}
	return m[1], m[3], true
}

// ParseURL splits s3://bucket/prefix.
func ParseURL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/prefix URL", s)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}
