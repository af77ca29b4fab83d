package preflight

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

const goodKey = "good-key"

// offline is a configuration that names nothing but Datadog.
func offline(base, key string) config.Config {
	c := config.DefaultConfig()
	c.Datadog.APIKey = key
	c.Datadog.LogsURL = base + "/api/v2/logs"
	c.Datadog.APIURL = base
	c.Enrich.AWSTags = false
	return c
}

func run(t *testing.T, c config.Config) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs := Run(ctx, c, Options{Timeout: 30 * time.Second})
	for _, r := range rs {
		t.Log(r)
	}
	return rs
}

// find returns the results whose check starts with prefix.
func find(rs []Result, prefix string) []Result {
	var out []Result
	for _, r := range rs {
		if strings.HasPrefix(r.Check, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func one(t *testing.T, rs []Result, prefix string, ok bool, detail string) {
	t.Helper()
	got := find(rs, prefix)
	if len(got) != 1 {
		t.Fatalf("%d results for %s, want 1: %v", len(got), prefix, rs)
	}
	if got[0].OK != ok || !strings.Contains(got[0].Detail, detail) {
		t.Fatalf("%s: got %v, want ok=%v with %q", prefix, got[0], ok, detail)
	}
}

func TestDatadogGoodAndWrongKey(t *testing.T) {
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{goodKey}})
	rs := run(t, offline(base, goodKey))
	if len(rs) != 2 || Failed(rs) != 0 {
		t.Fatalf("good key: %v", rs)
	}
	one(t, rs, "datadog.api_key", true, "valid (GET "+base+"/api/v1/validate answered 200)")
	one(t, rs, "datadog.logs_url", true, "is reachable and takes the API key")
	if !strings.HasPrefix(rs[0].String(), "✓ datadog.api_key: valid") {
		t.Fatalf("line %q", rs[0])
	}

	rs = run(t, offline(base, "wrong-key"))
	if Failed(rs) != 2 {
		t.Fatalf("wrong key: %v", rs)
	}
	one(t, rs, "datadog.api_key", false, "refused: GET "+base+"/api/v1/validate answered 403")
	one(t, rs, "datadog.logs_url", false, "reachable but refused the API key: 403")
	if !strings.HasPrefix(rs[0].String(), "✗ datadog.api_key: refused") {
		t.Fatalf("line %q", rs[0])
	}
	// The key never appears in what is printed.
	for _, r := range rs {
		if strings.Contains(r.String(), "wrong-key") {
			t.Fatalf("the key is printed: %s", r)
		}
	}
}

func TestDatadogUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	rs := run(t, offline(base, goodKey))
	one(t, rs, "datadog.api_key", false, "connection refused")
	one(t, rs, "datadog.logs_url", false, "connection refused")

	c := offline(base, "")
	one(t, run(t, c)[:1], "datadog.api_key", false, "not set")
}

// The AWS checks against moto: the pipeline's own account and an account
// reached through a role read; an account the credentials do not belong
// to (no role), a missing queue and a missing bucket fail, each on its
// own line.
func TestAWSChecksAgainstMoto(t *testing.T) {
	if testing.Short() {
		t.Skip("moto")
	}
	moto.Start(t)
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{goodKey}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	awsCfg, err := awsconf.Load(ctx, moto.Region)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqs.NewFromConfig(awsCfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("gwpipe-notifications")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := awsconf.S3(awsCfg).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("gwpipe-archive")}); err != nil {
		t.Fatal(err)
	}

	c := offline(base, goodKey)
	c.Enrich.AWSTags = true
	c.Enrich.RoleOverrides = map[string]string{"111111111111": "arn:aws:iam::111111111111:role/gwpipe-reader"}
	c.Enrich.Mappings = []awstags.Mapping{{LogGroup: "/aws/x", APIID: "a1b2c3d4e5", Account: "999999999999", Region: "eu-west-1"}}
	c.Sources.SQS.QueueURLs = []string{aws.ToString(q.QueueUrl), strings.Replace(aws.ToString(q.QueueUrl), "gwpipe-notifications", "missing-queue", 1)}
	c.Replay.Bucket = "gwpipe-archive"
	c.Replay.DLQ = "s3://missing-bucket/dlq/"
	rs := run(t, c)

	role := find(rs, "enrich account 111111111111")
	if len(role) != 3 || Failed(role) != 0 ||
		role[0].Check != "enrich account 111111111111 (us-east-1): sts:AssumeRole arn:aws:iam::111111111111:role/gwpipe-reader" ||
		role[1].Check != "enrich account 111111111111 (us-east-1): apigateway:GET" || role[2].Check != "enrich account 111111111111 (us-east-1): tag:GetResources" {
		t.Fatalf("role account: %v", role)
	}
	other := find(rs, "enrich account 999999999999 (eu-west-1)")
	if len(other) != 1 || other[0].OK || !strings.Contains(other[0].Detail, "123456789012") {
		t.Fatalf("an account without a role that the credentials do not belong to: %v", other)
	}
	one(t, rs, "sources.sqs.queue_urls[0]", true, "readable (arn:aws:sqs:us-east-1:123456789012:gwpipe-notifications)")
	one(t, rs, "sources.sqs.queue_urls[1]", false, "missing-queue")
	one(t, rs, "replay.bucket", true, "s3://gwpipe-archive reachable")
	one(t, rs, "replay.dlq", false, "s3://missing-bucket")
	if got := Failed(rs); got != 3 {
		t.Fatalf("%d checks failed, want 3: %v", got, rs)
	}

	// Without accounts named, the pipeline's own is probed.
	c = offline(base, goodKey)
	c.Enrich.AWSTags = true
	own := find(run(t, c), "enrich own account")
	if len(own) != 3 || Failed(own) != 0 || !strings.Contains(own[0].Detail, "account 123456789012") {
		t.Fatalf("own account: %v", own)
	}
}

func TestNATS(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	_, base := fakeintake.NewTestServer(t, fakeintake.Config{APIKeys: []string{goodKey}})
	c := offline(base, goodKey)
	c.Transport.Kind = "nats"
	c.Transport.NATS.URL = s.ClientURL()
	one(t, run(t, c), "transport.nats.url", true, "JetStream available")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.Transport.NATS.URL = "nats://" + ln.Addr().String()
	ln.Close()
	one(t, run(t, c), "transport.nats.url", false, "nats://127.0.0.1")
}
