package awstags

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	ag2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
)

// taggingFilters are the resource types of API Gateway APIs and stages
// (docs/wire-formats.md#resource-groups-tagging-api-and-arns). The API types match their stages too (prefix semantics);
// ARNs are parsed, so duplicates are harmless.
var taggingFilters = []string{"apigateway:restapis/stages", "apigateway:apis/stages", "apigateway:restapis", "apigateway:apis"}

// inventory is the cache of one account in one region: every REST, HTTP
// and WebSocket API there with its stages, tags and access-log settings.
//
// Readers load state, an immutable snapshot, with one atomic read: the hot
// path takes no lock. Writers (the goroutines that read AWS) build a new
// snapshot and publish it under mu.
type inventory struct {
	key  invKey
	acct *account

	state   atomic.Pointer[invState] // nil until the first read is over
	first   *waiter                  // done when the first read is over
	loading atomic.Bool              // a full read is running
	// used is set by lookups and cleared by the sweep, which then records
	// lastUsed: the hot path reads a flag instead of the clock, and writes
	// it once per sweep at most.
	used     atomic.Bool
	lastUsed atomic.Int64 // unix ns, by Config.Now, as of the last sweep
	evicted  bool         // under Tagger.countMu

	mu      sync.Mutex
	checked map[string]time.Time // API id → until when a read of it alone stands
	flights map[string]*waiter   // reads of one API in flight
	formats map[string]string    // access-log destination → format last reported
}

func newInventory(k invKey, a *account, now time.Time) *inventory {
	inv := &inventory{key: k, acct: a, first: newWaiter(),
		checked: map[string]time.Time{}, flights: map[string]*waiter{}, formats: map[string]string{}}
	inv.lastUsed.Store(now.UnixNano())
	return inv
}

// touch records a use.
func (inv *inventory) touch() {
	if !inv.used.Load() {
		inv.used.Store(true)
	}
}

// invState is one immutable snapshot of an inventory.
type invState struct {
	fetchedAt time.Time // when the data was read
	refreshAt time.Time // when to read again
	loaded    bool      // the data below is valid (a read succeeded once)
	err       error     // why the last read failed: the data is stale
	apis      map[string]*apiEntry
	byDest    map[string]stageRef // access-log destination → stage
	tagging   *taggingData        // the tagging API's answer, kept for re-use
	stages    int
}

type stageRef struct{ apiID, stage string }

// apiEntry is an API and its stages, ready to serve.
type apiEntry struct {
	raw     *rawAPI
	awsTags []string // the API's own AWS tags, normalised
	info    Info     // the API-level answer (no stage)
	stages  map[string]*Info
	// cut: some stages were left out to stay within MaxStages; a stage
	// not found is then unknown rather than absent.
	cut bool
}

type findResult uint8

const (
	found findResult = iota
	unknownAPI
	unknownStage
	stagesUnknown // the API is known but its stages could not be read or kept
	unknownDestination
)

// find answers a key from the snapshot. Lookups by a key's strings do not
// allocate.
func (st *invState) find(key StageKey) (*Info, *apiEntry, findResult) {
	apiID, stage := key.APIID, key.Stage
	if apiID == "" {
		ref, ok := st.byDest[key.LogGroup]
		if !ok {
			if g, canary := strings.CutSuffix(key.LogGroup, canarySuffix); canary {
				ref, ok = st.byDest[g]
			}
			if !ok {
				return nil, nil, unknownDestination
			}
		}
		apiID, stage = ref.apiID, ref.stage
	}
	e := st.apis[apiID]
	if e == nil {
		return nil, nil, unknownAPI
	}
	if stage == "" {
		return &e.info, e, found
	}
	if s := e.stages[stage]; s != nil {
		return s, e, found
	}
	if !e.raw.stagesKnown || e.cut {
		return nil, e, stagesUnknown
	}
	return nil, e, unknownStage
}

// Raw data as read from AWS, before merging and normalisation.
type rawAPI struct {
	id, name, kind string
	tags           map[string]string // from GetRestApis / GetApis
	stages         []rawStage
	stagesKnown    bool
	gone           bool // deleted between listing and reading its stages
}

type rawStage struct {
	name         string
	tags         map[string]string // from GetStages
	dest, format string            // access-log destination name and format
	canary       bool
}

// taggingData is the tagging API's view: tags by API and by stage.
type taggingData struct {
	apis   map[string]map[string]string
	stages map[stageRef]map[string]string
}

var emptyTagging = &taggingData{}

type rawInventory struct {
	apis     map[string]*rawAPI
	tagging  *taggingData
	degraded []error
}

// startLoad starts a full read of the inventory unless one is running.
func (t *Tagger) startLoad(inv *inventory) {
	if !inv.loading.CompareAndSwap(false, true) {
		return
	}
	if !t.spawn(func() { t.load(inv) }) {
		inv.loading.Store(false)
	}
}

// load reads the whole inventory and publishes it. On failure the previous
// data stays served (marked stale) and the read is retried after
// NegativeTTL.
func (t *Tagger) load(inv *inventory) {
	defer inv.first.finish()
	select {
	case t.loadSem <- struct{}{}:
	case <-t.ctx.Done():
		inv.loading.Store(false)
		return
	}
	t.stats.refreshes.Add(1)
	raw, err := t.fetchInventory(t.ctx, inv)
	<-t.loadSem
	if t.ctx.Err() != nil {
		inv.loading.Store(false)
		return // closing: nothing to publish
	}
	now := t.cfg.Now()
	if err != nil {
		t.stats.refreshErrors.Add(1)
	}
	inv.mu.Lock()
	prev := inv.state.Load()
	var next *invState
	if err == nil {
		next = t.buildState(inv, raw, now)
	} else {
		next = &invState{err: err, refreshAt: now.Add(t.jittered(t.cfg.NegativeTTL))}
		if prev != nil && prev.loaded {
			next.loaded, next.fetchedAt, next.apis, next.byDest, next.tagging, next.stages =
				true, prev.fetchedAt, prev.apis, prev.byDest, prev.tagging, prev.stages
		}
	}
	t.commit(inv, prev, next)
	var formats [][2]string
	if err == nil {
		formats = inv.formatChanges(next, "")
	}
	// Published: the next read may start, even before this one has
	// reported (a sweep racing the report must not be lost).
	inv.loading.Store(false)
	inv.mu.Unlock()

	ev := RefreshEvent{Account: inv.key.account, Region: inv.key.region, APIs: len(next.apis), Stages: next.stages, Err: err}
	if raw != nil {
		ev.Degraded = raw.degraded
	}
	// Formats first: the refresh event is the read's last word.
	t.reportFormats(formats)
	t.reportRefresh(ev, prev)
}

// startAPILoad starts reading one API after a miss, unless one is running
// or the API was read within NegativeTTL (then it returns nil).
func (t *Tagger) startAPILoad(inv *inventory, apiID string, now time.Time) *waiter {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if w := inv.flights[apiID]; w != nil {
		return w
	}
	if until, ok := inv.checked[apiID]; ok && now.Before(until) {
		return nil
	}
	id := strings.Clone(apiID)
	w := newWaiter()
	if !t.spawn(func() { t.loadAPI(inv, id, w) }) {
		return nil
	}
	inv.flights[id] = w
	return w
}

func (t *Tagger) loadAPI(inv *inventory, apiID string, w *waiter) {
	defer w.finish()
	t.stats.refreshes.Add(1)
	api, err := t.fetchAPI(t.ctx, inv, apiID)
	if t.ctx.Err() != nil {
		inv.mu.Lock()
		delete(inv.flights, apiID)
		inv.mu.Unlock()
		return
	}
	now := t.cfg.Now()
	inv.mu.Lock()
	delete(inv.flights, apiID)
	if len(inv.checked) >= maxChecked {
		for k, until := range inv.checked {
			if !now.Before(until) {
				delete(inv.checked, k)
			}
		}
		if len(inv.checked) >= maxChecked {
			clear(inv.checked)
		}
	}
	// Remembered whatever the outcome, so that a failing or missing API
	// costs at most one read per NegativeTTL.
	inv.checked[apiID] = now.Add(t.jittered(t.cfg.NegativeTTL))
	prev := inv.state.Load()
	var formats [][2]string
	if err == nil && prev != nil && prev.loaded {
		next := t.withAPI(inv, prev, apiID, api)
		t.commit(inv, prev, next)
		formats = inv.formatChanges(next, apiID)
	}
	cur := inv.state.Load()
	inv.mu.Unlock()
	if err != nil {
		t.stats.refreshErrors.Add(1)
	}
	ev := RefreshEvent{Account: inv.key.account, Region: inv.key.region, APIID: apiID, Err: err}
	if cur != nil {
		ev.APIs, ev.Stages = len(cur.apis), cur.stages
	}
	if err != nil {
		t.log.Warn("cannot read API", "account", inv.key.account, "region", inv.key.region, "api", apiID, "error", err)
	}
	t.reportFormats(formats)
	if t.opts.onRefresh != nil {
		t.opts.onRefresh(ev)
	}
}

// commit publishes next and keeps the stage count. Call with inv.mu held.
func (t *Tagger) commit(inv *inventory, prev, next *invState) {
	t.countMu.Lock()
	if !inv.evicted {
		old := 0
		if prev != nil {
			old = prev.stages
		}
		t.stageCount.Add(int64(next.stages - old))
	}
	// Stored under countMu so that an eviction sees the state it counted.
	inv.state.Store(next)
	t.countMu.Unlock()
}

// stageBudget is how many stages inv may hold without the total passing
// MaxStages.
func (t *Tagger) stageBudget(prev *invState) int {
	held := 0
	if prev != nil {
		held = prev.stages
	}
	return t.cfg.MaxStages - int(t.stageCount.Load()) + held
}

func (t *Tagger) reportRefresh(ev RefreshEvent, prev *invState) {
	l := t.log.With("account", ev.Account, "region", ev.Region)
	switch {
	case ev.Err != nil && prev != nil && prev.loaded:
		l.Warn("cannot refresh API Gateway tags; serving the previous ones", "error", ev.Err, "retryable", IsRetryable(ev.Err))
	case ev.Err != nil:
		l.Warn("cannot read API Gateway tags; records get partial tags", "error", ev.Err, "retryable", IsRetryable(ev.Err))
	case len(ev.Degraded) > 0:
		l.Warn("API Gateway tags read in part", "apis", ev.APIs, "stages", ev.Stages, "error", errors.Join(ev.Degraded...))
	case prev != nil && prev.err != nil:
		l.Info("API Gateway tags readable again", "apis", ev.APIs, "stages", ev.Stages)
	default:
		l.Debug("API Gateway tags read", "apis", ev.APIs, "stages", ev.Stages)
	}
	if t.opts.onRefresh != nil {
		t.opts.onRefresh(ev)
	}
}

func (t *Tagger) reportFormats(changes [][2]string) {
	if t.cfg.OnFormat == nil {
		return
	}
	for _, c := range changes {
		t.cfg.OnFormat(c[0], c[1])
	}
}

// formatChanges returns the access-log formats that changed with next (all
// of them, or those of one API), and remembers them. Call with inv.mu held.
func (inv *inventory) formatChanges(next *invState, onlyAPI string) [][2]string {
	now := map[string]string{}
	for _, id := range sortedKeys(next.apis) {
		if onlyAPI != "" && id != onlyAPI {
			continue
		}
		e := next.apis[id]
		for _, s := range e.raw.stages {
			if s.dest == "" || s.format == "" {
				continue
			}
			now[s.dest] = s.format
			if s.canary {
				now[s.dest+canarySuffix] = s.format
			}
		}
	}
	var changes [][2]string
	for _, dest := range sortedKeys(now) {
		if inv.formats[dest] != now[dest] {
			changes = append(changes, [2]string{dest, now[dest]})
			inv.formats[dest] = now[dest]
		}
	}
	if onlyAPI == "" { // a full read also sees logging turned off
		for _, dest := range sortedKeys(inv.formats) {
			if _, ok := now[dest]; !ok {
				changes = append(changes, [2]string{dest, ""})
				delete(inv.formats, dest)
			}
		}
	}
	return changes
}

// buildState turns a full read into a snapshot.
func (t *Tagger) buildState(inv *inventory, raw *rawInventory, now time.Time) *invState {
	t.countMu.Lock()
	budget := t.stageBudget(inv.state.Load())
	t.countMu.Unlock()
	st := &invState{
		fetchedAt: now,
		refreshAt: now.Add(t.jittered(t.cfg.TTL)),
		loaded:    true,
		apis:      make(map[string]*apiEntry, len(raw.apis)),
		byDest:    map[string]stageRef{},
		tagging:   raw.tagging,
	}
	for _, id := range sortedKeys(raw.apis) {
		e := t.buildAPI(inv.key, raw.apis[id], raw.tagging, &budget)
		st.apis[id] = e
		st.stages += len(e.stages)
		addDests(st.byDest, e)
	}
	return st
}

// withAPI returns a copy of prev with one API replaced (nil: removed).
func (t *Tagger) withAPI(inv *inventory, prev *invState, apiID string, api *rawAPI) *invState {
	next := *prev
	next.err = nil
	next.apis = maps.Clone(prev.apis)
	next.byDest = make(map[string]stageRef, len(prev.byDest))
	for d, ref := range prev.byDest {
		if ref.apiID != apiID {
			next.byDest[d] = ref
		}
	}
	if old := prev.apis[apiID]; old != nil {
		next.stages -= len(old.stages)
		delete(next.apis, apiID)
	}
	if api != nil {
		t.countMu.Lock()
		budget := t.stageBudget(prev) - next.stages
		t.countMu.Unlock()
		tg := prev.tagging
		if tg == nil {
			tg = emptyTagging
		}
		e := t.buildAPI(inv.key, api, tg, &budget)
		next.apis[apiID] = e
		next.stages += len(e.stages)
		addDests(next.byDest, e)
	}
	return &next
}

func addDests(byDest map[string]stageRef, e *apiEntry) {
	for _, s := range e.raw.stages {
		if s.dest == "" {
			continue
		}
		if _, cached := e.stages[s.name]; cached {
			byDest[s.dest] = stageRef{e.raw.id, s.name}
		}
	}
}

// buildAPI computes an API's answers once, so that every record of a stage
// shares one tag slice. The stage's tags win over the API's; each level's
// tagging-API view wins over its listing (they agree on AWS, but the tagging
// API is the documented source).
func (t *Tagger) buildAPI(k invKey, api *rawAPI, tg *taggingData, budget *int) *apiEntry {
	apiTags := mergeTags(api.tags, tg.apis[api.id])
	e := &apiEntry{raw: api, stages: make(map[string]*Info, len(api.stages))}
	var service, env string
	e.awsTags, service, env = normalizeAll(apiTags)
	e.info = Info{Account: k.account, Region: k.region, APIID: api.id, APIName: api.name, Kind: api.kind,
		Tags:    buildTags(k.account, k.region, api.id, api.name, "", e.awsTags, false),
		Service: service, Env: env}
	for _, s := range api.stages {
		if *budget <= 0 {
			t.stats.cut.Add(1)
			e.cut = true
			continue
		}
		*budget--
		merged := mergeTags(apiTags, s.tags, tg.stages[stageRef{api.id, s.name}])
		awsTags, service, env := normalizeAll(merged)
		e.stages[s.name] = &Info{
			Account: k.account, Region: k.region, APIID: api.id, Stage: s.name, APIName: api.name, Kind: api.kind,
			Tags:    buildTags(k.account, k.region, api.id, api.name, s.name, awsTags, false),
			Service: service, Env: env,
			AccessLogDestination: s.dest, AccessLogFormat: s.format,
		}
	}
	return e
}

func mergeTags(layers ...map[string]string) map[string]string {
	n := 0
	for _, l := range layers {
		n += len(l)
	}
	m := make(map[string]string, n)
	for _, l := range layers {
		maps.Copy(m, l)
	}
	return m
}

// normalizeAll normalises AWS tags, sorted, and picks service and env.
// When two AWS keys normalise to "service" (say "Service" and "service"),
// the exact lower-case one wins.
func normalizeAll(tags map[string]string) (out []string, service, env string) {
	keys := sortedKeys(tags)
	out = make([]string, 0, len(keys))
	var serviceExact, envExact bool
	for _, k := range keys {
		tag := NormalizeTag(k, tags[k])
		if tag == "" {
			continue
		}
		out = append(out, tag)
		switch nk := NormalizeKey(k); nk {
		case "service", "env":
			v := NormalizeValue(tags[k])
			exact := k == nk
			if nk == "service" && (service == "" || exact && !serviceExact) {
				service, serviceExact = v, exact
			}
			if nk == "env" && (env == "" || exact && !envExact) {
				env, envExact = v, exact
			}
		}
	}
	slices.Sort(out)
	return out, service, env
}

func sortedKeys[M ~map[K]V, K ~string, V any](m M) []K {
	return slices.Sorted(maps.Keys(m))
}

// fetchInventory reads an account and region: every REST API and every
// HTTP/WebSocket API (their listings carry name and tags), the stages of
// each (tags and access-log settings), and the tagging API's view of all
// of them. A failure to list fails the read; a failure on one API's stages
// or on the tagging API degrades it (the previous data of that part is
// kept) without failing it.
func (t *Tagger) fetchInventory(ctx context.Context, inv *inventory) (*rawInventory, error) {
	a, region := inv.acct, inv.key.region
	if err := t.checkAccount(ctx, a, region); err != nil {
		return nil, err
	}
	c := a.clientsFor(t, region)
	raw := &rawInventory{apis: map[string]*rawAPI{}}
	if err := t.listREST(ctx, inv, c, raw); err != nil {
		return nil, err
	}
	if err := t.listV2(ctx, inv, c, raw); err != nil {
		return nil, err
	}
	prev := inv.state.Load()
	if prev != nil && !prev.loaded {
		prev = nil
	}
	t.readAllStages(ctx, inv, c, raw, prev)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tg, err := t.readTagging(ctx, inv, c)
	if err != nil {
		raw.degraded = append(raw.degraded, err)
		tg = emptyTagging
		if prev != nil && prev.tagging != nil {
			tg = prev.tagging // stale beats missing
		}
	}
	raw.tagging = tg
	return raw, nil
}

func (t *Tagger) listREST(ctx context.Context, inv *inventory, c Clients, raw *rawInventory) error {
	var pos *string
	for range maxPages {
		var out *apigateway.GetRestApisOutput
		err := t.call(ctx, inv.acct, inv.key.region, opGetRestApis, true, func(ctx context.Context) (err error) {
			out, err = c.APIGateway.GetRestApis(ctx, &apigateway.GetRestApisInput{Limit: aws.Int32(500), Position: pos})
			return err
		})
		if err != nil {
			return err
		}
		for _, api := range out.Items {
			if id := aws.ToString(api.Id); id != "" {
				raw.apis[id] = &rawAPI{id: id, name: aws.ToString(api.Name), kind: APIREST, tags: api.Tags}
			}
		}
		next := aws.ToString(out.Position)
		if next == "" || next == aws.ToString(pos) {
			return nil
		}
		pos = &next
	}
	return nil
}

func (t *Tagger) listV2(ctx context.Context, inv *inventory, c Clients, raw *rawInventory) error {
	var token *string
	for range maxPages {
		var out *apigatewayv2.GetApisOutput
		err := t.call(ctx, inv.acct, inv.key.region, opGetApis, true, func(ctx context.Context) (err error) {
			out, err = c.APIGatewayV2.GetApis(ctx, &apigatewayv2.GetApisInput{NextToken: token})
			return err
		})
		if err != nil {
			return err
		}
		for _, api := range out.Items {
			if id := aws.ToString(api.ApiId); id != "" {
				raw.apis[id] = &rawAPI{id: id, name: aws.ToString(api.Name), kind: v2Kind(api.ProtocolType), tags: api.Tags}
			}
		}
		next := aws.ToString(out.NextToken)
		if next == "" || next == aws.ToString(token) {
			return nil
		}
		token = &next
	}
	return nil
}

func v2Kind(p ag2types.ProtocolType) string {
	if p == ag2types.ProtocolTypeWebsocket {
		return APIWebSocket
	}
	return APIHTTP
}

// readAllStages reads the stages of every API with a few workers; the
// account's rate limit paces them.
func (t *Tagger) readAllStages(ctx context.Context, inv *inventory, c Clients, raw *rawInventory, prev *invState) {
	ids := sortedKeys(raw.apis)
	jobs := make(chan *rawAPI)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range min(stageWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for api := range jobs {
				stages, err := t.getStages(ctx, inv, c, api.kind, api.id)
				switch {
				case err == nil:
					api.stages, api.stagesKnown = stages, true
				case isNotFound(err):
					api.gone = true
				default:
					if p := prev.apiRaw(api.id); p != nil && p.stagesKnown {
						api.stages, api.stagesKnown = p.stages, true
					}
					mu.Lock()
					raw.degraded = append(raw.degraded, err)
					mu.Unlock()
				}
			}
		}()
	}
send:
	for _, id := range ids {
		select {
		case jobs <- raw.apis[id]:
		case <-ctx.Done():
			break send
		}
	}
	close(jobs)
	wg.Wait()
	for id, api := range raw.apis {
		if api.gone {
			delete(raw.apis, id)
		}
	}
}

func (st *invState) apiRaw(id string) *rawAPI {
	if st == nil {
		return nil
	}
	if e := st.apis[id]; e != nil {
		return e.raw
	}
	return nil
}

func (t *Tagger) getStages(ctx context.Context, inv *inventory, c Clients, kind, apiID string) ([]rawStage, error) {
	if kind == APIREST {
		var out *apigateway.GetStagesOutput
		err := t.call(ctx, inv.acct, inv.key.region, opGetStages, true, func(ctx context.Context) (err error) {
			out, err = c.APIGateway.GetStages(ctx, &apigateway.GetStagesInput{RestApiId: aws.String(apiID)})
			return err
		})
		if err != nil {
			return nil, err
		}
		stages := make([]rawStage, 0, len(out.Item))
		for _, s := range out.Item {
			if name := aws.ToString(s.StageName); name != "" {
				stages = append(stages, restStage(name, &s))
			}
		}
		return stages, nil
	}
	var stages []rawStage
	var token *string
	for range maxPages {
		var out *apigatewayv2.GetStagesOutput
		err := t.call(ctx, inv.acct, inv.key.region, opGetStagesV2, true, func(ctx context.Context) (err error) {
			out, err = c.APIGatewayV2.GetStages(ctx, &apigatewayv2.GetStagesInput{ApiId: aws.String(apiID), NextToken: token})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, s := range out.Items {
			name := aws.ToString(s.StageName)
			if name == "" {
				continue
			}
			rs := rawStage{name: name, tags: s.Tags}
			if s.AccessLogSettings != nil {
				rs.dest, _ = DestinationName(aws.ToString(s.AccessLogSettings.DestinationArn))
				rs.format = aws.ToString(s.AccessLogSettings.Format)
			}
			stages = append(stages, rs)
		}
		next := aws.ToString(out.NextToken)
		if next == "" || next == aws.ToString(token) {
			break
		}
		token = &next
	}
	return stages, nil
}

func restStage(name string, s *agtypes.Stage) rawStage {
	rs := rawStage{name: name, tags: s.Tags, canary: s.CanarySettings != nil}
	if s.AccessLogSettings != nil {
		rs.dest, _ = DestinationName(aws.ToString(s.AccessLogSettings.DestinationArn))
		rs.format = aws.ToString(s.AccessLogSettings.Format)
	}
	return rs
}

// readTagging pages through tag:GetResources for the API Gateway types.
func (t *Tagger) readTagging(ctx context.Context, inv *inventory, c Clients) (*taggingData, error) {
	tg := &taggingData{apis: map[string]map[string]string{}, stages: map[stageRef]map[string]string{}}
	var token *string
	for range maxPages {
		var out *resourcegroupstaggingapi.GetResourcesOutput
		err := t.call(ctx, inv.acct, inv.key.region, opGetResources, true, func(ctx context.Context) (err error) {
			out, err = c.Tagging.GetResources(ctx, &resourcegroupstaggingapi.GetResourcesInput{
				ResourceTypeFilters: taggingFilters,
				ResourcesPerPage:    aws.Int32(100),
				PaginationToken:     token,
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, m := range out.ResourceTagMappingList {
			r, ok := parseAPIGatewayARN(aws.ToString(m.ResourceARN))
			if !ok || r.region != inv.key.region {
				continue
			}
			tags := make(map[string]string, len(m.Tags))
			for _, tag := range m.Tags {
				tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			if r.stage == "" {
				tg.apis[r.apiID] = tags
			} else {
				tg.stages[stageRef{r.apiID, r.stage}] = tags
			}
		}
		next := aws.ToString(out.PaginationToken)
		if next == "" || next == aws.ToString(token) {
			break
		}
		token = &next
	}
	return tg, nil
}

// fetchAPI reads one API and its stages after a miss: GetRestApi, or
// GetApi when it is not a REST API, then its stages. It returns nil, nil
// when the API does not exist.
func (t *Tagger) fetchAPI(ctx context.Context, inv *inventory, apiID string) (*rawAPI, error) {
	a, region := inv.acct, inv.key.region
	if err := t.checkAccount(ctx, a, region); err != nil {
		return nil, err
	}
	c := a.clientsFor(t, region)
	var api *rawAPI
	if p := inv.state.Load().apiRaw(apiID); p != nil {
		cp := *p
		api = &cp
	} else {
		var out *apigateway.GetRestApiOutput
		err := t.call(ctx, a, region, opGetRestApi, true, func(ctx context.Context) (err error) {
			out, err = c.APIGateway.GetRestApi(ctx, &apigateway.GetRestApiInput{RestApiId: aws.String(apiID)})
			return err
		})
		switch {
		case err == nil:
			api = &rawAPI{id: apiID, name: aws.ToString(out.Name), kind: APIREST, tags: out.Tags}
		case isNotFound(err):
			var out2 *apigatewayv2.GetApiOutput
			err = t.call(ctx, a, region, opGetApi, true, func(ctx context.Context) (err error) {
				out2, err = c.APIGatewayV2.GetApi(ctx, &apigatewayv2.GetApiInput{ApiId: aws.String(apiID)})
				return err
			})
			if isNotFound(err) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			api = &rawAPI{id: apiID, name: aws.ToString(out2.Name), kind: v2Kind(out2.ProtocolType), tags: out2.Tags}
		default:
			return nil, err
		}
	}
	stages, err := t.getStages(ctx, inv, c, api.kind, apiID)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	api.stages, api.stagesKnown = stages, true
	return api, nil
}
