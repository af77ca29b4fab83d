// Package awstagstest is an in-process AWS for the tests of AWS tag
// enrichment (package awstags and the enrich stage): API Gateway v1 and v2
// and the tagging API per account and region, and STS, with every call
// counted, errors queued per operation, and a gate that holds calls until
// the test opens it.
//
// It speaks the SDK's types only (it does not import awstags, whose own
// tests use it): a test wraps Clients into an awstags.Clients.
package awstagstest

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	ag2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tgtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/gwpipe/gwpipe/pkg/testkit/gate"
)

// Cloud is the fake AWS. Its exported fields may be changed within Update.
type Cloud struct {
	// Gate holds every call until opened (open when zero).
	Gate gate.Gate
	// Self is the account of the "own" credentials (GetCallerIdentity).
	Self string
	// StagesErr fails every GetStages of an API, by id.
	StagesErr map[string]error

	mu      sync.Mutex
	regions map[key]*region
	calls   map[string]int // "account/region/op"
	errs    map[string][]error
}

type key struct{ account, region string }

type region struct {
	apis    map[string]*API
	tagging map[string]map[string]string // ARN → tags
}

// API is an API Gateway API of the cloud.
type API struct {
	ID, Name string
	// Protocol is empty for a REST API, else the API Gateway v2 API's
	// (HTTP or WEBSOCKET).
	Protocol ag2types.ProtocolType
	Tags     map[string]string
	Stages   []Stage
}

// Stage is a stage of an API.
type Stage struct {
	Name   string
	Tags   map[string]string
	Dest   string // access-log destination ARN
	Format string // access-log format
	Canary bool   // REST only
}

// New returns an empty cloud whose own account is 123456789012.
func New() *Cloud {
	return &Cloud{regions: map[key]*region{}, calls: map[string]int{}, errs: map[string][]error{}, Self: "123456789012"}
}

// APIError is an error of AWS with this code.
func APIError(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

var errNotFound = APIError("NotFoundException")

func (c *Cloud) region(account, name string) *region {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key{account, name}
	r := c.regions[k]
	if r == nil {
		r = &region{apis: map[string]*API{}, tagging: map[string]map[string]string{}}
		c.regions[k] = r
	}
	return r
}

// AddAPI puts an API in an account and region. Change it later within
// Update.
func (c *Cloud) AddAPI(account, region string, api *API) {
	r := c.region(account, region)
	c.mu.Lock()
	defer c.mu.Unlock()
	r.apis[api.ID] = api
}

// SetResourceTags sets what the tagging API says of a resource.
func (c *Cloud) SetResourceTags(account, region, resourceARN string, tags map[string]string) {
	r := c.region(account, region)
	c.mu.Lock()
	defer c.mu.Unlock()
	r.tagging[resourceARN] = tags
}

// Update runs fn with the cloud locked, for tests that change AWS.
func (c *Cloud) Update(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn()
}

// FailNext makes the next len(errs) calls of op in account/region fail.
func (c *Cloud) FailNext(account, region, op string, errs ...error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := account + "/" + region + "/" + op
	c.errs[k] = append(c.errs[k], errs...)
}

// Count is how often op was called in account/region. Operations are
// named as in the API (GetRestApis…), but API Gateway v2's GetStages,
// which is GetStagesV2; STS calls have no region, GetCallerIdentity no
// account.
func (c *Cloud) Count(account, region, op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[account+"/"+region+"/"+op]
}

// Calls counts every call made to the cloud.
func (c *Cloud) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

// enter counts a call, waits at the gate and returns the queued error.
func (c *Cloud) enter(ctx context.Context, k key, op string) error {
	c.mu.Lock()
	name := k.account + "/" + k.region + "/" + op
	c.calls[name]++
	var err error
	if q := c.errs[name]; len(q) > 0 {
		err, c.errs[name] = q[0], q[1:]
	}
	c.mu.Unlock()
	if werr := c.Gate.Wait(ctx); werr != nil {
		return werr
	}
	return err
}

// Clients returns the clients of an account in a region: rest serves API
// Gateway v1 and the tagging API, v2 API Gateway v2.
func (c *Cloud) Clients(account, region string) (rest *REST, v2 *V2) {
	rest = &REST{c: c, k: key{account, region}}
	return rest, (*V2)(rest)
}

// REST is the API Gateway (v1) and tagging client of an account and
// region.
type REST struct {
	c *Cloud
	k key
}

// V2 is the API Gateway v2 client of an account and region.
type V2 REST

func (r *REST) apis(rest bool) []*API {
	reg := r.c.region(r.k.account, r.k.region)
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	var out []*API
	for _, id := range slices.Sorted(maps.Keys(reg.apis)) {
		if a := reg.apis[id]; (a.Protocol == "") == rest {
			out = append(out, a)
		}
	}
	return out
}

func (r *REST) api(id string, rest bool) *API {
	for _, a := range r.apis(rest) {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func (r *REST) GetRestApis(ctx context.Context, in *apigateway.GetRestApisInput, _ ...func(*apigateway.Options)) (*apigateway.GetRestApisOutput, error) {
	if err := r.c.enter(ctx, r.k, "GetRestApis"); err != nil {
		return nil, err
	}
	out := &apigateway.GetRestApisOutput{}
	for _, a := range r.apis(true) {
		out.Items = append(out.Items, agtypes.RestApi{Id: aws.String(a.ID), Name: aws.String(a.Name), Tags: a.Tags})
	}
	return out, nil
}

func (r *REST) GetRestApi(ctx context.Context, in *apigateway.GetRestApiInput, _ ...func(*apigateway.Options)) (*apigateway.GetRestApiOutput, error) {
	if err := r.c.enter(ctx, r.k, "GetRestApi"); err != nil {
		return nil, err
	}
	a := r.api(aws.ToString(in.RestApiId), true)
	if a == nil {
		return nil, errNotFound
	}
	return &apigateway.GetRestApiOutput{Id: aws.String(a.ID), Name: aws.String(a.Name), Tags: a.Tags}, nil
}

func (r *REST) GetStages(ctx context.Context, in *apigateway.GetStagesInput, _ ...func(*apigateway.Options)) (*apigateway.GetStagesOutput, error) {
	if err := r.c.enter(ctx, r.k, "GetStages"); err != nil {
		return nil, err
	}
	r.c.mu.Lock()
	err := r.c.StagesErr[aws.ToString(in.RestApiId)]
	r.c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	a := r.api(aws.ToString(in.RestApiId), true)
	if a == nil {
		return nil, errNotFound
	}
	out := &apigateway.GetStagesOutput{}
	for _, s := range a.Stages {
		st := agtypes.Stage{StageName: aws.String(s.Name), Tags: s.Tags}
		if s.Dest != "" {
			st.AccessLogSettings = &agtypes.AccessLogSettings{DestinationArn: aws.String(s.Dest), Format: aws.String(s.Format)}
		}
		if s.Canary {
			st.CanarySettings = &agtypes.CanarySettings{PercentTraffic: 10}
		}
		out.Item = append(out.Item, st)
	}
	return out, nil
}

func (r *REST) GetResources(ctx context.Context, in *resourcegroupstaggingapi.GetResourcesInput, _ ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error) {
	if err := r.c.enter(ctx, r.k, "GetResources"); err != nil {
		return nil, err
	}
	reg := r.c.region(r.k.account, r.k.region)
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	out := &resourcegroupstaggingapi.GetResourcesOutput{}
	for _, res := range slices.Sorted(maps.Keys(reg.tagging)) {
		m := tgtypes.ResourceTagMapping{ResourceARN: aws.String(res)}
		for _, k := range slices.Sorted(maps.Keys(reg.tagging[res])) {
			m.Tags = append(m.Tags, tgtypes.Tag{Key: aws.String(k), Value: aws.String(reg.tagging[res][k])})
		}
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, m)
	}
	return out, nil
}

func (v *V2) GetApis(ctx context.Context, in *apigatewayv2.GetApisInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApisOutput, error) {
	if err := v.c.enter(ctx, v.k, "GetApis"); err != nil {
		return nil, err
	}
	out := &apigatewayv2.GetApisOutput{}
	for _, a := range (*REST)(v).apis(false) {
		out.Items = append(out.Items, ag2types.Api{ApiId: aws.String(a.ID), Name: aws.String(a.Name), ProtocolType: a.Protocol, Tags: a.Tags})
	}
	return out, nil
}

func (v *V2) GetApi(ctx context.Context, in *apigatewayv2.GetApiInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApiOutput, error) {
	if err := v.c.enter(ctx, v.k, "GetApi"); err != nil {
		return nil, err
	}
	a := (*REST)(v).api(aws.ToString(in.ApiId), false)
	if a == nil {
		return nil, errNotFound
	}
	return &apigatewayv2.GetApiOutput{ApiId: aws.String(a.ID), Name: aws.String(a.Name), ProtocolType: a.Protocol, Tags: a.Tags}, nil
}

func (v *V2) GetStages(ctx context.Context, in *apigatewayv2.GetStagesInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetStagesOutput, error) {
	if err := v.c.enter(ctx, v.k, "GetStagesV2"); err != nil {
		return nil, err
	}
	a := (*REST)(v).api(aws.ToString(in.ApiId), false)
	if a == nil {
		return nil, errNotFound
	}
	out := &apigatewayv2.GetStagesOutput{}
	for _, s := range a.Stages {
		st := ag2types.Stage{StageName: aws.String(s.Name), Tags: s.Tags}
		if s.Dest != "" {
			st.AccessLogSettings = &ag2types.AccessLogSettings{DestinationArn: aws.String(s.Dest), Format: aws.String(s.Format)}
		}
		out.Items = append(out.Items, st)
	}
	return out, nil
}

// STS returns the cloud's STS: it hands out credentials for any role (an
// access key naming the role's account) and knows the own account (Self).
func (c *Cloud) STS() STS { return STS{c} }

// STS is the cloud's STS client.
type STS struct{ c *Cloud }

func (s STS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	var acct string
	if role, err := arn.Parse(aws.ToString(in.RoleArn)); err == nil {
		acct = role.AccountID
	}
	if err := s.c.enter(ctx, key{acct, ""}, "AssumeRole"); err != nil {
		return nil, err
	}
	exp := time.Now().Add(time.Hour)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String("ASIA" + acct), SecretAccessKey: aws.String("secret"), SessionToken: aws.String("token"), Expiration: &exp,
	}}, nil
}

func (s STS) GetCallerIdentity(ctx context.Context, _ *sts.GetCallerIdentityInput, _ ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	if err := s.c.enter(ctx, key{"", ""}, "GetCallerIdentity"); err != nil {
		return nil, err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return &sts.GetCallerIdentityOutput{Account: aws.String(s.c.Self)}, nil
}
