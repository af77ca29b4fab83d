package awstags

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	ag2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tgtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
	"github.com/gwpipe/gwpipe/pkg/testkit/gate"
)

// fakeCloud is an in-process AWS for the cache's tests: API Gateway v1/v2
// and the tagging API per account and region, with calls counted, errors
// queued per operation, and a gate that holds calls until opened.
type fakeCloud struct {
	mu      sync.Mutex
	regions map[invKey]*fakeRegion
	calls   map[string]int // "account/region/op"
	errs    map[string][]error
	gate    gate.Gate
	self    string // the account of the "own" credentials
	// stagesErr fails every GetStages of an API, by id.
	stagesErr map[string]error
}

type fakeRegion struct {
	apis    map[string]*fakeAPI
	tagging map[string]map[string]string // ARN → tags
}

type fakeAPI struct {
	id, name string
	kind     string
	tags     map[string]string
	stages   []fakeStage
}

type fakeStage struct {
	name   string
	tags   map[string]string
	dest   string // destination ARN
	format string
	canary bool
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{regions: map[invKey]*fakeRegion{}, calls: map[string]int{}, errs: map[string][]error{}, self: "123456789012"}
}

func (f *fakeCloud) region(account, region string) *fakeRegion {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := invKey{account, region}
	r := f.regions[k]
	if r == nil {
		r = &fakeRegion{apis: map[string]*fakeAPI{}, tagging: map[string]map[string]string{}}
		f.regions[k] = r
	}
	return r
}

func (f *fakeCloud) addAPI(account, region string, api *fakeAPI) {
	r := f.region(account, region)
	f.mu.Lock()
	defer f.mu.Unlock()
	r.apis[api.id] = api
}

// update runs fn with the cloud locked, for tests that change AWS.
func (f *fakeCloud) update(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// failNext makes the next len(errs) calls of op in account/region fail.
func (f *fakeCloud) failNext(account, region, op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := account + "/" + region + "/" + op
	f.errs[k] = append(f.errs[k], errs...)
}

func (f *fakeCloud) count(account, region, op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[account+"/"+region+"/"+op]
}

// enter counts a call, waits at the gate and returns the queued error.
func (f *fakeCloud) enter(ctx context.Context, k invKey, op string) error {
	f.mu.Lock()
	key := k.account + "/" + k.region + "/" + op
	f.calls[key]++
	var err error
	if q := f.errs[key]; len(q) > 0 {
		err, f.errs[key] = q[0], q[1:]
	}
	f.mu.Unlock()
	if werr := f.gate.Wait(ctx); werr != nil {
		return werr
	}
	return err
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

var errNotFound = apiErr("NotFoundException")

func (f *fakeCloud) factory(account, region string, _ aws.CredentialsProvider) Clients {
	c := &fakeClient{f: f, k: invKey{account, region}}
	return Clients{APIGateway: c, APIGatewayV2: (*fakeClientV2)(c), Tagging: c}
}

type fakeClient struct {
	f *fakeCloud
	k invKey
}

func (c *fakeClient) apis(kindREST bool) []*fakeAPI {
	r := c.f.region(c.k.account, c.k.region)
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	var out []*fakeAPI
	for _, id := range sortedKeys(r.apis) {
		if a := r.apis[id]; (a.kind == APIREST) == kindREST {
			out = append(out, a)
		}
	}
	return out
}

func (c *fakeClient) api(id string, kindREST bool) *fakeAPI {
	for _, a := range c.apis(kindREST) {
		if a.id == id {
			return a
		}
	}
	return nil
}

func (c *fakeClient) GetRestApis(ctx context.Context, in *apigateway.GetRestApisInput, _ ...func(*apigateway.Options)) (*apigateway.GetRestApisOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetRestApis"); err != nil {
		return nil, err
	}
	out := &apigateway.GetRestApisOutput{}
	for _, a := range c.apis(true) {
		out.Items = append(out.Items, agtypes.RestApi{Id: aws.String(a.id), Name: aws.String(a.name), Tags: a.tags})
	}
	return out, nil
}

func (c *fakeClient) GetRestApi(ctx context.Context, in *apigateway.GetRestApiInput, _ ...func(*apigateway.Options)) (*apigateway.GetRestApiOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetRestApi"); err != nil {
		return nil, err
	}
	a := c.api(aws.ToString(in.RestApiId), true)
	if a == nil {
		return nil, errNotFound
	}
	return &apigateway.GetRestApiOutput{Id: aws.String(a.id), Name: aws.String(a.name), Tags: a.tags}, nil
}

func (c *fakeClient) GetStages(ctx context.Context, in *apigateway.GetStagesInput, _ ...func(*apigateway.Options)) (*apigateway.GetStagesOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetStages"); err != nil {
		return nil, err
	}
	c.f.mu.Lock()
	err := c.f.stagesErr[aws.ToString(in.RestApiId)]
	c.f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	a := c.api(aws.ToString(in.RestApiId), true)
	if a == nil {
		return nil, errNotFound
	}
	out := &apigateway.GetStagesOutput{}
	for _, s := range a.stages {
		st := agtypes.Stage{StageName: aws.String(s.name), Tags: s.tags}
		if s.dest != "" {
			st.AccessLogSettings = &agtypes.AccessLogSettings{DestinationArn: aws.String(s.dest), Format: aws.String(s.format)}
		}
		if s.canary {
			st.CanarySettings = &agtypes.CanarySettings{PercentTraffic: 10}
		}
		out.Item = append(out.Item, st)
	}
	return out, nil
}

func (c *fakeClient) GetResources(ctx context.Context, in *resourcegroupstaggingapi.GetResourcesInput, _ ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetResources"); err != nil {
		return nil, err
	}
	r := c.f.region(c.k.account, c.k.region)
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	out := &resourcegroupstaggingapi.GetResourcesOutput{}
	for _, arn := range sortedKeys(r.tagging) {
		m := tgtypes.ResourceTagMapping{ResourceARN: aws.String(arn)}
		for _, k := range sortedKeys(r.tagging[arn]) {
			m.Tags = append(m.Tags, tgtypes.Tag{Key: aws.String(k), Value: aws.String(r.tagging[arn][k])})
		}
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, m)
	}
	return out, nil
}

type fakeClientV2 fakeClient

func (c *fakeClientV2) GetApis(ctx context.Context, in *apigatewayv2.GetApisInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApisOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetApis"); err != nil {
		return nil, err
	}
	out := &apigatewayv2.GetApisOutput{}
	for _, a := range (*fakeClient)(c).apis(false) {
		out.Items = append(out.Items, ag2types.Api{ApiId: aws.String(a.id), Name: aws.String(a.name), ProtocolType: protocol(a.kind), Tags: a.tags})
	}
	return out, nil
}

func protocol(kind string) ag2types.ProtocolType {
	if kind == APIWebSocket {
		return ag2types.ProtocolTypeWebsocket
	}
	return ag2types.ProtocolTypeHttp
}

func (c *fakeClientV2) GetApi(ctx context.Context, in *apigatewayv2.GetApiInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApiOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetApi"); err != nil {
		return nil, err
	}
	a := (*fakeClient)(c).api(aws.ToString(in.ApiId), false)
	if a == nil {
		return nil, errNotFound
	}
	return &apigatewayv2.GetApiOutput{ApiId: aws.String(a.id), Name: aws.String(a.name), ProtocolType: protocol(a.kind), Tags: a.tags}, nil
}

func (c *fakeClientV2) GetStages(ctx context.Context, in *apigatewayv2.GetStagesInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetStagesOutput, error) {
	if err := c.f.enter(ctx, c.k, "GetStagesV2"); err != nil {
		return nil, err
	}
	a := (*fakeClient)(c).api(aws.ToString(in.ApiId), false)
	if a == nil {
		return nil, errNotFound
	}
	out := &apigatewayv2.GetStagesOutput{}
	for _, s := range a.stages {
		st := ag2types.Stage{StageName: aws.String(s.name), Tags: s.tags}
		if s.dest != "" {
			st.AccessLogSettings = &ag2types.AccessLogSettings{DestinationArn: aws.String(s.dest), Format: aws.String(s.format)}
		}
		out.Items = append(out.Items, st)
	}
	return out, nil
}

// fakeSTS hands out credentials per role and knows the own account.
type fakeSTS struct{ f *fakeCloud }

func (s fakeSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	_, acct := ARNRegionAccount(aws.ToString(in.RoleArn))
	if err := s.f.enter(ctx, invKey{acct, ""}, "AssumeRole"); err != nil {
		return nil, err
	}
	exp := time.Now().Add(time.Hour)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String("ASIA" + acct), SecretAccessKey: aws.String("secret"), SessionToken: aws.String("token"), Expiration: &exp,
	}}, nil
}

func (s fakeSTS) GetCallerIdentity(ctx context.Context, _ *sts.GetCallerIdentityInput, _ ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	if err := s.f.enter(ctx, invKey{"", ""}, "GetCallerIdentity"); err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return &sts.GetCallerIdentityOutput{Account: aws.String(s.f.self)}, nil
}

// newFakeClock is the tests' clock, standing at a fixed time.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
}

// harness is a Tagger over a fakeCloud, with its clock, its sweep ticker
// and a channel of refresh events.
type harness struct {
	t      *Tagger
	cloud  *fakeCloud
	clock  *fakeclock.Clock
	tick   chan time.Time
	events chan RefreshEvent
}

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	h := &harness{cloud: newFakeCloud(), clock: newFakeClock(), tick: make(chan time.Time), events: make(chan RefreshEvent, 1024)}
	if cfg.Now == nil {
		cfg.Now = h.clock.Now
	}
	if cfg.Retry.InitialInterval == 0 {
		cfg.Retry = backoff.ExponentialFullJitter(time.Millisecond, 32*time.Millisecond)
	}
	if cfg.MaxWait == 0 {
		// Lookups wait for the fakes' answer however loaded the machine
		// is; tests of the bound pass a shorter context.
		cfg.MaxWait = 10 * time.Second
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	tg, err := New(context.Background(), cfg, aws.Config{Region: "us-east-1"},
		WithClientFactory(h.cloud.factory), WithSTSClient(fakeSTS{h.cloud}), WithTicker(h.tick),
		WithOnRefresh(func(ev RefreshEvent) { h.events <- ev }))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = tg.Close() })
	h.t = tg
	return h
}

// event waits for the next refresh event.
func (h *harness) event(tb testing.TB) RefreshEvent {
	tb.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(10 * time.Second):
		tb.Fatal("no refresh event within 10s")
		return RefreshEvent{}
	}
}

// sweep runs one background sweep and returns once it is over: the loop
// takes the second tick only after finishing the first.
func (h *harness) sweep() {
	h.tick <- h.clock.Now()
	h.tick <- h.clock.Now()
}

// lookup is Lookup with a generous deadline: the fakes answer at once.
func (h *harness) lookup(tb testing.TB, key StageKey) (Info, bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.t.Lookup(ctx, key)
}

// petstore is a REST API with two stages, the usual fixture.
func petstore(id string) *fakeAPI {
	return &fakeAPI{id: id, name: "PetStore", kind: APIREST,
		tags: map[string]string{"team": "payments", "env": "prod", "Cost Center": "1234"},
		stages: []fakeStage{
			{name: "prod", tags: map[string]string{"env": "production", "service": "pets"},
				dest: "arn:aws:logs:us-east-1:111111111111:log-group:/gw/petstore/prod:*", format: `{"requestId":"$context.requestId"}`},
			{name: "dev"},
		}}
}

var errAccessDenied = apiErr("AccessDeniedException")

// testLogger logs into the test's output, shown when it fails.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
