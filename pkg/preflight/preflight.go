// Package preflight checks, before deploying, that what a configuration
// names can be reached and used: the Datadog API key and the logs intake,
// each configured AWS account's role and the permissions the tag reader
// needs, each SQS queue and S3 bucket named, and the NATS server. It is
// `gwpipe validate --connect`. Checks only read: no log, no message and
// no object is written.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/redact"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// Result is the outcome of one check.
type Result struct {
	Check  string // what was checked, starting with the configuration key
	OK     bool
	Detail string // what was found, or why it failed
}

// String is the line `gwpipe validate --connect` prints.
func (r Result) String() string {
	mark := "✓"
	if !r.OK {
		mark = "✗"
	}
	return fmt.Sprintf("%s %s: %s", mark, r.Check, r.Detail)
}

// Options tune the checks.
type Options struct {
	// Timeout bounds each check (default 10s).
	Timeout time.Duration
	// HTTPClient calls Datadog (default: a client with Timeout).
	HTTPClient *http.Client
}

// Run runs every check c calls for, in order, and returns their results.
func Run(ctx context.Context, c config.Config, o Options) []Result {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	r := &runner{ctx: ctx, c: c, o: o}
	r.datadogKey()
	r.logsIntake()
	r.aws()
	r.nats()
	return r.results
}

// Failed counts the checks that failed.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

type runner struct {
	ctx     context.Context
	c       config.Config
	o       Options
	results []Result
}

func (r *runner) add(check string, err error, detail string) {
	if err != nil {
		detail = redact.Err(err).Error()
	}
	r.results = append(r.results, Result{Check: check, OK: err == nil, Detail: redact.URL(detail)})
}

func (r *runner) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.o.Timeout)
}

// datadogKey asks the API whether the key is valid (GET /api/v1/validate
// on datadog.api_url or the site's API).
func (r *runner) datadogKey() {
	const check = "datadog.api_key"
	if r.c.Datadog.APIKey == "" {
		r.add(check, errors.New("not set (datadog.api_key or DD_API_KEY)"), "")
		return
	}
	url := strings.TrimRight(r.c.APIURL(), "/") + "/api/v1/validate"
	status, body, err := r.do(http.MethodGet, url, nil)
	switch {
	case err != nil:
		r.add(check, fmt.Errorf("GET %s: %w", url, err), "")
	case status == http.StatusOK:
		r.add(check, nil, "valid (GET "+url+" answered 200)")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.add(check, fmt.Errorf("refused: GET %s answered %d %s", url, status, body), "")
	default:
		r.add(check, fmt.Errorf("GET %s answered %d %s", url, status, body), "")
	}
}

// logsIntake sends the intake an empty list of logs: it checks the key
// before the payload, so any answer but 401 or 403 says it is reachable and
// takes the key, without a log being sent.
func (r *runner) logsIntake() {
	const check = "datadog.logs_url"
	url := r.c.LogsURL()
	status, body, err := r.do(http.MethodPost, url, strings.NewReader("[]"))
	switch {
	case err != nil:
		r.add(check, fmt.Errorf("POST %s: %w", url, err), "")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.add(check, fmt.Errorf("%s is reachable but refused the API key: %d %s", url, status, body), "")
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		r.add(check, fmt.Errorf("%s answered %d %s", url, status, body), "")
	default:
		r.add(check, nil, fmt.Sprintf("%s is reachable and takes the API key (an empty payload answered %d)", url, status))
	}
}

// do sends a request with the API key and returns the status and the
// start of the body.
func (r *runner) do(method, url string, body io.Reader) (int, string, error) {
	ctx, cancel := r.timeout()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("DD-API-KEY", r.c.Datadog.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.o.HTTPClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// aws checks the accounts the tag reader reads, the SQS queues and the S3
// buckets the configuration names.
func (r *runner) aws() {
	c := r.c
	if c.Enrich.AWSTags {
		r.accounts()
	}
	for i, q := range c.Sources.SQS.QueueURLs {
		r.queue(fmt.Sprintf("sources.sqs.queue_urls[%d]", i), q)
	}
	if c.Replay.Bucket != "" {
		r.bucket("replay.bucket", c.Replay.Bucket, c.Replay.Region)
	}
	if rest, ok := strings.CutPrefix(c.Replay.DLQ, "s3://"); ok {
		b, _, _ := strings.Cut(rest, "/")
		r.bucket("replay.dlq", b, c.Replay.Region)
	}
	if c.Transport.Kind == "sqs" && c.Transport.SQS.ClaimCheckBucket != "" {
		r.bucket("transport.sqs.claim_check_bucket", c.Transport.SQS.ClaimCheckBucket, c.Transport.SQS.Region)
	}
}

func (r *runner) awsConfig(region string) (aws.Config, error) {
	ctx, cancel := r.timeout()
	defer cancel()
	return awsconf.Load(ctx, region)
}

// accounts probes every account the enrichment names (role_overrides,
// mappings), or the pipeline's own account when it names none: the role is
// assumed, apigateway:GET and tag:GetResources are allowed.
func (r *runner) accounts() {
	e := r.c.Enrich
	awsCfg, err := r.awsConfig(e.DefaultRegion)
	if err != nil {
		r.add("enrich.aws_tags", err, "")
		return
	}
	tc := e.Config
	tc.Logger = nil
	tc.CallTimeout = r.o.Timeout
	t, err := awstags.New(r.ctx, tc, awsCfg)
	if err != nil {
		r.add("enrich.aws_tags", err, "")
		return
	}
	defer t.Close()
	regions := map[string]string{}
	for acct := range e.RoleOverrides {
		regions[acct] = ""
	}
	for _, m := range e.Mappings {
		if m.Account != "" && regions[m.Account] == "" {
			regions[m.Account] = m.Region
		}
	}
	accts := make([]string, 0, len(regions))
	for a := range regions {
		accts = append(accts, a)
	}
	slices.Sort(accts)
	if len(accts) == 0 {
		accts = []string{""} // the pipeline's own
	}
	for _, acct := range accts {
		region := regions[acct]
		if region == "" {
			region = awsCfg.Region
		}
		name := "account " + acct
		if acct == "" {
			name = "own account"
		}
		ctx, cancel := r.timeout()
		for _, s := range t.Probe(ctx, acct, region) {
			r.add(fmt.Sprintf("enrich %s (%s): %s", name, region, s.What), s.Err, s.Detail)
		}
		cancel()
	}
}

func (r *runner) queue(check, url string) {
	awsCfg, err := r.awsConfig(r.c.Sources.SQS.DefaultRegion)
	if err != nil {
		r.add(check, err, "")
		return
	}
	ctx, cancel := r.timeout()
	defer cancel()
	out, err := sqs.NewFromConfig(awsCfg).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		r.add(check, fmt.Errorf("%s: %w", url, err), "")
		return
	}
	r.add(check, nil, fmt.Sprintf("%s readable (%s)", url, out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]))
}

func (r *runner) bucket(check, name, region string) {
	awsCfg, err := r.awsConfig(region)
	if err != nil {
		r.add(check, err, "")
		return
	}
	ctx, cancel := r.timeout()
	defer cancel()
	if _, err := awsconf.S3(awsCfg).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(name)}); err != nil {
		r.add(check, fmt.Errorf("s3://%s: %w", name, err), "")
		return
	}
	r.add(check, nil, fmt.Sprintf("s3://%s reachable", name))
}

// nats connects to the broker of transport.kind nats and asks for its
// JetStream account, which the transport needs.
func (r *runner) nats() {
	if r.c.Transport.Kind != "nats" {
		return
	}
	const check = "transport.nats.url"
	url := r.c.Transport.NATS.URL
	nc, err := nats.Connect(url, nats.Name("gwpipe validate"), nats.Timeout(r.o.Timeout), nats.MaxReconnects(0))
	if err != nil {
		r.add(check, fmt.Errorf("%s: %w", url, err), "")
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		r.add(check, fmt.Errorf("%s: %w", url, err), "")
		return
	}
	ctx, cancel := r.timeout()
	defer cancel()
	info, err := js.AccountInfo(ctx)
	if err != nil {
		r.add(check, fmt.Errorf("%s: connected, but JetStream does not answer: %w", url, err), "")
		return
	}
	r.add(check, nil, fmt.Sprintf("%s connected (server %s), JetStream available (%d streams)", url, nc.ConnectedServerVersion(), info.Streams))
}
