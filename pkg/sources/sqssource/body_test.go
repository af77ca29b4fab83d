package sqssource

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

const s3Event = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2","eventTime":"2026-01-15T12:00:00.000Z","eventName":"ObjectCreated:Put","userIdentity":{"principalId":"AIDAJDPLRKLG7UEXAMPLE"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},"s3":{"s3SchemaVersion":"1.0","configurationId":"testConfigRule","bucket":{"name":"my-bucket","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::my-bucket"},"object":{"key":"logs/2026/01/15/12/red+flower%28a%29.gz","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}]}`

const testEvent = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2014-10-13T15:57:02.089Z","Bucket":"bucketname","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`

const envelope = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"API-Gateway-Execution-Logs_a1b2c3d4e5/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1432826855000,"message":"(3323ffe5) Method completed with status: 200"}]}`

// sns wraps a message as SNS delivers it to SQS without raw message
// delivery: pretty-printed, the content as an escaped string.
func snsWrap(message string) string {
	b, _ := json.MarshalIndent(map[string]string{
		"Type": "Notification", "MessageId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "TopicArn": "arn:aws:sns:us-east-1:123456789012:my-topic",
		"Subject": "Amazon S3 Notification", "Message": message, "Timestamp": "2024-01-15T12:00:00.000Z", "SignatureVersion": "1",
		"Signature": "EXAMPLEpH+", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
		"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
	}, "", "  ")
	return string(b)
}

func TestParseBody(t *testing.T) {
	t.Parallel()
	b64gz := base64.StdEncoding.EncodeToString(corpus.Gzip([]byte(envelope)))
	eventBridge := `{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created","source":"aws.s3","account":"111122223333","time":"2021-11-12T00:00:00Z","region":"ca-central-1","resources":["arn:aws:s3:::example-bucket"],"detail":{"version":"0","bucket":{"name":"example-bucket"},"object":{"key":"a b/c+d.gz","size":5,"etag":"b1946ac92492d2347c6235b4d2611184","sequencer":"617f08299329d189"},"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}`
	wantObj := ObjectRef{Bucket: "my-bucket", Key: "logs/2026/01/15/12/red flower(a).gz", ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "0055AED6DCD90281E5",
		Size: 1024, Region: "us-west-2", EventName: "ObjectCreated:Put"}
	versioned := strings.Replace(s3Event, `"sequencer"`, `"versionId":"3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY","sequencer"`, 1)
	wantVersioned := wantObj
	wantVersioned.Version = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
	eventBridgeVersioned := strings.Replace(eventBridge, `"sequencer"`, `"version-id":"IYV3p45BhZA1l9FsSpHx6LHOR3NsXN","sequencer"`, 1)
	cases := []struct {
		name     string
		body     string
		kind     Kind
		wrapping []string
		objects  []ObjectRef
		records  []RawRecord
		skip     string
	}{
		{name: "S3 notification, direct", body: s3Event, kind: KindS3, objects: []ObjectRef{wantObj}},
		{name: "S3 notification through SNS", body: snsWrap(s3Event), kind: KindS3, wrapping: []string{"sns"}, objects: []ObjectRef{wantObj}},
		{name: "S3 notification through SNS with raw delivery", body: s3Event, kind: KindS3, objects: []ObjectRef{wantObj}},
		{name: "SNS around SNS", body: snsWrap(snsWrap(s3Event)), kind: KindS3, wrapping: []string{"sns", "sns"}, objects: []ObjectRef{wantObj}},
		{name: "EventBridge Object Created", body: eventBridge, kind: KindS3, wrapping: []string{"eventbridge"},
			objects: []ObjectRef{{Bucket: "example-bucket", Key: "a b/c+d.gz", ETag: "b1946ac92492d2347c6235b4d2611184", Sequencer: "617f08299329d189",
				Size: 5, Region: "ca-central-1", EventName: "ObjectCreated:PutObject"}}},
		{name: "S3 notification of a version", body: versioned, kind: KindS3, objects: []ObjectRef{wantVersioned}},
		{name: "S3 notification of the null version", body: strings.Replace(versioned, "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "null", 1),
			kind: KindS3, objects: []ObjectRef{wantObj}},
		{name: "EventBridge Object Created of a version", body: eventBridgeVersioned, kind: KindS3, wrapping: []string{"eventbridge"},
			objects: []ObjectRef{{Bucket: "example-bucket", Key: "a b/c+d.gz", Version: "IYV3p45BhZA1l9FsSpHx6LHOR3NsXN", ETag: "b1946ac92492d2347c6235b4d2611184",
				Sequencer: "617f08299329d189", Size: 5, Region: "ca-central-1", EventName: "ObjectCreated:PutObject"}}},
		{name: "EventBridge Object Deleted", body: `{"detail-type":"Object Deleted","source":"aws.s3","detail":{}}`, kind: KindSkip, wrapping: []string{"eventbridge"}, skip: "Object Deleted"},
		{name: "s3:TestEvent", body: testEvent, kind: KindSkip, skip: "s3:TestEvent"},
		{name: "s3:TestEvent through SNS", body: snsWrap(testEvent), kind: KindSkip, wrapping: []string{"sns"}, skip: "s3:TestEvent"},
		{name: "SNS subscription confirmation", body: `{"Type":"SubscriptionConfirmation","TopicArn":"arn:aws:sns:us-east-1:1:t","SubscribeURL":"https://x"}`, kind: KindSkip, skip: "SubscriptionConfirmation"},
		{name: "other S3 events only", body: `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`,
			kind: KindSkip, skip: "ObjectRemoved:Delete"},
		{name: "CloudWatch base64 gzip", body: b64gz, kind: KindCloudWatch, wrapping: []string{"base64"},
			records: []RawRecord{{Kind: record.KindRaw, Data: []byte(b64gz)}}},
		{name: "CloudWatch base64 gzip through SNS", body: snsWrap(b64gz), kind: KindCloudWatch, wrapping: []string{"sns", "base64"},
			records: []RawRecord{{Kind: record.KindRaw, Data: []byte(b64gz)}}},
		{name: "CloudWatch gzip bytes", body: string(corpus.Gzip([]byte(envelope))), kind: KindCloudWatch,
			records: []RawRecord{{Kind: record.KindLine, Data: corpus.Gzip([]byte(envelope))}}},
		{name: "CloudWatch JSON envelope", body: envelope + "\n", kind: KindCloudWatch,
			records: []RawRecord{{Kind: record.KindLine, Data: []byte(envelope)}}},
		{name: "CloudWatch awslogs wrapper", body: `{"awslogs":{"data":"` + b64gz + `"}}`, kind: KindCloudWatch, wrapping: []string{"awslogs"},
			records: []RawRecord{{Kind: record.KindRaw, Data: []byte(b64gz)}}},
		{name: "Firehose delivery request", body: `{"requestId":"r","timestamp":1,"records":[{"data":"` + b64gz + `"},{"data":"aGVsbG8="}]}`, kind: KindFirehose,
			records: []RawRecord{{Kind: record.KindRaw, Data: []byte(b64gz)}, {Kind: record.KindRaw, Data: []byte("aGVsbG8=")}}},
		{name: "Firehose error-backup record", body: `{"attemptsMade":5,"arrivalTimestamp":1594265943615,"errorCode":"HttpEndpoint.DestinationException","errorMessage":"x","rawData":"c2FtcGxlIHJhdyBkYXRh","subsequenceNumber":0}`,
			kind: KindFirehose, records: []RawRecord{{Kind: record.KindRaw, Data: []byte("c2FtcGxlIHJhdyBkYXRh")}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := ParseBody([]byte(c.body))
			require.NoError(t, err)
			assert.Equal(t, c.kind, b.Kind)
			assert.Equal(t, c.wrapping, b.Wrapping)
			for i := range b.Objects {
				b.Objects[i].EventTime = b.Objects[i].EventTime.UTC()
				assert.False(t, b.Objects[i].EventTime.IsZero(), "event time is read")
			}
			for i := range c.objects {
				if i < len(b.Objects) {
					c.objects[i].EventTime = b.Objects[i].EventTime
				}
			}
			assert.Equal(t, c.objects, b.Objects)
			assert.Equal(t, c.records, b.Records)
			if c.skip != "" {
				assert.Contains(t, b.Skip, c.skip)
			}
		})
	}
}

func TestParseBodyPoison(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"empty":                 "   ",
		"plain text":            "hello world",
		"truncated JSON":        `{"Records":[{"eventSource":"aws:s3"`,
		"JSON array":            `[1,2]`,
		"unknown object":        `{"hello":"world"}`,
		"not S3 records":        `{"Records":[{"eventSource":"aws:sqs","body":"x"}]}`,
		"S3 event version 3":    `{"Records":[{"eventVersion":"3.0","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`,
		"bad key escape":        `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`,
		"no records":            `{"Records":[]}`,
		"SNS of garbage":        snsWrap("garbage"),
		"deeply nested SNS":     snsWrap(snsWrap(snsWrap(snsWrap(snsWrap(s3Event))))),
		"EventBridge no object": `{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseBody([]byte(body))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUnrecognised)
		})
	}
}

// An S3 event is identified only when something tells a copy of it from a
// new write of the same key: a version, or a sequencer with an eTag.
func TestObjectRefEvent(t *testing.T) {
	t.Parallel()
	ref := ObjectRef{Bucket: "b", Key: "k", ETag: "e", Sequencer: "s"}
	assert.NotEmpty(t, ref.Event())
	other := ref
	other.Sequencer = "s2"
	assert.NotEqual(t, ref.Event(), other.Event(), "another write of the key")
	assert.Empty(t, ObjectRef{Bucket: "b", Key: "k", ETag: "e"}.Event(), "no sequencer: a rewrite looks the same")
	assert.Empty(t, ObjectRef{Bucket: "b", Key: "k", Sequencer: "s"}.Event(), "no eTag")
	assert.NotEmpty(t, ObjectRef{Bucket: "b", Key: "k", Version: "v"}.Event(), "a version is written once")
	assert.NotEqual(t, ObjectRef{Bucket: "b", Key: "k", Version: "v"}.Event(), ObjectRef{Bucket: "b", Key: "k2", Version: "v"}.Event())
}

// TestParseBodyKeepsTheReadableRecords: a notification record that names
// no object to read (a key not form-encoded, no bucket) beside records
// that do is kept, marked with why, for the source to dead-letter: the
// others are not lost with it.
func TestParseBodyKeepsTheReadableRecords(t *testing.T) {
	t.Parallel()
	rec := func(bucket, key string) string {
		return `{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"` + bucket + `"},"object":{"key":"` + key + `"}}}`
	}
	b, err := ParseBody([]byte(`{"Records":[` + rec("b", "one") + `,` + rec("b", "100%zz") + `,` + rec("", "k") + `,` + rec("b", "two+2") + `]}`))
	require.NoError(t, err)
	assert.Equal(t, KindS3, b.Kind)
	require.Len(t, b.Objects, 4)
	assert.Empty(t, b.Objects[0].Unreadable)
	assert.Equal(t, "one", b.Objects[0].Key)
	assert.Contains(t, b.Objects[1].Unreadable, `Records[1]: object key "100%zz"`)
	assert.Equal(t, "100%zz", b.Objects[1].Key, "named as the notification wrote it")
	assert.Contains(t, b.Objects[2].Unreadable, "Records[2] names no bucket or key")
	assert.Empty(t, b.Objects[3].Unreadable)
	assert.Equal(t, "two 2", b.Objects[3].Key)

	// None readable: a message of no known shape, as before.
	_, err = ParseBody([]byte(`{"Records":[` + rec("b", "%zz") + `,` + rec("", "k") + `]}`))
	assert.ErrorIs(t, err, ErrUnrecognised)
}
