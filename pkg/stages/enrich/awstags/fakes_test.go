package awstags

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags/awstagstest"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeclock"
)

// cloudFactory makes a Tagger's clients over a fake cloud.
func cloudFactory(c *awstagstest.Cloud) ClientFactory {
	return func(account, region string, _ aws.CredentialsProvider) Clients {
		rest, v2 := c.Clients(account, region)
		return Clients{APIGateway: rest, APIGatewayV2: v2, Tagging: rest}
	}
}

// newFakeClock is the tests' clock, standing at a fixed time.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
}

// harness is a Tagger over a fake cloud (awstagstest), with its clock, its sweep ticker
// and a channel of refresh events.
type harness struct {
	t      *Tagger
	cloud  *awstagstest.Cloud
	clock  *fakeclock.Clock
	tick   chan time.Time
	events chan RefreshEvent
}

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	h := &harness{cloud: awstagstest.New(), clock: newFakeClock(), tick: make(chan time.Time), events: make(chan RefreshEvent, 1024)}
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
		WithClientFactory(cloudFactory(h.cloud)), WithSTSClient(h.cloud.STS()), WithTicker(h.tick),
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
func petstore(id string) *awstagstest.API {
	return &awstagstest.API{ID: id, Name: "PetStore",
		Tags: map[string]string{"team": "payments", "env": "prod", "Cost Center": "1234"},
		Stages: []awstagstest.Stage{
			{Name: "prod", Tags: map[string]string{"env": "production", "service": "pets"},
				Dest: "arn:aws:logs:us-east-1:111111111111:log-group:/gw/petstore/prod:*", Format: `{"requestId":"$context.requestId"}`},
			{Name: "dev"},
		}}
}

var errAccessDenied = awstagstest.APIError("AccessDeniedException")

// testLogger logs into the test's output, shown when it fails.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
