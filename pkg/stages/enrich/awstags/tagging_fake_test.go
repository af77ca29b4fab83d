package awstags

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// taggingFake replays recorded tag:GetResources pages, speaking AWS JSON
// 1.1 as the real endpoint does. Like AWS, it learns who is calling from
// the request's access key (asking moto's STS which account the key
// belongs to) and answers with that account's resources in the region the
// request was signed for; a call signed with any other credentials than an
// assumed role's gets AccessDeniedException. It can throttle on demand.
type taggingFake struct {
	tb      testing.TB
	srv     *httptest.Server
	motoSTS func(akid, token string) (string, error)

	mu       sync.Mutex
	pages    map[invKey][]json.RawMessage
	throttle map[invKey]int
	accounts map[string]string // access key id → account
	calls    []taggingCall
}

type taggingCall struct {
	akid, account, region string
	page                  int
	throttled             bool
}

const (
	taggingTarget  = "ResourceGroupsTaggingAPI_20170126.GetResources"
	amzJSON11      = "application/x-amz-json-1.1"
	pageTokenStart = "gwpipe-fake-page-"
)

func newTaggingFake(tb testing.TB, m *motoServer) *taggingFake {
	f := &taggingFake{tb: tb, pages: map[invKey][]json.RawMessage{}, throttle: map[invKey]int{}, accounts: map[string]string{}}
	f.motoSTS = func(akid, token string) (string, error) {
		cfg := m.awsConfig()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(akid, "unused", token)
		out, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.Account), nil
	}
	f.srv = httptest.NewServer(f)
	tb.Cleanup(f.srv.Close)
	return f
}

// record loads the recorded pages, with the seeded ids in place.
func (f *taggingFake) record(s seeded) {
	raw, err := os.ReadFile("testdata/getresources_apigateway.json")
	require.NoError(f.tb, err)
	text := strings.NewReplacer("{{region}}", s.region, "{{rest}}", s.restID, "{{http}}", s.httpID, "{{ws}}", s.wsID).Replace(string(raw))
	var pages []json.RawMessage
	require.NoError(f.tb, json.Unmarshal([]byte(text), &pages))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages[invKey{s.account, s.region}] = pages
}

func (f *taggingFake) throttleNext(account, region string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[invKey{account, region}] = n
}

func (f *taggingFake) log() []taggingCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]taggingCall(nil), f.calls...)
}

func (f *taggingFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != taggingTarget || !strings.HasPrefix(r.Header.Get("Content-Type"), amzJSON11) {
		f.tb.Errorf("tagging fake: unexpected request %s %s target %q content type %q", r.Method, r.URL, r.Header.Get("X-Amz-Target"), r.Header.Get("Content-Type"))
		fail(w, http.StatusBadRequest, "UnknownOperationException", "not a JSON 1.1 GetResources call")
		return
	}
	akid, region, service, ok := credentialScope(r.Header.Get("Authorization"))
	if !ok || service != "tagging" {
		fail(w, http.StatusForbidden, "MissingAuthenticationTokenException", "request not signed for tagging")
		return
	}
	var in struct {
		ResourceTypeFilters []string
		ResourcesPerPage    int
		PaginationToken     string
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &in); err != nil {
		fail(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
		return
	}
	assert.ElementsMatch(f.tb, taggingFilters, in.ResourceTypeFilters)
	assert.Equal(f.tb, 100, in.ResourcesPerPage)

	account, err := f.account(akid, r.Header.Get("X-Amz-Security-Token"))
	if err != nil {
		fail(w, http.StatusForbidden, "AccessDeniedException", err.Error())
		return
	}
	page := 0
	if in.PaginationToken != "" {
		if _, err := fmt.Sscanf(in.PaginationToken, pageTokenStart+"%d", &page); err != nil {
			fail(w, http.StatusBadRequest, "InvalidParameterException", "bad PaginationToken")
			return
		}
	}
	k := invKey{account, region}
	f.mu.Lock()
	call := taggingCall{akid: akid, account: account, region: region, page: page}
	if f.throttle[k] > 0 {
		f.throttle[k]--
		call.throttled = true
	}
	f.calls = append(f.calls, call)
	pages := f.pages[k]
	f.mu.Unlock()
	switch {
	case call.throttled:
		fail(w, http.StatusBadRequest, "ThrottledException", "Rate exceeded")
		return
	case pages == nil:
		fail(w, http.StatusForbidden, "AccessDeniedException", "User: "+akid+" is not authorized to perform: tag:GetResources")
		return
	}
	out := map[string]any{"ResourceTagMappingList": json.RawMessage(`[]`)}
	if page < len(pages) {
		var p map[string]json.RawMessage
		require.NoError(f.tb, json.Unmarshal(pages[page], &p))
		out["ResourceTagMappingList"] = p["ResourceTagMappingList"]
	}
	if page+1 < len(pages) {
		out["PaginationToken"] = fmt.Sprintf("%s%d", pageTokenStart, page+1)
	}
	w.Header().Set("Content-Type", amzJSON11)
	_ = json.NewEncoder(w).Encode(out)
}

// account asks moto which account an access key belongs to; the pipeline's
// own key ("testing") is not an assumed role's and is refused.
func (f *taggingFake) account(akid, token string) (string, error) {
	f.mu.Lock()
	acct, ok := f.accounts[akid]
	f.mu.Unlock()
	if ok {
		return acct, nil
	}
	if token == "" {
		return "", fmt.Errorf("%s is not an assumed role's key", akid)
	}
	acct, err := f.motoSTS(akid, token)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	f.accounts[akid] = acct
	f.mu.Unlock()
	return acct, nil
}

// credentialScope reads "Credential=AKID/date/region/service/aws4_request"
// from a SigV4 Authorization header.
func credentialScope(auth string) (akid, region, service string, ok bool) {
	_, rest, found := strings.Cut(auth, "Credential=")
	if !found {
		return "", "", "", false
	}
	scope, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(scope, "/")
	if len(parts) != 5 {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[3], true
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", amzJSON11)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "Message": msg})
}

func TestGetResourcesRecordedFake(t *testing.T) {
	t.Parallel()
	m := startMoto(t)
	fake := newTaggingFake(t, m)
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	regions := []string{"us-east-1", "eu-west-1"}
	var all []seeded
	for _, a := range accounts {
		for _, r := range regions {
			s := seed(t, m, a, r, true) // no tags in moto: only the tagging API has them
			fake.record(s)
			all = append(all, s)
		}
	}
	fake.throttleNext("111111111111", "us-east-1", 2)   // absorbed by the retries
	fake.throttleNext("222222222222", "eu-west-1", 100) // outlasts them

	tg, clock, tick, events := newTickedTagger(t, m, nil, WithEndpoint(ServiceTagging, fake.srv.URL))
	defer tg.Close()

	cfn := func(s seeded) []string {
		return []string{"aws_cloudformation_logical-id:petstoreapi", "aws_cloudformation_stack-name:petstore-" + s.region}
	}
	expect := func(s seeded, id, name, stage string, tags ...string) []string {
		out := []string{"apiid:" + id, "apiname:" + name, "stage:" + stage, "region:" + s.region, "aws_account:" + s.account}
		return append(out, tags...)
	}
	throttled := all[3] // 222222222222 eu-west-1
	for _, s := range all {
		if s == throttled {
			continue
		}
		t.Run(s.account+"/"+s.region, func(t *testing.T) {
			info, complete := motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.restID, Stage: "prod"})
			require.True(t, complete)
			assert.Equal(t, expect(s, s.restID, "petstore_"+s.region, "prod",
				append(cfn(s), "cost_center:1234", "env:production", "service:pets", "team:payments")...), info.Tags)
			info, _ = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.restID, Stage: "dev"})
			assert.Equal(t, expect(s, s.restID, "petstore_"+s.region, "dev", append(cfn(s), "cost_center:1234", "team:payments")...), info.Tags)
			info, _ = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.httpID, Stage: "$default"})
			assert.Equal(t, expect(s, s.httpID, "orders", "_default", "env:prod", "service:orders-api", "team:orders"), info.Tags)
			info, _ = motoLookup(t, tg, StageKey{Account: s.account, Region: s.region, APIID: s.wsID, Stage: "live"})
			assert.Equal(t, expect(s, s.wsID, "chat", "live", "env:staging", "team:chat"), info.Tags)
		})
	}

	// Throttled through every retry: the stage is served from the API
	// Gateway listing (tagless in moto), and the read reports the failure.
	key := StageKey{Account: throttled.account, Region: throttled.region, APIID: throttled.restID, Stage: "prod"}
	info, complete := motoLookup(t, tg, key)
	assert.True(t, complete)
	assert.Equal(t, expect(throttled, throttled.restID, "petstore_"+throttled.region, "prod"), info.Tags)
	ev := nextEventOf(t, events, throttled.account, throttled.region)
	require.NoError(t, ev.Err)
	require.Len(t, ev.Degraded, 1)
	assert.True(t, IsRetryable(ev.Degraded[0]))
	assert.ErrorContains(t, ev.Degraded[0], "ThrottledException")

	// Once the tagging API recovers, the next refresh brings the tags.
	fake.throttleNext(throttled.account, throttled.region, 0)
	clock.Advance(DefaultTTL + time.Minute)
	tick <- clock.Now()
	ev = nextEventOf(t, events, throttled.account, throttled.region)
	require.NoError(t, ev.Err)
	assert.Empty(t, ev.Degraded)
	info, _ = tg.Peek(key)
	assert.Contains(t, info.Tags, "service:pets")

	// Every call was signed with the caller's account's own assumed-role
	// key, for the region it asked about, and paged through both pages.
	keyAccount := map[string]string{}
	pagesSeen := map[invKey]map[int]bool{}
	for _, c := range fake.log() {
		assert.NotEqual(t, "testing", c.akid)
		if prev, ok := keyAccount[c.akid]; ok {
			assert.Equal(t, prev, c.account)
		}
		keyAccount[c.akid] = c.account
		if !c.throttled {
			k := invKey{c.account, c.region}
			if pagesSeen[k] == nil {
				pagesSeen[k] = map[int]bool{}
			}
			pagesSeen[k][c.page] = true
		}
	}
	accountsSeen := map[string]bool{}
	for _, a := range keyAccount {
		accountsSeen[a] = true
	}
	assert.Len(t, accountsSeen, 3)
	for _, s := range all {
		assert.Equal(t, map[int]bool{0: true, 1: true}, pagesSeen[invKey{s.account, s.region}], "%s/%s", s.account, s.region)
	}
	assert.GreaterOrEqual(t, tg.Stats().Throttles, int64(2+DefaultMaxAttempts))
}

// nextEventOf waits for the next refresh of an account and region.
func nextEventOf(tb testing.TB, events <-chan RefreshEvent, account, region string) RefreshEvent {
	tb.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Account == account && (region == "" || ev.Region == region) {
				return ev
			}
		case <-timeout:
			tb.Fatalf("no refresh of %s %s within 20s", account, region)
		}
	}
}
