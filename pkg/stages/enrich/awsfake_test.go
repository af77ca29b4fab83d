package enrich

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags/awstagstest"
)

// fleet is an in-process AWS (awstagstest) of many accounts and regions,
// each with REST APIs of two stages, for the stage's integration test and
// benchmark.
type fleet struct {
	*awstagstest.Cloud
	accounts, regions []string
	apis              int // REST APIs per account and region
}

func newFleet(accounts, regions []string, apis int) *fleet {
	f := &fleet{Cloud: awstagstest.New(), accounts: accounts, regions: regions, apis: apis}
	for _, a := range accounts {
		for _, r := range regions {
			for i := range apis {
				id := f.apiID(a, r, i)
				f.AddAPI(a, r, &awstagstest.API{ID: id, Name: fmt.Sprintf("Service %d", i),
					Tags: map[string]string{"team": fmt.Sprintf("team-%d", i%7), "Cost Center": fmt.Sprint(1000 + i%13), "env": "prod"},
					Stages: []awstagstest.Stage{
						{Name: "prod", Tags: map[string]string{"service": "svc-" + id, "env": "production"},
							Dest:   fmt.Sprintf("arn:aws:logs:%s:%s:log-group:/gw/%s/prod", r, a, id),
							Format: `{"requestId":"$context.requestId","apiId":"$context.apiId","stage":"$context.stage"}`},
						{Name: "dev"},
					}})
			}
		}
	}
	return f
}

func (f *fleet) apiID(account, region string, i int) string {
	return fmt.Sprintf("%c%c%08d", 'a'+account[0]-'1', 'a'+len(region)%26, i)
}

func (f *fleet) stages() int { return len(f.accounts) * len(f.regions) * f.apis * 2 }

func (f *fleet) factory(account, region string, _ aws.CredentialsProvider) awstags.Clients {
	rest, v2 := f.Clients(account, region)
	return awstags.Clients{APIGateway: rest, APIGatewayV2: v2, Tagging: rest}
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
	tg, err := awstags.New(context.Background(), cfg, aws.Config{}, awstags.WithClientFactory(f.factory), awstags.WithSTSClient(f.STS()),
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
