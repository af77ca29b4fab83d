package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/sources/s3obj/s3objtest"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

// aws is the emulator and its clients, for one test.
type awsEnv struct {
	moto *s3objtest.Moto
	s3   *s3.Client
	sqs  *sqs.Client
	sns  *sns.Client
	fh   *firehose.Client
	logs *cloudwatchlogs.Client
}

func startAWS(t *testing.T) *awsEnv {
	m := s3objtest.StartMoto(t)
	cfg := m.AWSConfig()
	return &awsEnv{
		moto: m, s3: awsconf.S3(cfg), sqs: sqs.NewFromConfig(cfg), sns: sns.NewFromConfig(cfg),
		fh: firehose.NewFromConfig(cfg), logs: cloudwatchlogs.NewFromConfig(cfg),
	}
}

func (a *awsEnv) bucket(t *testing.T, name string) string {
	t.Helper()
	_, err := a.s3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	require.NoError(t, err)
	return "arn:aws:s3:::" + name
}

func (a *awsEnv) queue(t *testing.T, name string) (url, arn string) {
	t.Helper()
	ctx := context.Background()
	out, err := a.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	require.NoError(t, err)
	attrs, err := a.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	require.NoError(t, err)
	return *out.QueueUrl, attrs.Attributes["QueueArn"]
}

// notify sends a bucket's ObjectCreated notifications to a queue or topic.
func (a *awsEnv) notify(t *testing.T, bucket, queueARN, topicARN string) {
	t.Helper()
	nc := &s3types.NotificationConfiguration{}
	if queueARN != "" {
		nc.QueueConfigurations = []s3types.QueueConfiguration{{QueueArn: aws.String(queueARN), Events: []s3types.Event{"s3:ObjectCreated:*"}}}
	}
	if topicARN != "" {
		nc.TopicConfigurations = []s3types.TopicConfiguration{{TopicArn: aws.String(topicARN), Events: []s3types.Event{"s3:ObjectCreated:*"}}}
	}
	_, err := a.s3.PutBucketNotificationConfiguration(context.Background(), &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(bucket), NotificationConfiguration: nc})
	require.NoError(t, err)
}

// waitDrained waits until SQS reports no message left in the queue,
// visible or in flight.
func (a *awsEnv) waitDrained(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	require.NoError(t, waitFor(ctx, func() bool {
		out, err := a.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		}})
		return err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	}), "queue %s not drained", url)
}

// cloudWatchChain builds the real chain: a log group whose subscription
// filter feeds a Firehose delivery stream writing to S3 under firehose/.
func (a *awsEnv) cloudWatchChain(t *testing.T, bucket, group, stream string) {
	t.Helper()
	ctx := context.Background()
	bucketARN := a.bucket(t, bucket)
	ds, err := a.fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{
		DeliveryStreamName: aws.String("gw-logs"), DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{
			BucketARN: aws.String(bucketARN), RoleARN: aws.String("arn:aws:iam::123456789012:role/firehose"), Prefix: aws.String("firehose/"),
			CompressionFormat: fhtypes.CompressionFormatUncompressed,
		},
	})
	require.NoError(t, err)
	_, err = a.logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(group)})
	require.NoError(t, err)
	_, err = a.logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream)})
	require.NoError(t, err)
	_, err = a.logs.PutSubscriptionFilter(ctx, &cloudwatchlogs.PutSubscriptionFilterInput{
		LogGroupName: aws.String(group), FilterName: aws.String("to-firehose"), FilterPattern: aws.String(""),
		DestinationArn: ds.DeliveryStreamARN, RoleArn: aws.String("arn:aws:iam::123456789012:role/cwl"),
	})
	require.NoError(t, err)
}

// accessLine is an API Gateway access log in the JSON format, unique by n.
func accessLine(n int) string {
	// No requestTime: the event keeps the CloudWatch timestamp.
	return fmt.Sprintf(`{"requestId":"req-%08d","ip":"203.0.113.%d","httpMethod":"GET","resourcePath":"/pets/{petId}","status":%d,"protocol":"HTTP/1.1","responseLength":%d}`,
		n, n%250, 200+(n%3)*100, n%5000)
}

// putEvents writes n events in calls of per (CloudWatch's limit is 10,000
// events per call), timestamps from start one millisecond apart, and
// returns the messages by timestamp.
func (a *awsEnv) putEvents(t *testing.T, group, stream string, n, per int, start time.Time, step time.Duration) map[string]int64 {
	t.Helper()
	sent := make(map[string]int64, n)
	for i := 0; i < n; i += per {
		evs := make([]cwltypes.InputLogEvent, 0, per)
		for j := i; j < min(i+per, n); j++ {
			ts := start.Add(time.Duration(j) * step).UnixMilli()
			msg := accessLine(j)
			sent[msg] = ts
			evs = append(evs, cwltypes.InputLogEvent{Message: aws.String(msg), Timestamp: aws.Int64(ts)})
		}
		out, err := a.logs.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: evs})
		require.NoError(t, err)
		require.Nil(t, out.RejectedLogEventsInfo, "every event accepted")
	}
	return sent
}

// checkExactlyOnce checks that the intake holds every sent message once.
func checkExactlyOnce(t *testing.T, logs []fakeintake.Log, sent map[string]int64) {
	t.Helper()
	seen := make(map[string]int, len(logs))
	for _, l := range logs {
		seen[l.Message]++
	}
	missing, dup := 0, 0
	for msg := range sent {
		switch n := seen[msg]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	assert.Zero(t, missing, "events never delivered")
	assert.Zero(t, dup, "events delivered more than once")
	assert.Equal(t, len(sent), len(logs), "no more and no fewer logs than events")
}

func sqsHarness(t *testing.T, queues ...string) *harness {
	return start(t, func(c *config.Config) {
		c.Sources.SQS.QueueURLs = queues
		c.Sources.SQS.WaitTime = time.Second
		c.Sources.SQS.VisibilityTimeout = 10 * time.Second
		c.Sources.SQS.MaxConcurrentMessages = 20
	})
}

// TestSQSChainEveryEventExactlyOnce runs the real chain: CloudWatch Logs
// put_log_events → subscription filter → Firehose → S3 → S3 notification →
// SQS → gwpipe → the intake.
func TestSQSChainEveryEventExactlyOnce(t *testing.T) {
	const events = 100_000
	a := startAWS(t)
	group, stream := "/aws/api-gateway/a1b2c3d4e5/prod", "access"
	a.cloudWatchChain(t, "gw-archive", group, stream)
	q, qARN := a.queue(t, "gw-notifications")
	a.notify(t, "gw-archive", qARN, "")

	h := sqsHarness(t, q)
	sent := a.putEvents(t, group, stream, events, 10_000, time.Now().Add(-time.Hour), time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	require.NoError(t, h.intake.WaitLogs(ctx, events))
	a.waitDrained(t, q) // every message deleted: each was acknowledged end to end

	// SQS delivers at least once (and moto hands a message to two receives
	// at once now and then): a copy is worked on once and its receipt
	// handle deleted too, which the source counts as a duplicate. The
	// delete counter moves when SQS's answer is read, a moment after the
	// queue drained.
	messages := int64(events/10_000 + 1) // one per object, and the s3:TestEvent
	require.NoError(t, waitFor(ctx, func() bool {
		c := h.p.Status().Counters
		return c["sqs.messages_deleted"] >= messages+c["sqs.duplicate_messages"]
	}), "every message deleted: %v", h.p.Status().Counters)

	logs := h.intake.Logs()
	checkExactlyOnce(t, logs, sent)
	for _, l := range logs[:100] {
		assert.Equal(t, "apigateway", l.Source)
		assert.Equal(t, group, l.Hostname)
		assert.Equal(t, sent[l.Message], l.Timestamp.UnixMilli())
		assert.Contains(t, l.Tags, "aws_account:"+s3objtest.Account)
		assert.Contains(t, l.Tags, "region:"+s3objtest.Region)
		assert.NotContains(t, l.Tags, "replay:true")
		assert.NotNil(t, attr(l, "http.status_code"), "parsed as an access log: %s", l.Message)
	}
	st := h.p.Status()
	dups := st.Counters["sqs.duplicate_messages"]
	assert.EqualValues(t, messages+dups, st.Counters["sqs.messages_deleted"], "one message per object, and the s3:TestEvent, with the %d copies SQS handed out", dups)
	assert.EqualValues(t, messages+dups, st.Counters["sqs.messages_received"], "each received once, but the copies")
	assert.EqualValues(t, 1, st.Counters["sqs.messages_skipped"])
	assert.Zero(t, st.Counters["sqs.messages_failed"])
}

// TestSQSNotificationsThroughSNSAndAPoisonObject: notifications wrapped in
// SNS (raw delivery off) and raw (raw delivery on), and an object that is
// broken half-way: its good part is delivered, the rest dead-lettered with
// the reason, and its message deleted all the same.
func TestSQSNotificationsThroughSNSAndAPoisonObject(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, qARN := a.queue(t, "via-sns")
	for _, c := range []struct {
		bucket string
		raw    bool
	}{{"wrapped-bucket", false}, {"raw-bucket", true}} {
		a.bucket(t, c.bucket)
		topic, err := a.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(c.bucket + "-topic")})
		require.NoError(t, err)
		in := &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(qARN)}
		if c.raw {
			in.Attributes = map[string]string{"RawMessageDelivery": "true"}
		}
		_, err = a.sns.Subscribe(ctx, in)
		require.NoError(t, err)
		a.notify(t, c.bucket, "", *topic.TopicArn)
	}
	h := sqsHarness(t, q)

	arch, err := s3objtest.FirehoseArchive(3, 20_000, 5_000, time.Now().Add(-10*time.Minute))
	require.NoError(t, err)
	sent := map[string]int64{}
	for i, obj := range arch.Objects {
		bucket := []string{"wrapped-bucket", "raw-bucket"}[i%2]
		key := fmt.Sprintf("firehose/%s/gw-logs-1-%s-%04d", time.Now().UTC().Format("2006/01/02/15"), time.Now().UTC().Format("2006-01-02-15-04-05"), i)
		_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(obj)})
		require.NoError(t, err)
	}
	for _, e := range arch.Events {
		sent[e.Message] = e.Timestamp
	}
	// The poison object: two good envelopes, then bytes that are not gzip.
	good := gz([]byte(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/p/prod","logStream":"s","subscriptionFilters":["f"],"logEvents":[` +
		`{"id":"1","timestamp":` + fmt.Sprint(time.Now().UnixMilli()) + `,"message":"poison-part-1"},{"id":"2","timestamp":` + fmt.Sprint(time.Now().UnixMilli()) + `,"message":"poison-part-2"}]}`))
	_, err = a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("wrapped-bucket"), Key: aws.String("firehose/poison.gz"),
		Body: bytes.NewReader(append(good, []byte("<html>503 Service Unavailable</html>")...))})
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	require.NoError(t, h.intake.WaitLogs(wctx, len(sent)+2))
	a.waitDrained(t, q)

	var logs []fakeintake.Log
	poison := 0
	for _, l := range h.intake.Logs() {
		if strings.HasPrefix(l.Message, "poison-part-") {
			poison++
			continue
		}
		logs = append(logs, l)
	}
	assert.Equal(t, 2, poison, "the readable part of the poison object is delivered")
	checkExactlyOnce(t, logs, sent)

	entries := readDLQ(t, h.dlqDir)
	require.Len(t, entries, 1)
	assert.Equal(t, "s3-read", entries[0].Stage)
	assert.Contains(t, entries[0].Reason, "s3://wrapped-bucket/firehose/poison.gz unreadable")
	assert.Equal(t, "s3", entries[0].Origin.Source)
	st := h.p.Status()
	assert.Zero(t, st.Counters["sqs.messages_failed"])
	assert.EqualValues(t, 2, st.Counters["sqs.messages_skipped"], "the s3:TestEvent of each topic")
}

func readDLQ(t *testing.T, dir string) []dlq.Entry {
	t.Helper()
	entries, _ := dlqArchive(t, dir)
	return entries
}

// dlqArchive reads every file of the dead-letter archive in dir: its
// entries, and how many lines were cut short.
func dlqArchive(t *testing.T, dir string) (entries []dlq.Entry, partial int) {
	t.Helper()
	files, err := dlq.Files(dir)
	require.NoError(t, err)
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		st, err := dlq.Read(fh, func(e dlq.Entry) error { entries = append(entries, e); return nil })
		fh.Close()
		require.NoError(t, err)
		partial += st.Partial
	}
	return entries, partial
}

// TestEverySQSFigureInTheSummaryIsTrue runs the SQS source on what each of
// its figures must count — CloudWatch payloads for the decode stage (one a
// control message), S3 objects read by the source itself (one holding a
// control message), an object S3 does not have, and a copy of an S3 event —
// and holds the exit summary against the intake and the archive: events
// read from objects are events decoded, their control messages are
// dropped control messages, and the SQS lines say what became of the
// messages and objects.
func TestEverySQSFigureInTheSummaryIsTrue(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, _ := a.queue(t, "figures")
	a.bucket(t, "objs")
	objA := append(gz(controlEnvelope()), gz(accessEnvelope("o1", "o2", "o3", "o4", "o5"))...)
	objB := gz(accessEnvelope("p1", "p2"))
	for key, data := range map[string][]byte{"fh/a.gz": objA, "fh/b.gz": objB} {
		_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("objs"), Key: aws.String(key), Body: bytes.NewReader(data)})
		require.NoError(t, err)
	}
	record := func(key, sequencer string) string {
		return `{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"` + s3objtest.Region + `","eventTime":"2026-12-03T19:00:00.000Z","eventName":"ObjectCreated:Put",` +
			`"s3":{"bucket":{"name":"objs"},"object":{"key":"` + key + `","size":1,"eTag":"e","sequencer":"` + sequencer + `"}}}`
	}
	copied := `{"Records":[` + record("fh/b.gz", "02") + `]}`
	for _, body := range []string{
		`{"awslogs":{"data":"` + base64.StdEncoding.EncodeToString(gz(accessEnvelope("w1", "w2", "w3"))) + `"}}`,
		base64.StdEncoding.EncodeToString(gz(controlEnvelope())),
		`{"Records":[` + record("fh/a.gz", "01") + `,` + record("fh/missing.gz", "03") + `]}`,
		copied, copied, // S3 sent the event twice
	} {
		_, err := a.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
		require.NoError(t, err)
	}
	h := start(t, func(c *config.Config) {
		c.Sources.SQS.QueueURLs = []string{q}
		c.Sources.SQS.WaitTime = time.Second
		c.Metrics.AllowedLateness = time.Hour // windows close at the drain: no late records
	})
	const events = 3 + 5 + 2
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, h.intake.WaitLogs(wctx, events))
	a.waitDrained(t, q)
	// SQS delivers at least once (moto hands a message to two receives at
	// once now and then): a copy joins the work on its message, or is
	// deleted at once when that was delivered, and is counted as a
	// duplicate; its receipt handle is deleted and its receive counted
	// like the others'. Nothing of it is read or decoded again: the other
	// figures stay as they are.
	const messages = 5
	require.NoError(t, waitFor(wctx, func() bool {
		c := h.p.Status().Counters
		return c["sqs.messages_deleted"] >= messages+c["sqs.duplicate_messages"]
	}))
	h.shutdown(t)
	dups := h.p.Status().Counters["sqs.duplicate_messages"]

	in := intakeHolds(h.intake)
	require.Equal(t, events, in.logs)
	dead := archived(t, h.dlqDir)
	require.Equal(t, map[string]int{"s3-read": 1}, dead, "the missing object, by name")
	sum := summaryLines(t, h.p)
	assert.Regexp(t, `^p50 \d+\.\d ms, p99 \d+\.\d ms, max \d+\.\d ms$`, sum["sqs message latency"])
	assert.Equal(t, map[string]string{
		"firehose requests":   "0 acknowledged, 0 refused, 0 timed out, 0 failed, 0 handed back, 0 duplicates",
		"firehose records in": "0",
		"sqs messages": fmt.Sprintf("%d deleted (0 with nothing to read), 0 failed (0 unrecognised), 0 handed back, %d duplicates; %d receives",
			messages+dups, dups, messages+dups),
		"sqs records in":          "2",
		"s3 objects read":         fmt.Sprintf("2 (%d bytes, 7 events), 1 unreadable (dead-lettered by name), 1 duplicates (not read again)", len(objA)+len(objB)),
		"events decoded":          fmt.Sprintf("%d (control messages dropped: 2)", events),
		"events parsed":           fmt.Sprintf("%d (with request summaries folded from execution logs)", events),
		"logs delivered (2xx)":    fmt.Sprint(events),
		"metric points delivered": fmt.Sprintf("%d series points, %d distribution values", in.series, in.values),
		"dead-lettered":           fmt.Sprintf("1 written to %s (s3-read 1)", h.dlqDir),
		"handed back":             "0 (everything admitted was delivered or dead-lettered)",
		"ack latency":             "none (no request acknowledged)",
		"sqs message latency":     sum["sqs message latency"],
	}, sum)

	// The live line: rates over one second from nothing to these totals,
	// the SQS source's beside the Firehose endpoint's (both run here).
	s := h.p.Status()
	cur := h.p.flow(s)
	prev := flow{at: cur.at.Add(-time.Second)}
	assert.Equal(t,
		fmt.Sprintf("[    1s] firehose records/s 0 | sqs messages deleted/s %d | events/s decoded %d parsed %d delivered %d | dead-lettered 1 | in flight 0 | ack p99 - | sqs message p99 %.0f ms | %s\n",
			messages+dups, events, events, events, s.snap.Quantiles("sqs.message_latency").P99, s.Ready),
		reportLine(prev.at, prev, cur, s))
}

// failingDeletes is a real HTTP server in front of moto_server that
// refuses every SQS DeleteMessageBatch (an error the SDK does not retry)
// and passes every other call.
func failingDeletes(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.DeleteMessageBatch" {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"__type":"com.amazonaws.sqs#AccessDenied","message":"denied by the test's proxy"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestSQSSummaryCountsMessagesDeliveredAndNotDeleted: messages whose
// content was delivered but whose delete SQS refused are counted
// (sqs.messages_not_deleted, and sqs.deletes_pending while their delete
// waits) and the exit summary says they come back and are delivered
// again; they are indeed still in the queue. The run has no Firehose
// endpoint, and its summary has no Firehose line.
func TestSQSSummaryCountsMessagesDeliveredAndNotDeleted(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, _ := a.queue(t, "undeletable")
	const messages = 4
	for i := range messages {
		body := `{"awslogs":{"data":"` + base64.StdEncoding.EncodeToString(gz(accessEnvelope(fmt.Sprintf("m%d", i)))) + `"}}`
		_, err := a.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
		require.NoError(t, err)
	}
	t.Setenv("AWS_ENDPOINT_URL", failingDeletes(t, a.moto.Endpoint)) // the pipeline's SQS client
	h := start(t, func(c *config.Config) {
		c.Sources.Firehose.Enabled = false
		c.Sources.SQS.QueueURLs = []string{q}
		c.Sources.SQS.WaitTime = time.Second
		c.Sources.SQS.VisibilityTimeout = time.Hour // delivered once: not given out again during the test
	})
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, h.intake.WaitLogs(wctx, messages))
	require.NoError(t, waitFor(wctx, func() bool {
		st := h.p.Status()
		return st.Counters["sqs.messages_not_deleted"]+st.Gauges["sqs.deletes_pending"] == messages
	}), "every delivered message is counted as not deleted yet")
	h.shutdown(t)

	st := h.p.Status()
	assert.EqualValues(t, messages, st.Counters["sqs.messages_not_deleted"], "the deletes failed or were cut short by the shutdown")
	assert.Zero(t, st.Gauges["sqs.deletes_pending"], "none left pending once the source stopped")
	assert.Zero(t, st.Counters["sqs.messages_deleted"])
	// They really are still in the queue.
	out, err := a.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	}})
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprint(messages), out.Attributes["ApproximateNumberOfMessagesNotVisible"])

	sum := summaryLines(t, h.p)
	assert.Equal(t, fmt.Sprintf("%d messages delivered and not deleted (%d deletes failed, 0 still pending at exit): SQS gives them out again, and their content is delivered again", messages, messages), sum["sqs not deleted"])
	assert.Equal(t, fmt.Sprintf("0 deleted (0 with nothing to read), 0 failed (0 unrecognised), 0 handed back, 0 duplicates; %d receives", messages), sum["sqs messages"])
	assert.Equal(t, fmt.Sprint(messages), sum["logs delivered (2xx)"])
	for label := range sum {
		assert.NotContains(t, label, "firehose", "no Firehose endpoint ran")
	}
	assert.NotContains(t, sum, "ack latency", "the Firehose acknowledgement latency")
}

// TestSQSHandedBackSaysWhatOfItWasDelivered: a message announcing two
// objects is handed back at shutdown after the first object was
// delivered (the intake holds the second's logs past the drain). SQS
// gives the message out again whole, and the process that takes it reads
// both: the summary's handed back line says one object of it was
// delivered already and will be delivered again
// (sqs.handed_back_objects_delivered), as it does for Firehose requests.
func TestSQSHandedBackSaysWhatOfItWasDelivered(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, _ := a.queue(t, "handback")
	a.bucket(t, "objs")
	for key, data := range map[string][]byte{"fh/a.gz": gz(accessEnvelope("a1", "a2", "a3")), "fh/b.gz": gz(accessEnvelope("b1", "b2"))} {
		_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("objs"), Key: aws.String(key), Body: bytes.NewReader(data)})
		require.NoError(t, err)
	}
	record := func(key, sequencer string) string {
		return `{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"` + s3objtest.Region + `","eventTime":"2026-12-03T19:00:00.000Z","eventName":"ObjectCreated:Put",` +
			`"s3":{"bucket":{"name":"objs"},"object":{"key":"` + key + `","size":1,"eTag":"e","sequencer":"` + sequencer + `"}}}`
	}
	_, err := a.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(`{"Records":[` + record("fh/a.gz", "01") + `,` + record("fh/b.gz", "02") + `]}`)})
	require.NoError(t, err)
	// The second object is read once the first one's logs are delivered,
	// and its logs wait at the intake.
	s3p := newHeldProxy(t, a.moto.Endpoint, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/objs/fh/b.gz") }, 0)
	t.Setenv("AWS_ENDPOINT_URL", s3p.URL)
	intake, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}})
	logs := newHeldProxy(t, base, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/logs") }, 1)
	p := startSQSOnly(t, ctx, logs.URL, q)

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, intake.WaitLogs(wctx, 3), "the first object delivered")
	s3p.gate.Release()
	select {
	case <-logs.held: // the second object's logs wait at the intake
	case <-wctx.Done():
		t.Fatal("the second object's logs never reached the intake")
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	_ = p.Shutdown(sctx) // hands the second object's logs back

	assert.Equal(t, 3, len(intake.Logs()))
	st := p.Status()
	assert.EqualValues(t, 1, st.Counters["sqs.messages_handed_back"])
	assert.EqualValues(t, 1, st.Counters["sqs.handed_back_objects_delivered"])
	assert.Equal(t, "1 SQS message (visible again for redelivery); 1 S3 object of those messages already delivered or dead-lettered: the redelivery delivers them again",
		summaryLines(t, p)["handed back"])
	out, err := a.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	require.NoError(t, err)
	assert.Equal(t, "1", out.Attributes["ApproximateNumberOfMessages"], "visible again, as the summary says")
}

// TestSQSMessageStuckAtShutdownIsMadeVisibleAgainWithinTheDeadline: a
// message whose S3 object does not come (S3 holds the GET) when the
// pipeline shuts down is given up before the deadline, with time left to
// make it visible again: SQS shows it visible at once, as the summary
// says, and the shutdown ends within its time. Given up only when the
// deadline passed, the call that makes it visible failed (it came back
// after its visibility timeout, an hour here) and every part of the
// shutdown after it ran out of time.
func TestSQSMessageStuckAtShutdownIsMadeVisibleAgainWithinTheDeadline(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, _ := a.queue(t, "stuck")
	a.notifiedObject(t, q)
	s3p := newHeldProxy(t, a.moto.Endpoint, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/objs/fh/b.gz") }, 0)
	t.Setenv("AWS_ENDPOINT_URL", s3p.URL)
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}})
	p := startSQSOnly(t, ctx, base, q)
	<-s3p.held
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	err := p.Shutdown(sctx)
	require.NoError(t, sctx.Err(), "the shutdown ended within its time")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sqs source: messages still being worked on at shutdown (they will be redelivered)")
	assert.NotContains(t, err.Error(), "still running at the shutdown deadline")
	assert.Equal(t, "1 SQS message (visible again for redelivery)", summaryLines(t, p)["handed back"])
	out, err := a.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	require.NoError(t, err)
	assert.Equal(t, "1", out.Attributes["ApproximateNumberOfMessages"], "visible again at once")
}

// startSQSOnly starts a pipeline whose only source is the SQS queue q,
// its messages kept invisible for an hour (only the pipeline makes them
// visible again), delivering to the intake at base.
func startSQSOnly(t *testing.T, ctx context.Context, base, q string) *Pipeline {
	t.Helper()
	cfg := intakeConfig(base)
	cfg.DLQ.Dir = t.TempDir()
	cfg.Enrich.AWSTags = false
	cfg.Sources.Firehose.Enabled = false
	cfg.Sources.SQS.QueueURLs = []string{q}
	cfg.Sources.SQS.WaitTime = time.Second
	cfg.Sources.SQS.VisibilityTimeout = time.Hour
	p, err := New(cfg, nil, testLogger())
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx))
	return p
}

// TestSQSDeletesStalledAtShutdownHoldNeitherTheDrainNorTheDeadline: the
// content of a message is delivered, then SQS stops answering (the
// DeleteMessageBatch is held, as with moto_server paused). The shutdown
// drains the stages meanwhile: the metrics derived from the delivered
// logs reach the intake (none lost), the delete is cut short with time
// left to close, and the shutdown ends within its time with the message
// counted as not deleted. Waiting for the delete, the drain stopped at
// the deadline: every derived point was counted lost (6,353 of a 3-object
// run), the shutdown used all its time and ended past it, and every part
// after the source (deliver-metrics, enrich, the archive, the admin
// endpoint) was reported still running.
func TestSQSDeletesStalledAtShutdownHoldNeitherTheDrainNorTheDeadline(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, _ := a.queue(t, "stalled-deletes")
	body := `{"awslogs":{"data":"` + base64.StdEncoding.EncodeToString(gz(accessEnvelope("m1", "m2"))) + `"}}`
	_, err := a.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)})
	require.NoError(t, err)
	deletes := newHeldProxy(t, a.moto.Endpoint, func(r *http.Request) bool {
		return r.Header.Get("X-Amz-Target") == "AmazonSQS.DeleteMessageBatch"
	}, 0)
	t.Setenv("AWS_ENDPOINT_URL", deletes.URL)
	intake, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}})
	p := startSQSOnly(t, ctx, base, q)

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, intake.WaitLogs(wctx, 2))
	select {
	case <-deletes.held: // the delete waits for an answer that does not come
	case <-wctx.Done():
		t.Fatal("the message was never deleted")
	}
	require.Empty(t, intake.Series(), "the window is still open")
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	err = p.Shutdown(sctx)
	require.NoError(t, sctx.Err(), "the shutdown ended within its time")
	assert.NoError(t, err, "nothing was still running at the deadline")

	assert.NotEmpty(t, intake.Series(), "the metrics of the delivered logs were delivered")
	assert.Zero(t, p.Status().snap.Sum("stage.lost"), "no derived point lost")
	sum := summaryLines(t, p)
	assert.NotContains(t, sum, "lost")
	assert.Equal(t, "1 message delivered and not deleted (1 deletes failed, 0 still pending at exit): SQS gives them out again, and their content is delivered again", sum["sqs not deleted"])
	assert.Equal(t, "0 (everything admitted was delivered or dead-lettered)", sum["handed back"])
}

// TestSQSHandedBackThatSQSWouldNotShowIsNotCalledVisible: a message is
// being worked on (its S3 object does not come) when the pipeline shuts
// down, and SQS stops answering too (ChangeMessageVisibility is held, as
// with moto_server paused). The message is handed back, but SQS never
// made it visible: the summary says so, and so does
// sqs.handed_back_not_visible; it comes back after its visibility
// timeout. The summary said "1 SQS message (visible again for
// redelivery)" while the queue showed none visible (0 of 1; 3 of 3 in a
// run with moto_server stopped mid-object).
func TestSQSHandedBackThatSQSWouldNotShowIsNotCalledVisible(t *testing.T) {
	a := startAWS(t)
	ctx := context.Background()
	q, _ := a.queue(t, "unanswered")
	a.notifiedObject(t, q)
	held := newHeldProxy(t, a.moto.Endpoint, func(r *http.Request) bool {
		return strings.HasSuffix(r.URL.Path, "/objs/fh/b.gz") || r.Header.Get("X-Amz-Target") == "AmazonSQS.ChangeMessageVisibility"
	}, 0)
	t.Setenv("AWS_ENDPOINT_URL", held.URL)
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{intakeKey}})
	p := startSQSOnly(t, ctx, base, q)
	<-held.held // the object does not come
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	_ = p.Shutdown(sctx)
	require.NoError(t, sctx.Err(), "the shutdown ended within its time")

	st := p.Status()
	assert.EqualValues(t, 1, st.Counters["sqs.messages_handed_back"])
	assert.EqualValues(t, 1, st.Counters["sqs.handed_back_not_visible"])
	assert.Equal(t, "1 SQS message (0 visible again for redelivery, 1 not: SQS did not answer in time, they come back when their visibility timeout ends)",
		summaryLines(t, p)["handed back"])
	out, err := a.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	}})
	require.NoError(t, err)
	assert.Equal(t, "0", out.Attributes["ApproximateNumberOfMessages"], "not visible, as the summary says")
	assert.Equal(t, "1", out.Attributes["ApproximateNumberOfMessagesNotVisible"])
}

// notifiedObject puts objs/fh/b.gz (events b1 and b2) in moto's S3 and
// sends its S3 notification to queue q.
func (a *awsEnv) notifiedObject(t *testing.T, q string) {
	t.Helper()
	ctx := context.Background()
	a.bucket(t, "objs")
	_, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("objs"), Key: aws.String("fh/b.gz"), Body: bytes.NewReader(gz(accessEnvelope("b1", "b2")))})
	require.NoError(t, err)
	record := `{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"` + s3objtest.Region + `","eventTime":"2026-12-03T19:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"objs"},"object":{"key":"fh/b.gz","size":1,"eTag":"e","sequencer":"02"}}}`
	_, err = a.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(`{"Records":[` + record + `]}`)})
	require.NoError(t, err)
}
