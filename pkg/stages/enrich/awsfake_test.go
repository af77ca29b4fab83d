package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/testkit/gate"
)

// fleet is an in-process AWS of many accounts and regions, each with REST
// APIs of two stages, for the stage's integration test and benchmark. It
// counts every call, and can hold calls at a gate.
type fleet struct {
	accounts, regions []string
	apis              int // REST APIs per account and region

	calls atomic.Int64
	gate  gate.Gate
}

func (f *fleet) apiID(account, region string, i int) string {
	return fmt.Sprintf("%c%c%08d", 'a'+account[0]-'1', 'a'+len(region)%26, i)
}

func (f *fleet) stages() int { return len(f.accounts) * len(f.regions) * f.apis * 2 }

func (f *fleet) enter(ctx context.Context) error {
	f.calls.Add(1)
	return f.gate.Wait(ctx)
}

// fleetConn is one account and region of the fleet; fleetREST, fleetV2 and
// fleetTagging are its three clients.
type fleetConn struct {
	f               *fleet
	account, region string
}

type (
	fleetREST    struct{ *fleetConn }
	fleetV2      struct{ *fleetConn }
	fleetTagging struct{ *fleetConn }
)

func (f *fleet) factory(account, region string, _ aws.CredentialsProvider) awstags.Clients {
	c := &fleetConn{f: f, account: account, region: region}
	return awstags.Clients{APIGateway: fleetREST{c}, APIGatewayV2: fleetV2{c}, Tagging: fleetTagging{c}}
}

var errNotFound = &smithy.GenericAPIError{Code: "NotFoundException"}

// reply answers a call once it has passed the fleet's gate: the fleet holds
// no HTTP APIs, and single-API reads find nothing.
func reply[T any](ctx context.Context, f *fleet, out *T, err error) (*T, error) {
	if err := f.enter(ctx); err != nil {
		return nil, err
	}
	return out, err
}

func (c fleetREST) GetRestApis(ctx context.Context, _ *apigateway.GetRestApisInput, _ ...func(*apigateway.Options)) (*apigateway.GetRestApisOutput, error) {
	if err := c.f.enter(ctx); err != nil {
		return nil, err
	}
	out := &apigateway.GetRestApisOutput{}
	for i := range c.f.apis {
		out.Items = append(out.Items, agtypes.RestApi{
			Id: aws.String(c.f.apiID(c.account, c.region, i)), Name: aws.String(fmt.Sprintf("Service %d", i)),
			Tags: map[string]string{"team": fmt.Sprintf("team-%d", i%7), "Cost Center": fmt.Sprint(1000 + i%13), "env": "prod"},
		})
	}
	return out, nil
}

func (c fleetREST) GetRestApi(ctx context.Context, _ *apigateway.GetRestApiInput, _ ...func(*apigateway.Options)) (*apigateway.GetRestApiOutput, error) {
	return reply[apigateway.GetRestApiOutput](ctx, c.f, nil, errNotFound)
}

func (c fleetREST) GetStages(ctx context.Context, in *apigateway.GetStagesInput, _ ...func(*apigateway.Options)) (*apigateway.GetStagesOutput, error) {
	if err := c.f.enter(ctx); err != nil {
		return nil, err
	}
	id := aws.ToString(in.RestApiId)
	return &apigateway.GetStagesOutput{Item: []agtypes.Stage{
		{StageName: aws.String("prod"), Tags: map[string]string{"service": "svc-" + id, "env": "production"},
			AccessLogSettings: &agtypes.AccessLogSettings{
				DestinationArn: aws.String(fmt.Sprintf("arn:aws:logs:%s:%s:log-group:/gw/%s/prod", c.region, c.account, id)),
				Format:         aws.String(`{"requestId":"$context.requestId","apiId":"$context.apiId","stage":"$context.stage"}`)}},
		{StageName: aws.String("dev")},
	}}, nil
}

func (c fleetV2) GetApis(ctx context.Context, _ *apigatewayv2.GetApisInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApisOutput, error) {
	return reply(ctx, c.f, &apigatewayv2.GetApisOutput{}, nil)
}

func (c fleetV2) GetApi(ctx context.Context, _ *apigatewayv2.GetApiInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetApiOutput, error) {
	return reply[apigatewayv2.GetApiOutput](ctx, c.f, nil, errNotFound)
}

func (c fleetV2) GetStages(ctx context.Context, _ *apigatewayv2.GetStagesInput, _ ...func(*apigatewayv2.Options)) (*apigatewayv2.GetStagesOutput, error) {
	return reply(ctx, c.f, &apigatewayv2.GetStagesOutput{}, nil)
}

func (c fleetTagging) GetResources(ctx context.Context, _ *resourcegroupstaggingapi.GetResourcesInput, _ ...func(*resourcegroupstaggingapi.Options)) (*resourcegroupstaggingapi.GetResourcesOutput, error) {
	return reply(ctx, c.f, &resourcegroupstaggingapi.GetResourcesOutput{}, nil)
}

type noSTS struct{}

func (noSTS) AssumeRole(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDenied"}
}

func (noSTS) GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	return &sts.GetCallerIdentityOutput{Account: aws.String("000000000000")}, nil
}

// newFleetTagger is a Tagger over the fleet, reading every account through
// a role (the fake clients never ask for credentials).
func newFleetTagger(tb testing.TB, f *fleet, cfg awstags.Config) (*awstags.Tagger, <-chan awstags.RefreshEvent) {
	tb.Helper()
	cfg.RoleTemplate = "arn:aws:iam::{account}:role/gwpipe-reader"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	events := make(chan awstags.RefreshEvent, len(f.accounts)*len(f.regions)+16)
	tg, err := awstags.New(context.Background(), cfg, aws.Config{}, awstags.WithClientFactory(f.factory), awstags.WithSTSClient(noSTS{}),
		awstags.WithOnRefresh(func(ev awstags.RefreshEvent) { events <- ev }))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = tg.Close() })
	return tg, events
}

// awaitReads waits until every account and region of the fleet was read.
func awaitReads(tb testing.TB, f *fleet, events <-chan awstags.RefreshEvent) {
	tb.Helper()
	timeout := time.After(time.Minute)
	for range len(f.accounts) * len(f.regions) {
		select {
		case ev := <-events:
			require.NoError(tb, ev.Err)
		case <-timeout:
			tb.Fatal("the fleet was not read within a minute")
		}
	}
}
