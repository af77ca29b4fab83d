package cwpoller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"golang.org/x/time/rate"

	"github.com/gwpipe/gwpipe/pkg/formats/metricstream"
	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
)

// cloudWatchAPI is the part of the CloudWatch client the poller calls.
type cloudWatchAPI interface {
	ListMetrics(ctx context.Context, in *cloudwatch.ListMetricsInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.ListMetricsOutput, error)
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// EmitFunc hands a poll's points on; the poller advances its state only
// when it returned nil. It may be called from several goroutines at once
// (one per target polled).
type EmitFunc func(ctx context.Context, points []record.Metric) error

// Poller polls CloudWatch's GetMetricData for accounts without metric
// streams.
type Poller struct {
	cfg     Config
	mapper  *metricstream.Mapper
	log     *slog.Logger
	targets []*target

	polls, calls, pages, listCalls, throttles, retries, points, failures, standby, queryFailures atomic.Int64
}

type target struct {
	Target
	api     cloudWatchAPI
	limiter *rate.Limiter
	lease   *lease.Lease // nil: polled by this process alone

	mu      sync.Mutex // one poll of the target at a time
	metrics []*metricRef
	listed  time.Time
	// leftOut is how many metrics the last listing found beyond
	// MaxMetrics (read by the telemetry while a poll lists).
	leftOut atomic.Int64
}

// metricRef is one listed metric and what is asked for it.
type metricRef struct {
	metric types.Metric
	key    Key
	dims   []metricstream.Dimension
	stats  []string
	// api and stage are its ApiName (or ApiId) and Stage dimensions, ""
	// without: the order in which MaxMetrics keeps dimension sets.
	api, stage string
}

// Stats are the Poller's counters since New.
type Stats struct {
	Polls     int64 // target polls
	Calls     int64 // GetMetricData calls (batches of queries)
	Pages     int64 // GetMetricData requests, pagination included
	ListCalls int64 // ListMetrics requests
	Throttles int64 // throttled requests
	Retries   int64 // requests retried
	Points    int64 // points emitted
	Failures  int64 // target polls that failed
	// Standby counts target polls left to another replica, which held the
	// target's lease.
	Standby int64
	// QueryFailures counts GetMetricData queries answered InternalError,
	// Forbidden or incomplete: their metrics were fetched again by the
	// next poll, the others of their call delivered.
	QueryFailures int64
	// LeftOut is how many metrics the targets' last listings found beyond
	// MaxMetrics, and are not polled (whole dimension sets).
	LeftOut int64
}

// New returns a Poller of cfg's targets, whose CloudWatch clients are made
// from awsCfg (region and credentials replaced per target).
func New(cfg Config, awsCfg aws.Config) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if url, _ := cfg.StateLocation(); cfg.State == nil && url != "" {
		if Shared(url) {
			return nil, fmt.Errorf("state_url: %s is a store the fleet shares: the assembler opens it (Config.State, Config.Leases)", url)
		}
		st, err := NewFileState(url)
		if err != nil {
			return nil, fmt.Errorf("state_url: %w", err)
		}
		cfg.State = st
	}
	if cfg.State == nil {
		cfg.State = NewMemoryState()
	}
	p := &Poller{cfg: cfg, mapper: cfg.Mapper, log: cfg.Logger.With("component", "cwpoller")}
	if p.mapper == nil {
		m, err := metricstream.NewMapper(metricstream.DefaultConfig())
		if err != nil {
			return nil, err
		}
		p.mapper = m
	}
	for _, t := range cfg.Accounts {
		var creds aws.CredentialsProvider
		if cfg.CredentialsFor != nil {
			creds = cfg.CredentialsFor(t.Account)
		}
		p.targets = append(p.targets, &target{
			Target:  t,
			api:     newClient(awsCfg, t, creds),
			limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.Burst),
		})
	}
	p.lease()
	return p, nil
}

// lease gives each target its lease, when the poller is one of a fleet.
func (p *Poller) lease() {
	if p.cfg.Leases == nil {
		return
	}
	for _, t := range p.targets {
		t.lease = p.cfg.Leases(t.Target)
	}
}

func newClient(awsCfg aws.Config, t Target, creds aws.CredentialsProvider) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(awsCfg, func(o *cloudwatch.Options) {
		o.Region = t.Region
		if creds != nil {
			if _, cached := creds.(*aws.CredentialsCache); !cached {
				creds = aws.NewCredentialsCache(creds)
			}
			o.Credentials = creds
		}
		// AWS JSON 1.0: CloudWatch serves it beside Smithy RPCv2 CBOR (the
		// SDK's default) and the query protocol, and so do emulators and
		// proxies that do not speak CBOR.
		o.Protocol = awsjson.New10(cwschemas.GraniteServiceVersion20100801)
		// Retries are the poller's own: paced per target, throttles counted.
		o.Retryer = aws.NopRetryer{}
	})
}

// Stats returns the Poller's counters.
func (p *Poller) Stats() Stats {
	return Stats{
		Polls: p.polls.Load(), Calls: p.calls.Load(), Pages: p.pages.Load(), ListCalls: p.listCalls.Load(),
		Throttles: p.throttles.Load(), Retries: p.retries.Load(), Points: p.points.Load(), Failures: p.failures.Load(),
		Standby: p.standby.Load(), QueryFailures: p.queryFailures.Load(), LeftOut: p.metricsLeftOut(),
	}
}

// Run polls at once, then every Interval (aligned to multiples of it),
// until stop is closed or ctx ends; it returns nil then. Closing stop lets
// a poll under way finish (its points acknowledged, the state advanced);
// ctx ending abandons it. A failed poll is logged and the next one tries
// its periods again. With leases (Config.Leases), Run contends for every
// target's lease meanwhile, and releases those it holds as it returns, so
// that another replica takes them over at once.
func (p *Poller) Run(ctx context.Context, stop <-chan struct{}, emit EmitFunc) error {
	keepCtx, stopKeeping := context.WithCancel(context.WithoutCancel(ctx))
	var keepers sync.WaitGroup
	defer func() {
		stopKeeping()
		keepers.Wait()
	}()
	for _, t := range p.targets {
		if t.lease == nil {
			continue
		}
		keepers.Go(func() {
			t.lease.Keep(keepCtx, func(held bool) {
				if held {
					p.log.Info("polling this target: its lease was taken", "target", t.Target.String(), "lease", t.lease.Key())
				} else {
					p.log.Info("no longer polling this target: its lease is held elsewhere", "target", t.Target.String())
				}
			})
		})
	}
	for {
		if err := p.PollOnce(ctx, p.cfg.Now(), emit); err != nil && ctx.Err() == nil {
			p.log.Error("cloudwatch poll failed; its periods are fetched again next time", "err", err)
		}
		now := p.cfg.Now()
		next := now.Truncate(p.cfg.Interval).Add(p.cfg.Interval)
		timer := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-stop:
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// PollOnce fetches, for every target, the periods that ended at least Lag
// before now and were not fetched yet, and emits their points. It returns
// the targets' errors joined; the other targets are polled regardless.
func (p *Poller) PollOnce(ctx context.Context, now time.Time, emit EmitFunc) error {
	sem := make(chan struct{}, p.cfg.Concurrency)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, t := range p.targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := p.pollTarget(ctx, t, now, emit); err != nil {
				p.failures.Add(1)
				mu.Lock()
				errs = append(errs, fmt.Errorf("cwpoller: %s: %w", t.Target, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// windowEnd returns the end of the last complete, settled period at now.
func (p *Poller) windowEnd(now time.Time) time.Time {
	period := int64(p.cfg.Period / time.Second)
	end := now.Add(-p.cfg.Lag).Unix()
	return time.Unix(end-end%period, 0)
}

func (p *Poller) pollTarget(ctx context.Context, t *target, now time.Time, emit EmitFunc) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lease != nil {
		hold, ok := t.lease.Held()
		if !ok {
			p.standby.Add(1)
			return nil // another replica polls it
		}
		// The poll stops with the hold: no replica polls a target that
		// another has taken over.
		var stop func() bool
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		stop = context.AfterFunc(hold, func() { cancel(fmt.Errorf("lease of %s lost", t.Target)) })
		defer func() { stop(); cancel(nil) }()
	}
	if sh, ok := p.cfg.State.(SharedState); ok {
		// Where the last holder of the target stopped.
		if err := sh.Refresh(ctx, t.Target); err != nil {
			return err
		}
	}
	p.polls.Add(1)
	if err := p.refreshList(ctx, t, now); err != nil {
		if t.listed.IsZero() {
			return fmt.Errorf("list metrics: %w", err)
		}
		p.log.Warn("listing metrics failed; polling the metrics listed before", "target", t.Target.String(), "err", err)
	}
	end := p.windowEnd(now)
	earliest := end.Add(-p.cfg.Backfill)
	// Metrics fetched up to the same time share calls: GetMetricData takes
	// one time range per call.
	byStart := map[time.Time][]*metricRef{}
	for _, m := range t.metrics {
		start := earliest
		if last, ok := p.cfg.State.Last(m.key); ok && last.After(start) {
			start = last
		}
		if start.Before(end) {
			byStart[start] = append(byStart[start], m)
		}
	}
	starts := make([]time.Time, 0, len(byStart))
	for s := range byStart {
		starts = append(starts, s)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	for _, start := range starts {
		if err := p.fetch(ctx, t, byStart[start], start, end, emit); err != nil {
			return err
		}
	}
	return nil
}

// refreshList lists the namespace's metrics when the list is older than
// ListInterval.
func (p *Poller) refreshList(ctx context.Context, t *target, now time.Time) error {
	if !t.listed.IsZero() && now.Sub(t.listed) < p.cfg.ListInterval {
		return nil
	}
	var metrics []types.Metric
	in := &cloudwatch.ListMetricsInput{
		Namespace: aws.String(p.cfg.Namespace),
		// Only metrics with data in the last three hours: the poller never
		// looks back further, and stale metrics would cost queries.
		RecentlyActive: types.RecentlyActivePt3h,
	}
	for {
		out, err := page(ctx, p, t, "ListMetrics", &p.listCalls, t.api.ListMetrics, in)
		if err != nil {
			return err
		}
		metrics = append(metrics, out.Metrics...)
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	refs := make([]*metricRef, 0, len(metrics))
	seen := make(map[Key]bool, len(metrics))
	for _, m := range metrics {
		r := p.newRef(t, m)
		if seen[r.key] {
			continue
		}
		seen[r.key] = true
		refs = append(refs, r)
	}
	refs, left := p.bound(refs)
	if left.metrics > 0 {
		// Once per listing (every ListInterval), not per poll: the list,
		// and so what is left out, holds until the next one.
		p.log.Warn("too many metrics: polling whole dimension sets (stages, APIs) up to max_metrics, in order of API, stage and dimensions; the rest are left out until a listing finds fewer",
			"target", t.Target.String(), "metrics", len(refs)+left.metrics, "max_metrics", p.cfg.MaxMetrics,
			"polled", len(refs), "left_out", left.metrics, "dimension_sets_left_out", left.sets, "first_left_out", left.first)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].key.String() < refs[j].key.String() })
	t.metrics, t.listed = refs, now
	t.leftOut.Store(int64(left.metrics))
	p.log.Debug("metrics listed", "target", t.Target.String(), "metrics", len(refs))
	return nil
}

// leftOut is what bound left out of a listing.
type leftOut struct {
	metrics, sets int
	first         string // the first dimension set left out
}

// bound keeps at most MaxMetrics of refs, as whole dimension sets: every
// metric of a stage (or API, or method) or none, so that a stage polled is
// polled entirely — Count with its Latency, hits with misses — and a stage
// left out is visibly absent rather than missing some metric kinds (cut in
// key order, which sorts by metric name, every stage past the cut lost its
// Latency). Sets are taken in order of API, stage, then the whole
// dimension string, so an API's sets (API-level, stage-level, per method)
// are together and the choice does not depend on ListMetrics' order. The
// sets after the first that does not fit are left out too: what is polled
// is a prefix of that order, so a new stage displaces only those after it.
func (p *Poller) bound(refs []*metricRef) ([]*metricRef, leftOut) {
	if len(refs) <= p.cfg.MaxMetrics {
		return refs, leftOut{}
	}
	slices.SortFunc(refs, func(a, b *metricRef) int {
		return cmp.Or(cmp.Compare(a.api, b.api), cmp.Compare(a.stage, b.stage),
			cmp.Compare(a.key.Dimensions, b.key.Dimensions), cmp.Compare(a.key.Metric, b.key.Metric))
	})
	var left leftOut
	kept := 0
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].key.Dimensions == refs[i].key.Dimensions {
			j++
		}
		if left.metrics == 0 && kept+(j-i) <= p.cfg.MaxMetrics {
			kept = j
		} else {
			if left.sets == 0 {
				left.first = refs[i].key.Dimensions
			}
			left.metrics += j - i
			left.sets++
		}
		i = j
	}
	return refs[:kept], left
}

func (p *Poller) newRef(t *target, m types.Metric) *metricRef {
	r := &metricRef{metric: m}
	names := make([]string, 0, len(m.Dimensions))
	for _, d := range m.Dimensions {
		r.dims = append(r.dims, metricstream.Dimension{Name: aws.ToString(d.Name), Value: aws.ToString(d.Value)})
		names = append(names, aws.ToString(d.Name)+"="+aws.ToString(d.Value))
		switch aws.ToString(d.Name) {
		case "ApiName", "ApiId":
			r.api = aws.ToString(d.Value)
		case "Stage":
			r.stage = aws.ToString(d.Value)
		}
	}
	sort.Strings(names)
	ns, name := aws.ToString(m.Namespace), aws.ToString(m.MetricName)
	r.key = Key{Account: t.Account, Region: t.Region, Namespace: ns, Metric: name, Dimensions: strings.Join(names, ",")}
	stats, latency := p.mapper.Statistics(ns, name)
	if latency && p.mapper.Config().Percentiles {
		// Percentiles only for a mapper that emits them: GetMetricData
		// bills every query, and the answers would be thrown away.
		stats = append(stats, p.cfg.Stats...)
	}
	r.stats = stats
	return r
}

// fetch polls metrics over [start, end) in calls that respect
// GetMetricData's limits, emitting and advancing the state after each.
func (p *Poller) fetch(ctx context.Context, t *target, metrics []*metricRef, start, end time.Time, emit EmitFunc) error {
	periods := int(end.Sub(start) / p.cfg.Period)
	maxQueries := min(p.cfg.MaxQueriesPerRequest, p.cfg.MaxDatapointsPerRequest/max(periods, 1))
	for len(metrics) > 0 {
		// A metric's queries never straddle two calls: its statistics come
		// back together and map to whole points.
		n, queries := 0, 0
		for n < len(metrics) && (n == 0 || queries+len(metrics[n].stats) <= maxQueries) {
			queries += len(metrics[n].stats)
			n++
		}
		batch := metrics[:n]
		metrics = metrics[n:]
		points, failed, err := p.getMetricData(ctx, t, batch, start, end)
		if err != nil {
			return err
		}
		if len(points) > 0 {
			// A hold that ended while the call was answered means another
			// replica may already be fetching the same period from the state
			// this one could not advance: its answer is dropped, not emitted
			// twice.
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if err := emit(ctx, points); err != nil {
				return fmt.Errorf("emit: %w", err)
			}
			p.points.Add(int64(len(points)))
		}
		// A metric whose query failed is not advanced: the next poll asks
		// for its periods again (from where it stopped, in a call of its
		// own start), while the call's others are delivered and move on.
		keys := make([]Key, 0, len(batch))
		for _, m := range batch {
			if !failed[m] {
				keys = append(keys, m.key)
			}
		}
		if len(keys) == 0 {
			continue
		}
		if err := p.cfg.State.Advance(ctx, keys, end); err != nil {
			return fmt.Errorf("advance state: %w", err)
		}
	}
	return nil
}

// getMetricData runs one call (all its pages) and maps the results. failed
// are the metrics of which a query was not answered in full: CloudWatch
// answers each query with its own StatusCode (Complete, PartialData with a
// NextToken to follow, InternalError, Forbidden), so one bad query of up
// to 500 fails that metric alone. Their points are not returned, not even
// those of the statistics that came back: a metric's statistics map to
// whole points, and it is fetched again, whole, by the next poll.
func (p *Poller) getMetricData(ctx context.Context, t *target, batch []*metricRef, start, end time.Time) (points []record.Metric, failed map[*metricRef]bool, err error) {
	period := int32(p.cfg.Period / time.Second)
	type ref struct {
		m    *metricRef
		stat string
	}
	var queries []types.MetricDataQuery
	var refs []ref
	for _, m := range batch {
		for _, stat := range m.stats {
			// Ids must start with a lower-case letter.
			id := "q" + strconv.Itoa(len(queries))
			queries = append(queries, types.MetricDataQuery{
				Id:         aws.String(id),
				MetricStat: &types.MetricStat{Metric: &m.metric, Period: aws.Int32(period), Stat: aws.String(stat)},
				ReturnData: aws.Bool(true),
			})
			refs = append(refs, ref{m, stat})
		}
	}
	in := &cloudwatch.GetMetricDataInput{
		StartTime:         aws.Time(start),
		EndTime:           aws.Time(end),
		MetricDataQueries: queries,
		ScanBy:            types.ScanByTimestampAscending,
	}
	// datums[metric][period start] collects the statistics of one point.
	datums := make(map[*metricRef]map[int64]*metricstream.Datum, len(batch))
	failedQueries := map[int]string{} // query → why, the first time
	var firstFailed int
	p.calls.Add(1)
	for {
		out, err := page(ctx, p, t, "GetMetricData", &p.pages, t.api.GetMetricData, in)
		if err != nil {
			return nil, nil, err
		}
		last := aws.ToString(out.NextToken) == ""
		for _, msg := range out.Messages {
			p.log.Warn("GetMetricData message", "target", t.Target.String(), "code", aws.ToString(msg.Code), "message", aws.ToString(msg.Value))
		}
		for _, r := range out.MetricDataResults {
			i, err := strconv.Atoi(strings.TrimPrefix(aws.ToString(r.Id), "q"))
			if err != nil || i < 0 || i >= len(refs) {
				return nil, nil, fmt.Errorf("GetMetricData: result for unknown query %q", aws.ToString(r.Id))
			}
			var why string
			switch {
			case r.StatusCode == types.StatusCodeInternalError, r.StatusCode == types.StatusCodeForbidden:
				why = string(r.StatusCode)
			case r.StatusCode == types.StatusCodePartialData && last:
				// PartialData means more to come with the NextToken; with
				// none left, the data is incomplete.
				why = "PartialData on the last page"
			case len(r.Timestamps) != len(r.Values):
				why = fmt.Sprintf("%d timestamps for %d values", len(r.Timestamps), len(r.Values))
			}
			if why != "" {
				if _, seen := failedQueries[i]; !seen {
					for _, msg := range r.Messages {
						why += fmt.Sprintf("; %s: %s", aws.ToString(msg.Code), aws.ToString(msg.Value))
					}
					if len(failedQueries) == 0 {
						firstFailed = i
					}
					failedQueries[i] = why
				}
				continue
			}
			m := refs[i].m
			byTS := datums[m]
			if byTS == nil {
				byTS = map[int64]*metricstream.Datum{}
				datums[m] = byTS
			}
			for j, ts := range r.Timestamps {
				d := byTS[ts.Unix()]
				if d == nil {
					d = &metricstream.Datum{
						Account: t.Account, Region: t.Region,
						Namespace: m.key.Namespace, MetricName: m.key.Metric, Dimensions: m.dims,
						Timestamp: ts.Unix(), Period: int64(period),
					}
					byTS[ts.Unix()] = d
				}
				setStat(&d.Values, refs[i].stat, r.Values[j])
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(failedQueries) > 0 {
		failed = make(map[*metricRef]bool, len(failedQueries))
		for i := range failedQueries {
			failed[refs[i].m] = true
		}
		p.queryFailures.Add(int64(len(failedQueries)))
		// One line per call, not per query: a call holds up to 500.
		p.log.Warn("GetMetricData queries failed; their metrics are fetched again by the next poll, the call's others are delivered",
			"target", t.Target.String(), "failed_queries", len(failedQueries), "queries", len(queries), "metrics_retried", len(failed),
			"first", refs[firstFailed].m.key.String()+" "+refs[firstFailed].stat, "status", failedQueries[firstFailed])
	}
	for _, m := range batch {
		if failed[m] {
			continue
		}
		byTS := datums[m]
		tss := make([]int64, 0, len(byTS))
		for ts := range byTS {
			tss = append(tss, ts)
		}
		slices.Sort(tss)
		for _, ts := range tss {
			if _, err := p.mapper.Map(byTS[ts], func(pt record.Metric) { points = append(points, pt) }); err != nil {
				// A value CloudWatch returned but Datadog cannot take (not
				// finite): logged, never sent.
				p.log.Warn("data point refused", "metric", m.key.String(), "timestamp", ts, "err", err)
			}
		}
	}
	return points, failed, nil
}

func setStat(v *metricstream.Values, stat string, x float64) {
	switch stat {
	case "SampleCount":
		v.Count, v.Has = x, v.Has|metricstream.HasCount
	case "Sum":
		v.Sum, v.Has = x, v.Has|metricstream.HasSum
	case "Minimum":
		v.Min, v.Has = x, v.Has|metricstream.HasMin
	case "Maximum":
		v.Max, v.Has = x, v.Has|metricstream.HasMax
	default:
		v.Percentiles = append(v.Percentiles, metricstream.Percentile{Stat: stat, Value: x})
	}
}

var (
	throttleCheck  = retry.IsErrorThrottles(retry.DefaultThrottles)
	retryableCheck = retry.IsErrorRetryables(retry.DefaultRetryables)
)

// page is one request of op, paced and retried by call; requests counts
// every attempt.
func page[In, Out any](ctx context.Context, p *Poller, t *target, op string, requests *atomic.Int64,
	api func(context.Context, In, ...func(*cloudwatch.Options)) (Out, error), in In) (Out, error) {
	var out Out
	err := p.call(ctx, t, op, func(ctx context.Context) (err error) {
		requests.Add(1)
		out, err = api(ctx, in)
		return err
	})
	return out, err
}

// call runs fn, paced by the target's limiter, retrying throttled and
// other transient failures with exponential back-off and full jitter.
func (p *Poller) call(ctx context.Context, t *target, op string, fn func(context.Context) error) error {
	pace := p.cfg.Retry.Start()
	for attempt := 1; ; attempt++ {
		if err := t.limiter.Wait(ctx); err != nil {
			return err
		}
		err := fn(ctx)
		if err == nil {
			return nil
		}
		throttled := throttleCheck.IsErrorThrottle(err).Bool()
		if throttled {
			p.throttles.Add(1)
		}
		if ctx.Err() != nil || attempt >= p.cfg.MaxAttempts || !throttled && !retryableCheck.IsErrorRetryable(err).Bool() {
			return fmt.Errorf("%s: %w", op, err)
		}
		p.retries.Add(1)
		wait := pace.Next()
		p.log.Debug("cloudwatch call retried", "target", t.Target.String(), "op", op, "attempt", attempt,
			"throttled", throttled, "wait", wait, "err", err)
		if err := pace.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}
