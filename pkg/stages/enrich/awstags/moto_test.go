package awstags

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	ag2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
)

const roleTemplate = "arn:aws:iam::{account}:role/gwpipe-reader"

// seeded are the APIs seed created in one account and region.
type seeded struct {
	account, region       string
	restID, httpID, wsID  string
	restGroup, httpStream string
}

// seed creates, in moto, with the credentials of the account's role (or
// the pipeline's own when account is ""), a REST API with a tagged and an
// untagged stage, an HTTP API with its $default stage and a WebSocket API;
// with tags on APIs and stages unless tagless.
func seed(tb testing.TB, m *motoServer, account, region string, tagless bool) seeded {
	tb.Helper()
	ctx := motoCtx(tb)
	cfg := m.awsConfig()
	cfg.Region = region
	if account != "" {
		out, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{
			RoleArn: aws.String(strings.ReplaceAll(roleTemplate, "{account}", account)), RoleSessionName: aws.String("seed")})
		require.NoError(tb, err)
		c := out.Credentials
		cfg.Credentials = credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	} else {
		account = "123456789012"
	}
	tags := func(kv ...string) map[string]string {
		if tagless {
			return nil
		}
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	s := seeded{account: account, region: region, restGroup: "/aws/apigateway/access/petstore", httpStream: "amazon-apigateway-orders"}

	ag := apigateway.NewFromConfig(cfg)
	api, err := ag.CreateRestApi(ctx, &apigateway.CreateRestApiInput{Name: aws.String("PetStore " + region),
		Tags: tags("team", "payments", "Cost Center", "1234", "env", "prod")})
	require.NoError(tb, err)
	s.restID = aws.ToString(api.Id)
	res, err := ag.GetResources(ctx, &apigateway.GetResourcesInput{RestApiId: api.Id})
	require.NoError(tb, err)
	root := res.Items[0].Id
	_, err = ag.PutMethod(ctx, &apigateway.PutMethodInput{RestApiId: api.Id, ResourceId: root, HttpMethod: aws.String("GET"), AuthorizationType: aws.String("NONE")})
	require.NoError(tb, err)
	_, err = ag.PutIntegration(ctx, &apigateway.PutIntegrationInput{RestApiId: api.Id, ResourceId: root, HttpMethod: aws.String("GET"), Type: agtypes.IntegrationTypeMock})
	require.NoError(tb, err)
	dep, err := ag.CreateDeployment(ctx, &apigateway.CreateDeploymentInput{RestApiId: api.Id})
	require.NoError(tb, err)
	_, err = ag.CreateStage(ctx, &apigateway.CreateStageInput{RestApiId: api.Id, DeploymentId: dep.Id, StageName: aws.String("prod"),
		Tags: tags("env", "production", "service", "pets")})
	require.NoError(tb, err)
	_, err = ag.UpdateStage(ctx, &apigateway.UpdateStageInput{RestApiId: api.Id, StageName: aws.String("prod"), PatchOperations: []agtypes.PatchOperation{
		{Op: agtypes.OpReplace, Path: aws.String("/accessLogSettings/destinationArn"),
			Value: aws.String(fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", region, account, s.restGroup))},
		{Op: agtypes.OpReplace, Path: aws.String("/accessLogSettings/format"), Value: aws.String(`{"requestId":"$context.requestId","status":"$context.status"}`)},
	}})
	require.NoError(tb, err)
	_, err = ag.CreateStage(ctx, &apigateway.CreateStageInput{RestApiId: api.Id, DeploymentId: dep.Id, StageName: aws.String("dev")})
	require.NoError(tb, err)

	v2 := apigatewayv2.NewFromConfig(cfg)
	h, err := v2.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("orders"), ProtocolType: ag2types.ProtocolTypeHttp, Tags: tags("team", "orders")})
	require.NoError(tb, err)
	s.httpID = aws.ToString(h.ApiId)
	_, err = v2.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: h.ApiId, StageName: aws.String("$default"), Tags: tags("service", "orders-api"),
		AccessLogSettings: &ag2types.AccessLogSettings{
			DestinationArn: aws.String(fmt.Sprintf("arn:aws:firehose:%s:%s:deliverystream/%s", region, account, s.httpStream)),
			Format:         aws.String("$context.requestId $context.routeKey $context.status")}})
	require.NoError(tb, err)
	ws, err := v2.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("chat"), ProtocolType: ag2types.ProtocolTypeWebsocket,
		RouteSelectionExpression: aws.String("$request.body.action"), Tags: tags("team", "chat")})
	require.NoError(tb, err)
	s.wsID = aws.ToString(ws.ApiId)
	_, err = v2.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: ws.ApiId, StageName: aws.String("live"), Tags: tags("env", "staging")})
	require.NoError(tb, err)
	return s
}

// motoLookup looks a key up with room for moto's latency.
func motoLookup(tb testing.TB, tg *Tagger, key StageKey) (Info, bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return tg.Lookup(ctx, key)
}

func TestMotoManyAccountsAndRegions(t *testing.T) {
	t.Parallel()
	m := startMoto(t)
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	regions := []string{"us-east-1", "eu-west-1"}
	var all []seeded
	for _, a := range accounts {
		for _, r := range regions {
			all = append(all, seed(t, m, a, r, false))
		}
	}

	var mu sync.Mutex
	formats := map[string]string{}
	tg, err := New(context.Background(), Config{
		RoleTemplate: roleTemplate,
		ExternalID:   "gwpipe-test",
		MaxWait:      20 * time.Second,
		CallTimeout:  motoCallTimeout,
		Retry:        backoff.ExponentialFullJitter(time.Millisecond, 32*time.Millisecond),
		Logger:       testLogger(t),
		OnFormat: func(g, f string) {
			mu.Lock()
			defer mu.Unlock()
			formats[g] = f
		},
	}, m.awsConfig())
	require.NoError(t, err)
	defer tg.Close()

	for _, s := range all {
		t.Run(s.account+"/"+s.region, func(t *testing.T) {
			ident := func(id, name, stage string) []string {
				tags := []string{"apiid:" + id, "apiname:" + name}
				if stage != "" {
					tags = append(tags, "stage:"+stage)
				}
				return append(tags, "region:"+s.region, "aws_account:"+s.account)
			}
			rest := StageKey{Account: s.account, Region: s.region, APIID: s.restID, Stage: "prod"}
			info, complete := motoLookup(t, tg, rest)
			require.True(t, complete)
			assert.Equal(t, append(ident(s.restID, "petstore_"+s.region, "prod"),
				"cost_center:1234", "env:production", "service:pets", "team:payments"), info.Tags)
			assert.Equal(t, APIREST, info.Kind)
			assert.Equal(t, "pets", info.Service)
			assert.Equal(t, "production", info.Env)

			info, complete = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.restID, Stage: "dev"})
			require.True(t, complete)
			assert.Equal(t, append(ident(s.restID, "petstore_"+s.region, "dev"), "cost_center:1234", "env:prod", "team:payments"), info.Tags)

			info, complete = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.httpID, Stage: "$default"})
			require.True(t, complete)
			assert.Equal(t, APIHTTP, info.Kind)
			assert.Equal(t, append(ident(s.httpID, "orders", "_default"), "service:orders-api", "team:orders"), info.Tags)

			info, complete = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.wsID, Stage: "live"})
			require.True(t, complete)
			assert.Equal(t, APIWebSocket, info.Kind)
			assert.Equal(t, append(ident(s.wsID, "chat", "live"), "env:staging", "team:chat"), info.Tags)

			// Records that name only their log group or delivery stream.
			info, _ = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, LogGroup: s.restGroup})
			assert.Equal(t, s.restID, info.APIID)
			assert.Equal(t, "prod", info.Stage)
			info, _ = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, LogGroup: s.httpStream})
			assert.Equal(t, s.httpID, info.APIID)
		})
	}

	// Each account is read with its own credentials: another account's API
	// id is unknown there.
	other := all[2] // 222222222222 us-east-1
	info, complete := motoLookup(t, tg, StageKey{Account: other.account, Region: other.region, APIID: all[0].restID, Stage: "prod"})
	assert.True(t, complete)
	assert.NotContains(t, info.Tags, "team:payments")

	s := tg.Stats()
	assert.Equal(t, int64(3), s.Calls["sts:AssumeRole"], "one role session per account, shared by its regions")
	assert.Equal(t, int64(6), s.Calls["apigateway:GetRestApis"], "one listing per account and region")
	assert.Equal(t, int64(6), s.Calls["apigatewayv2:GetApis"])
	assert.Equal(t, int64(6), s.Calls["tagging:GetResources"])
	assert.Equal(t, int64(6*4), s.Stages)
	mu.Lock()
	assert.Equal(t, map[string]string{
		"/aws/apigateway/access/petstore": `{"requestId":"$context.requestId","status":"$context.status"}`,
		"amazon-apigateway-orders":        "$context.requestId $context.routeKey $context.status",
	}, formats)
	mu.Unlock()
}

func TestMotoSingleAccountNeedsNoConfiguration(t *testing.T) {
	t.Parallel()
	m := startMoto(t)
	s := seed(t, m, "", "us-east-1", false)
	tg, err := New(context.Background(), Config{MaxWait: 20 * time.Second, CallTimeout: motoCallTimeout, Logger: testLogger(t)}, m.awsConfig())
	require.NoError(t, err)
	defer tg.Close()

	info, complete := motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.restID, Stage: "prod"})
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "service:pets")

	// Without a role, another account cannot be read: partial, at once.
	info, complete = motoLookup(t, tg, StageKey{Account: "999999999999", Region: s.region, APIID: s.restID, Stage: "prod"})
	assert.False(t, complete)
	assert.Contains(t, info.Tags, PartialTag)
	st := tg.Stats()
	assert.Equal(t, int64(1), st.Calls["sts:GetCallerIdentity"])
	assert.Equal(t, int64(1), st.Calls["apigateway:GetRestApis"])
}

// chaosTransport makes some accounts unreachable: AssumeRole into a
// blackholed account hangs until its request is cancelled, into a denied
// one it answers AccessDenied. It counts AssumeRole requests per account.
type chaosTransport struct {
	base      http.RoundTripper
	blackhole string
	denied    string

	mu      sync.Mutex
	assumes map[string]int
}

func (c *chaosTransport) assumed(account string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.assumes[account]
}

func (c *chaosTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Method != http.MethodPost {
		return c.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body.Close()
	req.Body = io.NopCloser(strings.NewReader(string(body)))
	form, _ := url.ParseQuery(string(body))
	if form.Get("Action") != "AssumeRole" {
		return c.base.RoundTrip(req)
	}
	_, account := ARNRegionAccount(form.Get("RoleArn"))
	c.mu.Lock()
	if c.assumes == nil {
		c.assumes = map[string]int{}
	}
	c.assumes[account]++
	c.mu.Unlock()
	switch account {
	case c.blackhole:
		<-req.Context().Done()
		return nil, req.Context().Err()
	case c.denied:
		return &http.Response{
			StatusCode: http.StatusForbidden,
			Header:     http.Header{"Content-Type": []string{"text/xml"}},
			Body: io.NopCloser(strings.NewReader(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>` +
				`<Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r1</RequestId></ErrorResponse>`)),
			Request: req,
		}, nil
	}
	return c.base.RoundTrip(req)
}

// newTickedTagger builds a Tagger on moto that refreshes when the test
// sends on tick, on a fake clock and without jitter, and reports each
// refresh on events. hc may be nil (the default client; an untyped nil:
// a nil *http.Client would be a client).
func newTickedTagger(t *testing.T, m *motoServer, hc aws.HTTPClient, opts ...Option) (tg *Tagger, clock *fakeclock.Clock, tick chan time.Time, events chan RefreshEvent) {
	t.Helper()
	clock = newFakeClock()
	tick = make(chan time.Time)
	events = make(chan RefreshEvent, 64)
	opts = append(opts, WithTicker(tick), WithOnRefresh(func(ev RefreshEvent) { events <- ev }))
	tg, err := New(context.Background(), Config{
		RoleTemplate: roleTemplate,
		MaxWait:      20 * time.Second,
		CallTimeout:  motoCallTimeout,
		Retry:        backoff.ExponentialFullJitter(time.Millisecond, 32*time.Millisecond),
		HTTPClient:   hc,
		Now:          clock.Now,
		Jitter:       -1,
		Logger:       testLogger(t),
	}, m.awsConfig(), opts...)
	require.NoError(t, err)
	return tg, clock, tick, events
}

func TestMotoUnreachableAccountsDegradeGracefully(t *testing.T) {
	t.Parallel()
	m := startMoto(t)
	good := seed(t, m, "111111111111", "us-east-1", false)
	good2 := seed(t, m, "111111111111", "eu-west-1", false)
	const blackhole, denied = "444444444444", "555555555555"
	chaos := &chaosTransport{base: http.DefaultTransport, blackhole: blackhole, denied: denied}
	tg, clock, tick, events := newTickedTagger(t, m, &http.Client{Transport: chaos})
	closed := false
	defer func() {
		if !closed {
			tg.Close()
		}
	}()
	nextEvent := func(account string) RefreshEvent { t.Helper(); return nextEventOf(t, events, account, "") }

	// The blackholed account: a record waits its bounded time, once.
	hung := StageKey{Account: blackhole, Region: "us-east-1", APIID: "a1b2c3d4e5", Stage: "prod"}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	info, complete := tg.Lookup(ctx, hung)
	cancel()
	assert.False(t, complete)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, []string{"apiid:a1b2c3d4e5", "stage:prod", "region:us-east-1", "aws_account:" + blackhole, PartialTag}, info.Tags)
	_, settled := tg.Peek(hung)
	assert.True(t, settled, "later records do not wait for the same read")

	// The good account is served while the other one hangs.
	info, complete = motoLookup(t, tg, StageKey{Account: good.account, Region: good.region, APIID: good.restID, Stage: "prod"})
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "service:pets")
	info, complete = motoLookup(t, tg, StageKey{Account: good2.account, Region: good2.region, APIID: good2.httpID, Stage: "$default"})
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "team:orders")

	// The denied account fails at once, is not retried, and is remembered.
	bad := StageKey{Account: denied, Region: "us-east-1", APIID: "a1b2c3d4e5", Stage: "prod"}
	info, complete = motoLookup(t, tg, bad)
	assert.False(t, complete)
	assert.Contains(t, info.Tags, PartialTag)
	ev := nextEvent(denied)
	require.Error(t, ev.Err)
	assert.False(t, IsRetryable(ev.Err))
	assert.ErrorContains(t, ev.Err, "AccessDenied")
	for range 3 {
		_, settled := tg.Peek(bad)
		assert.True(t, settled)
	}
	assert.Equal(t, 1, chaos.assumed(denied))

	// After NegativeTTL the account is tried again, in the background.
	clock.Advance(DefaultNegativeTTL + time.Second)
	tick <- clock.Now()
	require.Error(t, nextEvent(denied).Err)
	assert.Equal(t, 2, chaos.assumed(denied))
	assert.Equal(t, 1, chaos.assumed(good.account))

	// Close does not wait for the hung account's read.
	done := make(chan struct{})
	go func() { tg.Close(); close(done) }()
	select {
	case <-done:
		closed = true
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on the unreachable account")
	}
}
