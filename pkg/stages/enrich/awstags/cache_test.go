package awstags

import (
	"context"
	"sync"
	"testing"
	"time"

	ag2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags/awstagstest"
)

const (
	acctA = "111111111111"
	acctB = "222222222222"
	usE1  = "us-east-1"
	euW1  = "eu-west-1"
)

var roleCfg = Config{RoleTemplate: "arn:aws:iam::{account}:role/gwpipe-reader"}

func TestLookupBuildsConsoleTags(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	h.cloud.AddAPI(acctA, usE1, &awstagstest.API{ID: "h1h2h3h4h5", Name: "orders", Protocol: ag2types.ProtocolTypeHttp, Tags: map[string]string{"team": "orders"},
		Stages: []awstagstest.Stage{{Name: "$default", Tags: map[string]string{"Service": "Orders API"},
			Dest: "arn:aws:firehose:us-east-1:111111111111:deliverystream/amazon-apigateway-orders", Format: "$context.requestId $context.status"}}})
	// The tagging API's view of a resource wins over its listing's.
	h.cloud.SetResourceTags(acctA, usE1, "arn:aws:apigateway:us-east-1::/restapis/a1b2c3d4e5", map[string]string{"team": "payments-core"})
	h.cloud.SetResourceTags(acctA, usE1, "arn:aws:apigateway:us-east-1::/restapis/a1b2c3d4e5/stages/prod", map[string]string{"owner": "alice@example.com"})
	h.cloud.SetResourceTags(acctA, usE1, "arn:aws:apigateway:us-east-1::/restapis/a1b2c3d4e5/deployments/abc", map[string]string{"ignored": "x"})

	// What the two APIs resolve to, reached by stage or by log group.
	petstoreProd := Info{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod", APIName: "PetStore", Kind: APIREST,
		Tags: []string{"apiid:a1b2c3d4e5", "apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:111111111111",
			"cost_center:1234", "env:production", "owner:alice_example.com", "service:pets", "team:payments-core"},
		Service: "pets", Env: "production", AccessLogDestination: "/gw/petstore/prod", AccessLogFormat: `{"requestId":"$context.requestId"}`}
	orders := Info{Account: acctA, Region: usE1, APIID: "h1h2h3h4h5", Stage: "$default", APIName: "orders", Kind: APIHTTP,
		Tags: []string{"apiid:h1h2h3h4h5", "apiname:orders", "stage:_default", "region:us-east-1", "aws_account:111111111111",
			"service:orders_api", "team:orders"},
		Service: "orders_api", AccessLogDestination: "amazon-apigateway-orders", AccessLogFormat: "$context.requestId $context.status"}
	// petstoreAPI is a PetStore stage without tags of its own (or none
	// named): the API's tags.
	petstoreAPI := func(stage string) Info {
		tags := []string{"apiid:a1b2c3d4e5", "apiname:petstore"}
		if stage != "" {
			tags = append(tags, "stage:"+stage)
		}
		tags = append(tags, "region:us-east-1", "aws_account:111111111111", "cost_center:1234", "env:prod", "team:payments-core")
		return Info{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: stage, APIName: "PetStore", Kind: APIREST, Tags: tags, Env: "prod"}
	}
	base := Info{Account: acctA, Region: usE1, Tags: []string{"region:us-east-1", "aws_account:111111111111"}}

	tests := []struct {
		name string
		key  StageKey
		want Info
	}{
		{"REST stage: API and stage tags, stage wins, tagging API wins",
			StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}, petstoreProd},
		{"REST stage without tags inherits the API's",
			StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "dev"}, petstoreAPI("dev")},
		{"HTTP API $default stage",
			StageKey{Account: acctA, Region: usE1, APIID: "h1h2h3h4h5", Stage: "$default"}, orders},
		{"API without stage",
			StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5"}, petstoreAPI("")},
		{"log group through the access-log destinations",
			StageKey{Account: acctA, Region: usE1, LogGroup: "/gw/petstore/prod"}, petstoreProd},
		{"Firehose stream through the access-log destinations",
			StageKey{Account: acctA, Region: usE1, LogGroup: "amazon-apigateway-orders"}, orders},
		{"log group no stage writes to: account and region only",
			StageKey{Account: acctA, Region: usE1, LogGroup: "/some/other/group"}, base},
		{"unknown stage of a known API: the API's tags, complete",
			StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "gone"}, petstoreAPI("gone")},
		{"no stage named: base tags",
			StageKey{Account: acctA, Region: usE1}, base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, complete := h.lookup(t, tc.key)
			assert.True(t, complete)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, len(got.Tags), cap(got.Tags), "appending to shared tags must copy")
		})
	}
	s := h.t.Stats()
	for _, op := range []string{"apigateway:GetRestApis", "apigatewayv2:GetApis", "apigateway:GetStages", "apigatewayv2:GetStages", "tagging:GetResources"} {
		assert.Equal(t, int64(1), s.Calls[op], op)
	}
	assert.Equal(t, int64(3), s.Stages)
}

func TestSharedTagSlice(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	key := StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}
	a, _ := h.lookup(t, key)
	b, settled := h.t.Peek(key)
	require.True(t, settled)
	assert.Same(t, &a.Tags[0], &b.Tags[0], "every record of a stage shares one slice")
	base1, _ := h.t.Peek(StageKey{Account: acctA, Region: usE1})
	base2, _ := h.t.Peek(StageKey{Account: acctA, Region: usE1})
	assert.Same(t, &base1.Tags[0], &base2.Tags[0])
}

func TestConcurrentMissesShareOneRead(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	h.cloud.Gate.Hold()
	keys := []StageKey{
		{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"},
		{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "dev"},
		{Account: acctA, Region: usE1, LogGroup: "/gw/petstore/prod"},
	}
	for _, k := range keys { // every key is a miss while the read is held
		_, settled := h.t.Peek(k)
		require.False(t, settled)
	}
	var wg sync.WaitGroup
	results := make(chan bool, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, complete := h.lookup(t, keys[i%len(keys)])
			results <- complete
		}()
	}
	h.cloud.Gate.Release()
	wg.Wait()
	close(results)
	for complete := range results {
		assert.True(t, complete)
	}
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetRestApis"))
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetStages"))
}

func TestColdStageIsPartialAfterMaxWait(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	h.cloud.Gate.Hold()
	key := StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	info, complete := h.t.Lookup(ctx, key)
	assert.False(t, complete)
	assert.True(t, info.Partial)
	assert.Equal(t, []string{"apiid:a1b2c3d4e5", "stage:prod", "region:us-east-1", "aws_account:111111111111", PartialTag}, info.Tags)

	// One record waited in vain: the next ones go on at once.
	info, settled := h.t.Peek(key)
	assert.True(t, settled)
	assert.True(t, info.Partial)

	h.cloud.Gate.Release()
	require.NoError(t, h.event(t).Err)
	info, settled = h.t.Peek(key)
	assert.True(t, settled)
	assert.False(t, info.Partial)
	assert.Contains(t, info.Tags, "team:payments")
	s := h.t.Stats()
	assert.Equal(t, int64(1), s.WaitTimeouts)
	assert.Equal(t, int64(2), s.Partial)
}

func TestRefreshAfterTTLServesStaleWhileAWSFails(t *testing.T) {
	h := newHarness(t, roleCfg)
	api := petstore("a1b2c3d4e5")
	h.cloud.AddAPI(acctA, usE1, api)
	key := StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}
	info, _ := h.lookup(t, key)
	require.Contains(t, info.Tags, "team:payments")
	require.NoError(t, h.event(t).Err)

	h.cloud.Update(func() { api.Tags = map[string]string{"team": "platform"} })
	h.clock.Advance(DefaultTTL / 2)
	h.sweep()
	info, _ = h.t.Peek(key)
	assert.Contains(t, info.Tags, "team:payments", "within the TTL the cache answers")
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetRestApis"))

	h.clock.Advance(DefaultTTL)
	h.sweep()
	require.NoError(t, h.event(t).Err)
	info, _ = h.t.Peek(key)
	assert.Contains(t, info.Tags, "team:platform")

	// AWS fails: the last tags stay served, not flagged partial.
	h.cloud.FailNext(acctA, usE1, "GetRestApis", errAccessDenied)
	h.clock.Advance(2 * DefaultTTL)
	h.sweep()
	ev := h.event(t)
	require.Error(t, ev.Err)
	assert.False(t, IsRetryable(ev.Err))
	info, settled := h.t.Peek(key)
	assert.True(t, settled)
	assert.False(t, info.Partial)
	assert.Contains(t, info.Tags, "team:platform")
	assert.Equal(t, int64(1), h.t.Stats().Stale)

	// After NegativeTTL the read is tried again and succeeds.
	h.clock.Advance(DefaultNegativeTTL + time.Second)
	h.sweep()
	require.NoError(t, h.event(t).Err)
	assert.Equal(t, 4, h.cloud.Count(acctA, usE1, "GetRestApis"))
}

func TestNegativeCachingAndSingleAPIRead(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	ghost := StageKey{Account: acctA, Region: usE1, APIID: "zzzzzzzzzz", Stage: "prod"}
	info, complete := h.lookup(t, ghost)
	require.NoError(t, h.event(t).Err)
	assert.True(t, complete, "a fresh read says the API does not exist")
	assert.Equal(t, []string{"apiid:zzzzzzzzzz", "stage:prod", "region:us-east-1", "aws_account:111111111111"}, info.Tags)

	// Older than NegativeTTL: one read of that API alone, then remembered.
	h.clock.Advance(DefaultNegativeTTL + time.Second)
	_, complete = h.lookup(t, ghost)
	assert.True(t, complete)
	assert.Equal(t, "zzzzzzzzzz", h.event(t).APIID)
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetRestApi"))
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetApi"))
	for range 5 {
		_, settled := h.t.Peek(ghost)
		assert.True(t, settled)
	}
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetRestApi"), "negative answers are cached")

	// A new API appears: found by a single-API read once NegativeTTL passed.
	h.cloud.AddAPI(acctA, usE1, &awstagstest.API{ID: "n1n2n3n4n5", Name: "chat", Protocol: ag2types.ProtocolTypeWebsocket, Tags: map[string]string{"team": "chat"},
		Stages: []awstagstest.Stage{{Name: "live", Tags: map[string]string{"env": "prod"}}}})
	info, complete = h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "n1n2n3n4n5", Stage: "live"})
	require.True(t, complete)
	require.NoError(t, h.event(t).Err)
	assert.Equal(t, APIWebSocket, info.Kind)
	assert.Equal(t, []string{"apiid:n1n2n3n4n5", "apiname:chat", "stage:live", "region:us-east-1", "aws_account:111111111111", "env:prod", "team:chat"}, info.Tags)
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetRestApis"), "no full read for one API")
	assert.Equal(t, int64(3), h.t.Stats().Stages)
}

func TestThrottlingIsRetriedWithBackoff(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	h.cloud.FailNext(acctA, usE1, "GetRestApis", awstagstest.APIError("TooManyRequestsException"), awstagstest.APIError("TooManyRequestsException"))
	h.cloud.FailNext(acctA, usE1, "GetResources", awstagstest.APIError("ThrottledException"))
	info, complete := h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "team:payments")
	s := h.t.Stats()
	assert.Equal(t, int64(3), s.Throttles)
	assert.Equal(t, int64(3), s.Calls["apigateway:GetRestApis"])
	assert.Equal(t, int64(2), s.Calls["tagging:GetResources"])
	assert.Equal(t, int64(0), s.Errors)
}

func TestDegradedReads(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	h.cloud.AddAPI(acctA, usE1, petstore("b1b2b3b4b5"))
	// One API's stages cannot be read, and the tagging API is throttled
	// through every retry: the rest of the account is still served.
	h.cloud.Update(func() { h.cloud.StagesErr = map[string]error{"a1b2c3d4e5": errAccessDenied} })
	h.cloud.FailNext(acctA, usE1, "GetResources", awstagstest.APIError("ThrottledException"), awstagstest.APIError("ThrottledException"), awstagstest.APIError("ThrottledException"))
	info, complete := h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "b1b2b3b4b5", Stage: "prod"})
	ev := h.event(t)
	require.NoError(t, ev.Err)
	assert.Len(t, ev.Degraded, 2)
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "service:pets")

	info, settled := h.t.Peek(StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	assert.True(t, settled, "no use waiting: the read is over")
	assert.True(t, info.Partial, "the stage's own tags are unknown")
	assert.Contains(t, info.Tags, "team:payments", "the API's tags are known")
	assert.Equal(t, int64(2), h.t.Stats().Stages)
}

func TestUnreadableAccountIsNegativelyCached(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctB, usE1, petstore("a1b2c3d4e5"))
	h.cloud.FailNext(acctA, usE1, "GetRestApis", errAccessDenied)
	bad := StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}
	info, complete := h.lookup(t, bad)
	assert.False(t, complete)
	assert.Contains(t, info.Tags, PartialTag)
	require.Error(t, h.event(t).Err)

	// The other account is not affected.
	_, complete = h.lookup(t, StageKey{Account: acctB, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	assert.True(t, complete)
	require.NoError(t, h.event(t).Err)

	for range 3 {
		_, settled := h.t.Peek(bad)
		assert.True(t, settled)
	}
	assert.Equal(t, 1, h.cloud.Count(acctA, usE1, "GetRestApis"), "permanent errors are not retried, and remembered")
	// After NegativeTTL the sweep reads the account again; records do not
	// wait for that read: the account failed recently, batches must not
	// stall on it.
	h.clock.Advance(DefaultNegativeTTL + time.Second)
	h.sweep()
	require.NoError(t, h.event(t).Err)
	_, complete = h.lookup(t, bad)
	assert.True(t, complete)
	assert.Equal(t, 2, h.cloud.Count(acctA, usE1, "GetRestApis"))
}

func TestOwnCredentialsServeOnlyTheirAccount(t *testing.T) {
	h := newHarness(t, Config{})
	h.cloud.AddAPI("123456789012", usE1, petstore("a1b2c3d4e5"))
	info, complete := h.lookup(t, StageKey{Account: "123456789012", Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	assert.True(t, complete)
	assert.Contains(t, info.Tags, "team:payments")

	info, complete = h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	assert.False(t, complete)
	assert.Contains(t, info.Tags, PartialTag)
	assert.Equal(t, 0, h.cloud.Count(acctA, usE1, "GetRestApis"), "another account's APIs are never read with our credentials")
	assert.Equal(t, int64(1), h.t.Stats().Calls["sts:GetCallerIdentity"])
}

func TestBoundedSizeAndEviction(t *testing.T) {
	h := newHarness(t, Config{RoleTemplate: roleCfg.RoleTemplate, MaxStages: 3})
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	h.cloud.AddAPI(acctA, usE1, petstore("b1b2b3b4b5"))
	h.cloud.AddAPI(acctB, euW1, petstore("c1c2c3c4c5"))
	h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	h.lookup(t, StageKey{Account: acctB, Region: euW1, APIID: "c1c2c3c4c5", Stage: "prod"})
	s := h.t.Stats()
	assert.Equal(t, int64(3), s.Stages)
	assert.Equal(t, int64(3), s.Truncated)
	assert.Equal(t, int64(2), s.Inventories)
	// A stage left out is unknown, not absent: partial, and not fetched
	// again and again.
	h.clock.Advance(DefaultNegativeTTL + time.Second)
	info, settled := h.t.Peek(StageKey{Account: acctB, Region: euW1, APIID: "c1c2c3c4c5", Stage: "dev"})
	assert.True(t, settled)
	assert.True(t, info.Partial)
	assert.Contains(t, info.Tags, "team:payments")
	assert.Zero(t, h.cloud.Count(acctB, euW1, "GetRestApi"))

	// Rejected: implausible accounts and regions never reach AWS.
	info, _ = h.t.Peek(StageKey{Account: "not-an-account", Region: usE1, APIID: "x", Stage: "y"})
	assert.True(t, info.Partial)
	assert.Equal(t, int64(1), h.t.Stats().Rejected)

	h.sweep() // notes the use above
	h.clock.Advance(4*DefaultTTL + time.Second)
	h.sweep()
	s = h.t.Stats()
	assert.Equal(t, int64(0), s.Inventories)
	assert.Equal(t, int64(0), s.Stages)
	assert.Equal(t, int64(2), s.Evicted)
}

func TestOnFormat(t *testing.T) {
	type change struct{ group, format string }
	var mu sync.Mutex
	var got []change
	cfg := roleCfg
	cfg.OnFormat = func(g, f string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, change{g, f})
	}
	h := newHarness(t, cfg)
	api := petstore("a1b2c3d4e5")
	api.Stages[1] = awstagstest.Stage{Name: "dev", Canary: true, Dest: "arn:aws:logs:us-east-1:111111111111:log-group:/gw/petstore/dev", Format: "$context.requestId"}
	h.cloud.AddAPI(acctA, usE1, api)
	h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	require.NoError(t, h.event(t).Err)
	mu.Lock()
	assert.Equal(t, []change{
		{"/gw/petstore/dev", "$context.requestId"},
		{"/gw/petstore/dev/Canary", "$context.requestId"},
		{"/gw/petstore/prod", `{"requestId":"$context.requestId"}`},
	}, got)
	got = nil
	mu.Unlock()

	// The canary group resolves to its stage.
	info, complete := h.lookup(t, StageKey{Account: acctA, Region: usE1, LogGroup: "/gw/petstore/dev/Canary"})
	assert.True(t, complete)
	assert.Equal(t, "dev", info.Stage)

	h.cloud.Update(func() {
		api.Stages[1] = awstagstest.Stage{Name: "dev"}
		api.Stages[0].Format = "$context.requestId $context.status"
	})
	h.clock.Advance(2 * DefaultTTL)
	h.sweep()
	require.NoError(t, h.event(t).Err)
	mu.Lock()
	assert.Equal(t, []change{
		{"/gw/petstore/prod", "$context.requestId $context.status"},
		{"/gw/petstore/dev", ""},
		{"/gw/petstore/dev/Canary", ""},
	}, got)
	mu.Unlock()
}

func TestCloseCancelsReadsInFlight(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.Gate.Hold() // the read blocks until its context ends
	_, settled := h.t.Peek(StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	require.False(t, settled)
	done := make(chan struct{})
	go func() { _ = h.t.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	_, settled = h.t.Peek(StageKey{Account: acctB, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	assert.True(t, settled, "a closed Tagger fetches nothing")
}

func TestPeekHitDoesNotAllocate(t *testing.T) {
	h := newHarness(t, roleCfg)
	h.cloud.AddAPI(acctA, usE1, petstore("a1b2c3d4e5"))
	key := StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"}
	h.lookup(t, key)
	base := StageKey{Account: acctA, Region: usE1}
	h.t.Peek(base)
	allocs := testing.AllocsPerRun(1000, func() {
		h.t.Peek(key)
		h.t.Peek(base)
	})
	assert.Zero(t, allocs)
}

func TestAccountsHaveTheirOwnRateLimit(t *testing.T) {
	h := newHarness(t, Config{RoleTemplate: roleCfg.RoleTemplate, RoleOverrides: map[string]string{acctB: "arn:aws:iam::222222222222:role/other"}})
	h.lookup(t, StageKey{Account: acctA, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	h.lookup(t, StageKey{Account: acctA, Region: euW1, APIID: "a1b2c3d4e5", Stage: "prod"})
	h.lookup(t, StageKey{Account: acctB, Region: usE1, APIID: "a1b2c3d4e5", Stage: "prod"})
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	require.Len(t, h.t.accounts, 2, "regions of an account share its credentials and limit")
	a, b := h.t.accounts[acctA], h.t.accounts[acctB]
	assert.NotSame(t, a.limiter, b.limiter)
	assert.Equal(t, float64(DefaultRatePerSecond), float64(a.limiter.Limit()))
	assert.Equal(t, DefaultBurst, a.limiter.Burst())
	assert.Equal(t, "arn:aws:iam::111111111111:role/gwpipe-reader", a.auth.Load().role)
	assert.Equal(t, "arn:aws:iam::222222222222:role/other", b.auth.Load().role)
}
