package awstags

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tgschemas "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/schemas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"golang.org/x/time/rate"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

// APIGatewayClient is the part of the API Gateway (v1) client the Tagger
// uses; *apigateway.Client implements it. Every call is apigateway:GET.
type APIGatewayClient interface {
	GetRestApis(context.Context, *apigateway.GetRestApisInput, ...func(*apigateway.Options)) (*apigateway.GetRestApisOutput, error)
	GetRestApi(context.Context, *apigateway.GetRestApiInput, ...func(*apigateway.Options)) (*apigateway.GetRestApiOutput, error)
	GetStages(context.Context, *apigateway.GetStagesInput, ...func(*apigateway.Options)) (*apigateway.GetStagesOutput, error)
}

// APIGatewayV2Client is the part of the API Gateway v2 (HTTP and WebSocket
// APIs) client the Tagger uses; *apigatewayv2.Client implements it.
type APIGatewayV2Client interface {
	GetApis(context.Context, *apigatewayv2.GetApisInput, ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApisOutput, error)
	GetApi(context.Context, *apigatewayv2.GetApiInput, ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApiOutput, error)
	GetStages(context.Context, *apigatewayv2.GetStagesInput, ...func(*apigatewayv2.Options)) (*apigatewayv2.GetStagesOutput, error)
}

// TaggingClient is the part of the Resource Groups Tagging API client the
// Tagger uses (tag:GetResources).
type TaggingClient interface {
	GetResources(context.Context, *resourcegroupstaggingapi.GetResourcesInput, ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error)
}

// STSClient assumes the per-account roles and, without roles, tells which
// account the pipeline's own credentials belong to.
type STSClient interface {
	stscreds.AssumeRoleAPIClient
	GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// Clients are the clients of one account in one region.
type Clients struct {
	APIGateway   APIGatewayClient
	APIGatewayV2 APIGatewayV2Client
	Tagging      TaggingClient
}

// ClientFactory makes the clients of an account in a region, signing with
// creds (the account's assumed role, or the pipeline's own credentials).
type ClientFactory func(account, region string, creds aws.CredentialsProvider) Clients

// Service names an AWS service whose endpoint can be overridden.
type Service string

const (
	ServiceSTS          Service = "sts"
	ServiceAPIGateway   Service = "apigateway"
	ServiceAPIGatewayV2 Service = "apigatewayv2" // defaults to ServiceAPIGateway's: AWS serves both on one host
	ServiceTagging      Service = "tagging"
)

// op numbers the AWS operations, for the per-operation call counters.
type op uint8

const (
	opAssumeRole op = iota
	opGetCallerIdentity
	opGetRestApis
	opGetRestApi
	opGetStages
	opGetApis
	opGetApi
	opGetStagesV2
	opGetResources
	numOps
)

var opNames = [numOps]string{
	"sts:AssumeRole", "sts:GetCallerIdentity",
	"apigateway:GetRestApis", "apigateway:GetRestApi", "apigateway:GetStages",
	"apigatewayv2:GetApis", "apigatewayv2:GetApi", "apigatewayv2:GetStages",
	"tagging:GetResources",
}

func (o op) String() string { return opNames[o] }

// account holds what calls into one account share: credentials (assumed
// once and refreshed before they expire, by aws.CredentialsCache), the rate
// limit, and the back-off after throttling.
type account struct {
	id string
	// auth is how the account is read; a reload of the role settings
	// replaces it (SetRoles), and the calls after that use the new one.
	auth    atomic.Pointer[accountAuth]
	limiter *rate.Limiter
	// pauseUntil (unix ns, wall clock) holds every call of the account
	// after AWS throttled one: they all share the same quota.
	pauseUntil atomic.Int64

	invs int // inventories using the account (under Tagger.mu)
}

// accountAuth is the role an account is read with, its credentials and
// the clients made with them.
type accountAuth struct {
	role       string // "" = the pipeline's own credentials
	externalID string
	creds      aws.CredentialsProvider

	mu      sync.Mutex
	clients map[string]Clients // by region
}

func (t *Tagger) newAccount(id string) *account {
	a := &account{id: id, limiter: rate.NewLimiter(rate.Limit(t.cfg.RatePerSecond), t.cfg.Burst)}
	a.auth.Store(t.newAuth(a, t.roles.Load()))
	return a
}

// newAuth is how a is read under r's role settings (RoleFor, ExternalID).
func (t *Tagger) newAuth(a *account, r *Config) *accountAuth {
	au := &accountAuth{role: r.RoleFor(a.id), clients: map[string]Clients{}}
	if au.role == "" {
		au.creds = t.awsCfg.Credentials
		return au
	}
	au.externalID = r.ExternalID
	p := stscreds.NewAssumeRoleProvider(&accountSTS{t: t, a: a}, au.role, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = t.cfg.RoleSessionName
		if au.externalID != "" {
			o.ExternalID = aws.String(au.externalID)
		}
	})
	// Refresh a little before expiry, spread so that accounts assumed
	// together do not renew together.
	au.creds = aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = time.Minute
		o.ExpiryWindowJitterFrac = 0.5
	})
	return au
}

func (a *account) clientsFor(t *Tagger, region string) Clients {
	au := a.auth.Load()
	au.mu.Lock()
	defer au.mu.Unlock()
	c, ok := au.clients[region]
	if !ok {
		c = t.factory(a.id, region, au.creds)
		au.clients[region] = c
	}
	return c
}

// accountSTS counts, bounds and retries the AssumeRole calls the
// credentials cache makes. The cache runs them with a context whose
// cancellation it suppresses, so Close's cancellation is joined in here.
type accountSTS struct {
	t *Tagger
	a *account
}

func (s *accountSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.t.ctx, cancel)
	defer stop()
	var out *sts.AssumeRoleOutput
	err := s.t.call(ctx, s.a, "", opAssumeRole, false, func(ctx context.Context) (err error) {
		out, err = s.t.sts.AssumeRole(ctx, in, opts...)
		return err
	})
	return out, err
}

// call runs one AWS operation for an account: it waits for the account's
// rate limit (limited calls only: STS has its own, generous quota), bounds
// each attempt by CallTimeout, retries retryable failures with exponential
// back-off and full jitter, and after throttling holds the account's other
// calls too. Each attempt counts as one call in Stats.
func (t *Tagger) call(ctx context.Context, a *account, region string, o op, limited bool, fn func(context.Context) error) error {
	var pace *backoff.Backoff
	for attempt := 1; ; attempt++ {
		if err := t.waitTurn(ctx, a, limited); err != nil {
			return &Error{Op: o.String(), Account: a.id, Region: region, Kind: KindPermanent, Err: err}
		}
		t.stats.calls[o].Add(1)
		actx, cancel := context.WithTimeout(ctx, t.cfg.CallTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		kind, final := classify(err), false
		var inner *Error
		if errors.As(err, &inner) {
			// Already classified and retried where it was born (the
			// credentials' AssumeRole): do not multiply the attempts.
			kind, final = inner.Kind, true
		}
		if pace == nil {
			pace = t.cfg.Retry.Start()
		}
		wait := pace.Next()
		if kind == KindThrottled && !final {
			t.stats.throttles.Add(1)
			a.pause(wait) // the account's other calls wait as long as this one
		}
		if final || kind == KindPermanent || kind == KindNotFound || attempt >= t.cfg.MaxAttempts || ctx.Err() != nil {
			if kind != KindNotFound {
				t.stats.errors.Add(1)
			}
			return &Error{Op: o.String(), Account: a.id, Region: region, Kind: kind, Err: err}
		}
		if err := pace.Sleep(ctx, wait); err != nil {
			return &Error{Op: o.String(), Account: a.id, Region: region, Kind: kind, Err: err}
		}
	}
}

func (t *Tagger) waitTurn(ctx context.Context, a *account, limited bool) error {
	if until := a.pauseUntil.Load(); until > 0 {
		if d := time.Until(time.Unix(0, until)); d > 0 {
			if err := backoff.Sleep(ctx, d); err != nil {
				return err
			}
		}
	}
	if !limited {
		return nil
	}
	if err := a.limiter.Wait(ctx); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

func (a *account) pause(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := a.pauseUntil.Load()
		if cur >= until || a.pauseUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// selfAccount returns the account of the pipeline's own credentials.
// sts:GetCallerIdentity needs no permission.
func (t *Tagger) selfAccount(ctx context.Context, a *account) (string, error) {
	t.selfMu.Lock()
	defer t.selfMu.Unlock()
	if t.self != "" {
		return t.self, nil
	}
	var out *sts.GetCallerIdentityOutput
	err := t.call(ctx, a, "", opGetCallerIdentity, false, func(ctx context.Context) (err error) {
		out, err = t.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	})
	if err != nil {
		return "", err
	}
	t.self = aws.ToString(out.Account)
	return t.self, nil
}

// checkAccount makes sure the account can be read: with no role for it, the
// pipeline's own credentials must belong to it, or every answer would be
// another account's.
func (t *Tagger) checkAccount(ctx context.Context, a *account, region string) error {
	if a.auth.Load().role != "" {
		return nil
	}
	self, err := t.selfAccount(ctx, a)
	if err != nil {
		// Cannot tell; reading is still the best guess, and it fails on
		// its own if the credentials are bad.
		t.log.Debug("cannot tell the pipeline's own account", "error", err)
		return nil
	}
	if self != a.id {
		return &Error{Op: opGetCallerIdentity.String(), Account: a.id, Region: region, Kind: KindPermanent,
			Err: fmt.Errorf("%w (%s)", errNoCredentials, self)}
	}
	return nil
}

// defaultClients makes SDK clients. Retries are the Tagger's own (see
// call), so the SDK's are turned off: each attempt then goes through the
// account's rate limit and counts.
func (t *Tagger) defaultClients(_ string, region string, creds aws.CredentialsProvider) Clients {
	cfg := t.awsCfg.Copy()
	cfg.Region = region
	cfg.Credentials = creds
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	cfg.HTTPClient = t.httpClient
	v1, v2, tg := t.endpoint(ServiceAPIGateway), t.endpoint(ServiceAPIGatewayV2), t.endpoint(ServiceTagging)
	if v2 == nil {
		v2 = v1
	}
	return Clients{
		APIGateway: apigateway.NewFromConfig(cfg, func(o *apigateway.Options) {
			if v1 != nil {
				o.BaseEndpoint = v1
			}
		}),
		APIGatewayV2: apigatewayv2.NewFromConfig(cfg, func(o *apigatewayv2.Options) {
			if v2 != nil {
				o.BaseEndpoint = v2
			}
		}),
		Tagging: resourcegroupstaggingapi.NewFromConfig(cfg, func(o *resourcegroupstaggingapi.Options) {
			// Since v1.42.0 the SDK speaks Smithy RPCv2 CBOR to the tagging
			// API by default. AWS serves both, but emulators (moto),
			// proxies and the protocol the API documents are AWS JSON 1.1,
			// and one call per 100 resources per TTL gains nothing from CBOR.
			o.Protocol = awsjson.New11(tgschemas.ResourceGroupsTaggingAPI_20170126)
			if tg != nil {
				o.BaseEndpoint = tg
			}
		}),
	}
}

func (t *Tagger) defaultSTS() STSClient {
	cfg := t.awsCfg.Copy()
	if cfg.Region == "" {
		cfg.Region = t.cfg.DefaultRegion
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	cfg.HTTPClient = t.httpClient
	ep := t.endpoint(ServiceSTS)
	return sts.NewFromConfig(cfg, func(o *sts.Options) {
		if ep != nil {
			o.BaseEndpoint = ep
		}
	})
}

func (t *Tagger) endpoint(s Service) *string {
	if e, ok := t.opts.endpoints[s]; ok && e != "" {
		return aws.String(e)
	}
	return nil
}
