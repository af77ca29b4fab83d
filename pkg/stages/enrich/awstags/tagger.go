package awstags

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// API kinds, as Info.Kind reports them.
const (
	APIREST      = "rest"
	APIHTTP      = "http"
	APIWebSocket = "websocket"
)

// PartialTag marks a record delivered before its stage's tags were known.
const PartialTag = "gwpipe_tags:partial"

// Info is what a stage's records are tagged with.
type Info struct {
	Account string
	Region  string
	APIID   string
	Stage   string
	APIName string
	Kind    string // APIREST, APIHTTP or APIWebSocket; "" when unknown
	// Tags are ready to attach: apiid, apiname, stage, region, aws_account,
	// the API's and the stage's AWS tags (the stage's win), normalised. The
	// slice is shared by every record of the stage:
	// never modify it (its capacity equals its length, so append copies).
	Tags []string
	// Service and Env are the values of the stage's "service" and "env"
	// tags, when it has them.
	Service string
	Env     string
	// AccessLogDestination is the log group or Firehose delivery stream the
	// stage writes access logs to, and AccessLogFormat their format.
	AccessLogDestination string
	AccessLogFormat      string
	// Partial reports that the stage's tags were not known in time (or
	// could not be read); Tags then holds what is known and PartialTag.
	Partial bool
}

// Option customises a Tagger beyond Config, mostly for tests.
type Option func(*options)

type options struct {
	factory   ClientFactory
	sts       STSClient
	endpoints map[Service]string
	tick      <-chan time.Time
	onRefresh func(RefreshEvent)
}

// WithClientFactory replaces the SDK clients, for instance with fakes.
func WithClientFactory(f ClientFactory) Option { return func(o *options) { o.factory = f } }

// WithSTSClient replaces the STS client that assumes the roles.
func WithSTSClient(c STSClient) Option { return func(o *options) { o.sts = c } }

// WithEndpoint sends a service's calls to url instead of the endpoint the
// aws.Config resolves (AWS_ENDPOINT_URL and friends are honoured already).
func WithEndpoint(s Service, url string) Option {
	return func(o *options) {
		if o.endpoints == nil {
			o.endpoints = map[Service]string{}
		}
		o.endpoints[s] = url
	}
}

// WithTicker drives the background refresh and eviction sweep from ch
// instead of a wall-clock ticker; tests send on it to run a sweep.
func WithTicker(ch <-chan time.Time) Option { return func(o *options) { o.tick = ch } }

// WithOnRefresh is called after every read of an inventory (or of one API)
// from AWS, successful or not, from the goroutine that read it.
func WithOnRefresh(f func(RefreshEvent)) Option { return func(o *options) { o.onRefresh = f } }

// RefreshEvent describes one read from AWS.
type RefreshEvent struct {
	Account, Region string
	APIID           string // set for the read of a single API after a miss
	APIs, Stages    int    // what the inventory holds afterwards
	// Err is why the read failed; the previous data (if any) stays served.
	Err error
	// Degraded lists failures that did not fail the read: the tagging API,
	// or the stages of some APIs (whose previous data was kept).
	Degraded []error
}

// Stats are the Tagger's counters since New.
type Stats struct {
	// Calls counts AWS call attempts by "service:Operation".
	Calls map[string]int64
	// Hits are lookups answered from fresh data, Stale from data kept
	// while AWS errors last, Negative from a remembered "no such stage".
	Hits, Stale, Negative int64
	// Misses are lookups that had to fetch; Partial are answers flagged
	// partial (not fetched in time, or the account could not be read).
	Misses, Partial int64
	// Unnamed are lookups for records naming no stage (base tags only).
	Unnamed int64
	// Waits counts Lookups that waited, WaitTimeouts those that gave up.
	Waits, WaitTimeouts int64
	// Throttles counts throttled AWS calls, Errors failed ones (after
	// retries; "not found" is an answer, not an error).
	Throttles, Errors int64
	// Refreshes counts inventory reads, RefreshErrors those that failed.
	Refreshes, RefreshErrors int64
	// Inventories (account × region) and Stages cached now.
	Inventories, Stages int64
	// Evicted inventories, unused for 4 TTLs; Rejected lookups the bounds
	// refused (too many inventories, or an implausible account or region);
	// Truncated stages not cached because MaxStages was reached.
	Evicted, Rejected, Truncated int64
}

type counters struct {
	calls                                            [numOps]atomic.Int64
	hits, stale, negative, misses, partial, unnamed  atomic.Int64
	waits, waitTimeouts, throttles, errors           atomic.Int64
	refreshes, refreshErrors, evicted, rejected, cut atomic.Int64
}

// Bounds that are not worth configuring: they only keep bad input (random
// account ids, API ids) from growing memory without end.
const (
	maxInventories = 10_000
	maxBase        = 10_000
	maxChecked     = 10_000
	maxPages       = 10_000
	stageWorkers   = 4  // concurrent GetStages calls of one inventory read
	maxLoads       = 16 // concurrent inventory reads over all accounts
)

// Tagger finds, caches and serves the tags of API Gateway stages in any
// number of accounts and regions. Its methods are safe for concurrent use.
type Tagger struct {
	cfg        Config
	log        *slog.Logger
	awsCfg     aws.Config
	opts       options
	factory    ClientFactory
	sts        STSClient
	httpClient aws.HTTPClient
	evictAfter time.Duration

	ctx    context.Context // cancelled by Close; every fetch runs under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Tagger starts

	mu       sync.Mutex // closed, accounts, and writes of invs and base
	closed   bool
	accounts map[string]*account
	invs     atomic.Pointer[map[invKey]*inventory]
	ids      *identities // answers without AWS data

	res   atomic.Pointer[resolver] // SetMappings replaces it
	roles atomic.Pointer[Config]   // the role settings in use (SetRoles)

	countMu    sync.Mutex // stage budget: held across build and commit
	stageCount atomic.Int64

	selfMu sync.Mutex
	self   string

	loadSem   chan struct{}
	stats     counters
	uncounted counters // sink for the counts of repeated peeks
}

// New returns a Tagger reading AWS with awsCfg's credentials (directly, or
// to assume the configured roles). It starts the background sweep that
// refreshes inventories before they expire and evicts unused ones; Close
// stops it. No AWS call is made until a stage is looked up.
func New(ctx context.Context, cfg Config, awsCfg aws.Config, opts ...Option) (*Tagger, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("awstags: invalid configuration: %w", err)
	}
	cfg.Mappings = append([]Mapping(nil), cfg.Mappings...)
	t := &Tagger{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "awstags"),
		awsCfg:     awsCfg,
		accounts:   map[string]*account{},
		loadSem:    make(chan struct{}, maxLoads),
		evictAfter: 4 * cfg.TTL,
	}
	for _, o := range opts {
		o(&t.opts)
	}
	switch {
	case cfg.HTTPClient != nil:
		t.httpClient = cfg.HTTPClient
	case awsCfg.HTTPClient != nil:
		t.httpClient = awsCfg.HTTPClient
	default:
		t.httpClient = awshttp.NewBuildableClient().WithTimeout(cfg.CallTimeout)
	}
	t.factory = t.opts.factory
	if t.factory == nil {
		t.factory = t.defaultClients
	}
	t.sts = t.opts.sts
	if t.sts == nil {
		t.sts = t.defaultSTS()
	}
	t.res.Store(newResolver(cfg))
	t.roles.Store(roleSettings(cfg))
	t.ids = newIdentities()
	emptyInv := map[invKey]*inventory{}
	t.invs.Store(&emptyInv)
	// The Tagger outlives the call to New: its fetches stop on Close, not
	// when the caller's context ends.
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))

	tick := t.opts.tick
	if tick == nil {
		every := min(cfg.TTL, cfg.NegativeTTL) / 10
		every = max(time.Second, min(every, 30*time.Second))
		tk := time.NewTicker(every)
		tick = tk.C
		t.wg.Add(1)
		go func() { defer t.wg.Done(); <-t.ctx.Done(); tk.Stop() }()
	}
	t.wg.Add(1)
	go t.sweepLoop(tick)
	return t, nil
}

// Close stops the background work, cancels the reads in flight and waits
// for every goroutine the Tagger started. Lookups keep answering from the
// cache afterwards but fetch nothing.
func (t *Tagger) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}

// spawn runs fn in a goroutine Close waits for, unless the Tagger is closed.
func (t *Tagger) spawn(fn func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn()
	}()
	return true
}

// Stats returns a snapshot of the counters.
func (t *Tagger) Stats() Stats {
	s := Stats{Calls: make(map[string]int64, numOps)}
	for i := range t.stats.calls {
		if n := t.stats.calls[i].Load(); n > 0 {
			s.Calls[op(i).String()] = n
		}
	}
	c := &t.stats
	s.Hits, s.Stale, s.Negative = c.hits.Load(), c.stale.Load(), c.negative.Load()
	s.Misses, s.Partial, s.Unnamed = c.misses.Load(), c.partial.Load(), c.unnamed.Load()
	s.Waits, s.WaitTimeouts = c.waits.Load(), c.waitTimeouts.Load()
	s.Throttles, s.Errors = c.throttles.Load(), c.errors.Load()
	s.Refreshes, s.RefreshErrors = c.refreshes.Load(), c.refreshErrors.Load()
	s.Evicted, s.Rejected, s.Truncated = c.evicted.Load(), c.rejected.Load(), c.cut.Load()
	s.Inventories = int64(len(*t.invs.Load()))
	s.Stages = t.stageCount.Load()
	return s
}

// TotalCalls is the number of AWS call attempts in the snapshot.
func (s Stats) TotalCalls() int64 {
	var n int64
	for _, v := range s.Calls {
		n += v
	}
	return n
}

// waiter is what a lookup can wait on: done closes when the fetch that can
// answer it is over. A lookup whose wait ran out sets waited, so that later
// lookups of the same fetch do not wait again: a cold or unreachable account
// costs the pipeline one MaxWait, not one per batch.
type waiter struct {
	done   chan struct{}
	once   sync.Once
	waited atomic.Bool
}

func newWaiter() *waiter { return &waiter{done: make(chan struct{})} }

func (w *waiter) finish() { w.once.Do(func() { close(w.done) }) }

// pending returns w if a lookup should still wait for it. A finished
// fetch is still returned: the answer built before it finished is stale,
// and waiting on it returns at once to look again.
func (w *waiter) pending() *waiter {
	if w == nil || w.waited.Load() {
		return nil
	}
	return w
}

// Peek answers from the cache without blocking and without allocating when
// the stage is cached. When the stage is not cached it starts fetching it
// and returns what is known, flagged partial, with settled false: a Lookup
// may then wait for the fetch. settled is true for every final answer,
// including partial ones no wait can improve (an unreadable account, a
// fetch some earlier lookup already waited for in vain).
func (t *Tagger) Peek(key StageKey) (info Info, settled bool) {
	p, w := t.peek(key, true)
	if w == nil && p.Partial {
		t.stats.partial.Add(1)
	}
	return *p, w == nil
}

// Lookup returns the stage's Info, fetching it if needed and waiting for it
// until ctx is done or MaxWait has passed, whichever comes first. complete
// is false when the answer is partial (see Info.Partial). A Lookup never
// fails: AWS errors show as partial answers and in Stats.
func (t *Tagger) Lookup(ctx context.Context, key StageKey) (info Info, complete bool) {
	p, w := t.peek(key, true)
	return t.wait(ctx, key, p, w)
}

// Wait is Lookup for a key Peek just reported unsettled: callers that Peek
// at every key of a batch first (starting all fetches at once) then Wait for
// the unsettled ones under one deadline. The lookup is not counted again.
func (t *Tagger) Wait(ctx context.Context, key StageKey) (info Info, complete bool) {
	p, w := t.peek(key, false)
	return t.wait(ctx, key, p, w)
}

func (t *Tagger) wait(ctx context.Context, key StageKey, info *Info, w *waiter) (Info, bool) {
	if w != nil {
		t.stats.waits.Add(1)
		deadline := time.Now().Add(t.cfg.MaxWait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		for w != nil {
			select {
			case <-w.done:
				// The fetch is over; a second one (a single API, after
				// the inventory) may follow. The same fetch again means
				// it published nothing (the Tagger is closing).
				prev := w
				info, w = t.peek(key, false)
				if w == prev {
					w = nil
				}
				continue
			case <-ctx.Done():
			case <-timer.C:
			}
			w.waited.Store(true)
			t.stats.waitTimeouts.Add(1)
			break
		}
	}
	if info.Partial {
		t.stats.partial.Add(1)
	}
	return *info, !info.Partial
}

// peek is Peek's work: the answer, and a fetch to wait for unless final.
// Cached answers are returned as pointers to the shared Info; the others
// are built for the caller.
func (t *Tagger) peek(key StageKey, count bool) (*Info, *waiter) {
	c := &t.stats
	if !count {
		c = &t.uncounted
	}
	if key.Account == "" || key.Region == "" || !key.Named() {
		// AWS cannot be asked without an account and a region; the tags
		// the record carries (its API and stage, when it names them) still
		// go on it.
		c.unnamed.Add(1)
		return t.ids.get(key), nil
	}
	inv := t.inventoryFor(key.Account, key.Region)
	if inv == nil {
		return t.identityInfo(key, nil, true), nil
	}
	inv.touch()
	st := inv.state.Load()
	if st == nil { // the first read of the account and region is running
		c.misses.Add(1)
		return t.identityInfo(key, nil, true), inv.first.pending()
	}
	if !st.loaded { // the account could not be read: serve what we know
		return t.identityInfo(key, nil, true), nil
	}
	// The hot path ends here for cached stages: no clock, no lock, no
	// allocation. Refreshes are the sweep's business.
	info, api, res := st.find(key)
	switch res {
	case found:
		if st.err != nil {
			c.stale.Add(1)
		} else {
			c.hits.Add(1)
		}
		return info, nil
	case unknownDestination:
		// A log group no stage writes to: only the account and region
		// are known, and that is all there is to know.
		c.negative.Add(1)
		return t.ids.get(StageKey{Account: key.Account, Region: key.Region}), nil
	case stagesUnknown:
		return t.identityInfo(key, api, true), nil
	}
	// unknownAPI or unknownStage: trust a recent read, else ask AWS about
	// this API alone, at most once per NegativeTTL.
	now := t.cfg.Now()
	if now.Sub(st.fetchedAt) < t.cfg.NegativeTTL {
		c.negative.Add(1)
		return t.identityInfo(key, api, false), nil
	}
	w := t.startAPILoad(inv, key.APIID, now)
	if w == nil {
		c.negative.Add(1)
		return t.identityInfo(key, api, false), nil
	}
	c.misses.Add(1)
	return t.identityInfo(key, api, true), w.pending()
}

// identityInfo is the answer for a stage whose AWS tags are not (or not
// yet) known: its identity, the API's tags if the API is known, and
// PartialTag when partial. It copies key's strings, which may
// alias a record.
func (t *Tagger) identityInfo(key StageKey, api *apiEntry, partial bool) *Info {
	info := &Info{
		Account: strings.Clone(key.Account),
		Region:  strings.Clone(key.Region),
		APIID:   strings.Clone(key.APIID),
		Stage:   strings.Clone(key.Stage),
		Partial: partial,
	}
	var awsTags []string
	if api != nil {
		info.APIName, info.Kind = api.raw.name, api.raw.kind
		info.Service, info.Env = api.info.Service, api.info.Env
		awsTags = api.awsTags
	}
	info.Tags = buildTags(info.Account, info.Region, info.APIID, info.APIName, info.Stage, awsTags, partial)
	return info
}

// buildTags assembles a ready-to-attach tag list: identity first, then the
// AWS tags and PartialTag; exact duplicates dropped. (The configured static
// tags, enrich.tags, are the logs deliverer's: package ddlogs adds them.)
func buildTags(account, region, apiID, apiName, stage string, awsTags []string, partial bool) []string {
	tags := make([]string, 0, 6+len(awsTags))
	if apiID != "" {
		tags = append(tags, "apiid:"+NormalizeValue(apiID))
	}
	if v := NormalizeValue(apiName); v != "" {
		tags = append(tags, "apiname:"+v)
	}
	if v := NormalizeValue(stage); v != "" {
		tags = append(tags, "stage:"+v)
	}
	if v := NormalizeValue(region); v != "" {
		tags = append(tags, "region:"+v)
	}
	if v := NormalizeValue(account); v != "" {
		tags = append(tags, "aws_account:"+v)
	}
	tags = append(tags, awsTags...)
	if partial {
		tags = append(tags, PartialTag)
	}
	tags = dedupe(tags)
	return tags[:len(tags):len(tags)]
}

func dedupe(tags []string) []string {
	seen := make(map[string]struct{}, len(tags))
	out := tags[:0]
	for _, s := range tags {
		if _, dup := seen[s]; dup {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	return out
}

// invKey names an inventory: one account in one region.
type invKey struct{ account, region string }

// inventoryFor returns the inventory of an account and region, creating it
// (and starting its first read) on first use. It returns nil for an
// implausible account or region, or when the bounds are reached.
func (t *Tagger) inventoryFor(account, region string) *inventory {
	if inv := (*t.invs.Load())[invKey{account, region}]; inv != nil {
		return inv
	}
	if !ValidAccount(account) || !validRegion(region) {
		t.stats.rejected.Add(1)
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.invs.Load()
	if inv := cur[invKey{account, region}]; inv != nil {
		return inv
	}
	if t.closed || len(cur) >= maxInventories {
		t.stats.rejected.Add(1)
		return nil
	}
	k := invKey{strings.Clone(account), strings.Clone(region)}
	a := t.accounts[k.account]
	if a == nil {
		a = t.newAccount(k.account)
		t.accounts[k.account] = a
	}
	a.invs++
	inv := newInventory(k, a, t.cfg.Now())
	next := make(map[invKey]*inventory, len(cur)+1)
	maps.Copy(next, cur)
	next[k] = inv
	t.invs.Store(&next)
	// t.mu is held: start the read without spawn, which takes it too.
	inv.loading.Store(true)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.load(inv)
	}()
	return inv
}

// jittered spreads d by ±Jitter.
func (t *Tagger) jittered(d time.Duration) time.Duration {
	if t.cfg.Jitter <= 0 {
		return d
	}
	f := 1 + t.cfg.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// sweepLoop refreshes inventories that are due (records keep being served
// the current data meanwhile, so they never wait for a refresh), and evicts
// those unused for a while.
func (t *Tagger) sweepLoop(tick <-chan time.Time) {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick:
			t.sweep()
		}
	}
}

func (t *Tagger) sweep() {
	now := t.cfg.Now()
	var idle []*inventory
	for _, inv := range *t.invs.Load() {
		if inv.used.Swap(false) {
			inv.lastUsed.Store(now.UnixNano())
		}
		if now.Sub(time.Unix(0, inv.lastUsed.Load())) > t.evictAfter && !inv.loading.Load() {
			idle = append(idle, inv)
			continue
		}
		if st := inv.state.Load(); st != nil && !now.Before(st.refreshAt) {
			t.startLoad(inv)
		}
	}
	if len(idle) == 0 {
		return
	}
	t.mu.Lock()
	cur := *t.invs.Load()
	next := make(map[invKey]*inventory, len(cur))
	maps.Copy(next, cur)
	for _, inv := range idle {
		delete(next, inv.key)
		if inv.acct.invs--; inv.acct.invs == 0 {
			delete(t.accounts, inv.acct.id)
		}
		t.countMu.Lock()
		inv.evicted = true
		if st := inv.state.Load(); st != nil {
			t.stageCount.Add(-int64(st.stages))
		}
		t.countMu.Unlock()
		t.stats.evicted.Add(1)
		t.log.Debug("inventory evicted: unused", "account", inv.key.account, "region", inv.key.region)
	}
	t.invs.Store(&next)
	t.mu.Unlock()
}

// ResolveNormalized finds the stage that a CloudWatch metric names, whose
// dimensions come as normalised tag values (lower case, "$default" as
// "_default") and name REST APIs by ApiName only: it returns the key with
// the API id and the stage's real name. It waits at most MaxWait (and ctx)
// for the account's first read.
func (t *Tagger) ResolveNormalized(ctx context.Context, account, region, apiID, apiName, stage string) (StageKey, bool) {
	if account == "" || region == "" || (apiID == "" && apiName == "") {
		return StageKey{}, false
	}
	inv := t.inventoryFor(account, region)
	if inv == nil {
		return StageKey{}, false
	}
	inv.touch()
	st := inv.state.Load()
	if st == nil {
		if w := inv.first.pending(); w != nil {
			timer := time.NewTimer(t.cfg.MaxWait)
			defer timer.Stop()
			select {
			case <-w.done:
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if st = inv.state.Load(); st == nil {
			return StageKey{}, false
		}
	}
	for id, e := range st.apis {
		if apiID != "" && id != apiID && NormalizeValue(id) != apiID {
			continue
		}
		if apiID == "" && e.raw.name != apiName && NormalizeValue(e.raw.name) != apiName {
			continue
		}
		k := StageKey{Account: account, Region: region, APIID: id}
		if stage == "" {
			return k, true
		}
		for _, s := range e.raw.stages {
			if s.name == stage || NormalizeValue(s.name) == stage {
				k.Stage = s.name
				return k, true
			}
		}
		return k, false
	}
	return StageKey{}, false
}
