package metricstream

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/stages/enrich/awstags"
)

// APIGatewayNamespace is API Gateway's CloudWatch namespace.
const APIGatewayNamespace = "AWS/ApiGateway"

// DefaultPeriod is the period of a metric stream's data points, in seconds:
// streams always aggregate per minute.
const DefaultPeriod = 60

// Has says which of a datum's statistics are present.
type Has uint8

// Statistics a Values may carry.
const (
	HasCount Has = 1 << iota // SampleCount
	HasSum
	HasMin
	HasMax
)

// Values are one period's statistics of a CloudWatch metric.
type Values struct {
	Count, Sum, Min, Max float64
	Has                  Has
	// Percentiles are extra statistics of the form "p99" or "p99.9", as
	// CloudWatch names them.
	Percentiles []Percentile
}

// Percentile is one percentile statistic.
type Percentile struct {
	Stat  string // "p99", "p99.9"
	Value float64
}

// Dimension is one CloudWatch dimension.
type Dimension struct{ Name, Value string }

// Datum is one period of one CloudWatch metric, as a metric stream or
// GetMetricData delivers it.
type Datum struct {
	Account, Region       string
	Namespace, MetricName string
	Dimensions            []Dimension
	Timestamp             int64 // seconds since the epoch: the start of the period
	Period                int64 // seconds; 0 means DefaultPeriod
	Unit                  string
	Values                Values
}

// family is how a metric's statistics become Datadog points.
type family uint8

const (
	famCount        family = iota // name: Sum as a count over the period
	famCountWithSum               // name and name.sum: Sum as a count (WebSocket metrics)
	famLatency                    // name (average), .maximum, .minimum, .pNN: gauges
	famGeneric                    // as famLatency plus .sum and .samplecount
)

type apigwMetric struct {
	name string // after "<namespace>apigateway."
	fam  family
	unit string
}

// apigwMetrics maps API Gateway's CloudWatch metrics to the names of the
// Datadog AWS integration
// (docs/wire-formats.md#cloudwatch-and-datadog-metric-names). DataProcessed has no integration
// name; it gets one of its own, distinct from anything the integration may
// add later (aws.apigateway.data_processed), so that the two never merge.
var apigwMetrics = map[string]apigwMetric{
	"4XXError":           {"4xxerror", famCount, "operation"},
	"5XXError":           {"5xxerror", famCount, "operation"},
	"4xx":                {"4xx", famCount, "operation"},
	"5xx":                {"5xx", famCount, "operation"},
	"Count":              {"count", famCount, "operation"},
	"CacheHitCount":      {"cache_hit_count", famCount, "operation"},
	"CacheMissCount":     {"cache_miss_count", famCount, "operation"},
	"Latency":            {"latency", famLatency, "millisecond"},
	"IntegrationLatency": {"integration_latency", famLatency, "millisecond"},
	"DataProcessed":      {"data_processed_bytes", famCount, "byte"},
	"ConnectCount":       {"connect_count", famCountWithSum, "operation"},
	"MessageCount":       {"message_count", famCountWithSum, "operation"},
	"IntegrationError":   {"integration_error", famCountWithSum, "operation"},
	"ClientError":        {"client_error", famCountWithSum, "operation"},
	"ExecutionError":     {"execution_error", famCountWithSum, "operation"},
}

// CacheHitRatio is the name, after "<namespace>apigateway.", of the derived
// cache view: hits/(hits+misses) per stage and period.
const CacheHitRatio = "cache_hit_ratio"

// commonPercentiles get their names computed once per series.
var commonPercentiles = []string{"p50", "p75", "p90", "p95", "p99", "p99.9"}

// Mapper turns CloudWatch data points into Datadog metric points. It is
// shared by the metric-stream decoder and the GetMetricData poller, so that
// both name and tag a metric the same way. It is safe for concurrent use.
type Mapper struct {
	cfg          Config
	prefix       string // for AWS namespaces
	customPrefix string // for custom namespaces
	drop         map[string]bool
	ratioName    string

	mu     sync.RWMutex
	series map[string]*series

	join joiner

	datums, points, dropped, invalid, ratios atomic.Int64
}

// series is what a metric and dimension set resolve to, computed once.
type series struct {
	drop     bool
	fam      family
	unit     string // "" for generic series: taken from each datum
	name     string
	max, min string
	sum, cnt string // generic .sum and .samplecount; famCountWithSum: .sum in sum
	pcts     []pctName
	tags     []string // shared by every point of the series: never modified
	cache    string   // CacheHitCount and CacheMissCount: the stage's join key
	hit      bool
}

type pctName struct{ stat, name string }

// MapperStats are a Mapper's counters since it was made.
type MapperStats struct {
	Datums  int64 // data points mapped (or dropped)
	Points  int64 // Datadog points emitted, cache ratios included
	Dropped int64 // data points dropped by configuration (PassOther, DropNamespaces)
	Invalid int64 // data points refused: no namespace, metric name, timestamp or statistics, or non-finite or negative ones
	Ratios  int64 // cache hit ratios emitted
	// Unpaired are cache hit or miss counts whose other half never came
	// (evicted from the pending set): their ratio was not computed.
	Unpaired int64
}

// NewMapper returns a Mapper for cfg.
func NewMapper(cfg Config) (*Mapper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Mapper{
		cfg:    cfg,
		prefix: cfg.Namespace,
		series: make(map[string]*series),
		drop:   make(map[string]bool, len(cfg.DropNamespaces)),
	}
	// Custom namespaces have no "aws." in the integration's naming
	// (mynamespace.metric); a namespace of gwpipe's moves them under it
	// like the AWS ones, so that they never collide with the crawler's.
	if cfg.Namespace != IntegrationNamespace {
		m.customPrefix = cfg.Namespace
	}
	for _, ns := range cfg.DropNamespaces {
		m.drop[ns] = true
	}
	m.ratioName = m.prefix + "apigateway." + CacheHitRatio
	m.join.init(cfg.MaxPendingCache)
	return m, nil
}

// Config returns the configuration in effect, defaults applied.
func (m *Mapper) Config() Config { return m.cfg }

// Stats returns the Mapper's counters.
func (m *Mapper) Stats() MapperStats {
	return MapperStats{
		Datums: m.datums.Load(), Points: m.points.Load(), Dropped: m.dropped.Load(),
		Invalid: m.invalid.Load(), Ratios: m.ratios.Load(), Unpaired: m.join.unpaired.Load(),
	}
}

// Statistics names the GetMetricData statistics a metric's mapping uses:
// just Sum for counts, SampleCount, Sum, Minimum and Maximum otherwise (the
// caller adds the percentiles it wants).
func (m *Mapper) Statistics(namespace, metricName string) (stats []string, latencyLike bool) {
	if namespace == APIGatewayNamespace {
		if am, ok := apigwMetrics[metricName]; ok && am.fam != famLatency {
			return []string{"Sum"}, false
		}
	}
	return []string{"SampleCount", "Sum", "Minimum", "Maximum"}, true
}

// Map emits the Datadog points of one datum through fn and returns how many.
// An error means the datum was refused (non-finite or negative statistics,
// no namespace or metric name); nothing was emitted for it.
func (m *Mapper) Map(d *Datum, fn func(record.Metric)) (int, error) {
	sc := getScratch()
	defer putScratch(sc)
	rd := rawDatum{
		account: []byte(d.Account), region: []byte(d.Region),
		namespace: []byte(d.Namespace), metric: []byte(d.MetricName), unit: []byte(d.Unit),
		ts: d.Timestamp, period: d.Period,
		count: d.Values.Count, sum: d.Values.Sum, min: d.Values.Min, max: d.Values.Max, has: d.Values.Has,
	}
	for _, dim := range d.Dimensions {
		sc.dims = append(sc.dims, rawDim{name: []byte(dim.Name), value: []byte(dim.Value)})
	}
	for _, p := range d.Values.Percentiles {
		sc.pcts = append(sc.pcts, rawPct{stat: []byte(p.Stat), value: p.Value})
	}
	rd.dims, rd.pcts = sc.dims, sc.pcts
	return m.mapRaw(sc, &rd, fn)
}

// rawDatum is a Datum whose strings alias the decoded input.
type rawDatum struct {
	account, region, namespace, metric, unit []byte
	dims                                     []rawDim
	ts, period                               int64
	count, sum, min, max                     float64
	has                                      Has
	pcts                                     []rawPct
}

type rawDim struct{ name, value []byte }

type rawPct struct {
	stat  []byte
	value float64
}

var (
	errNoNamespace = errors.New("no namespace")
	errNoMetric    = errors.New("no metric name")
	errNoTimestamp = errors.New("no timestamp")
	errNoValue     = errors.New("no statistics")
)

// check refuses a datum the intake could not take or that is not one.
func (d *rawDatum) check() error {
	switch {
	case len(d.namespace) == 0:
		return errNoNamespace
	case len(d.metric) == 0:
		return errNoMetric
	case d.ts <= 0:
		return errNoTimestamp
	case d.has == 0:
		return errNoValue
	}
	for _, v := range [...]float64{d.count, d.sum, d.min, d.max} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("non-finite statistic")
		}
	}
	if d.count < 0 {
		return fmt.Errorf("negative sample count %v", d.count)
	}
	for _, p := range d.pcts {
		if math.IsNaN(p.value) || math.IsInf(p.value, 0) {
			return fmt.Errorf("non-finite statistic %s", p.stat)
		}
	}
	return nil
}

// mapRaw is Map on decoded bytes: the hot path of both decoders.
func (m *Mapper) mapRaw(sc *scratch, d *rawDatum, fn func(record.Metric)) (int, error) {
	m.datums.Add(1)
	if err := d.check(); err != nil {
		m.invalid.Add(1)
		return 0, err
	}
	key := append(sc.key[:0], d.account...)
	key = append(key, 0)
	key = append(key, d.region...)
	key = append(key, 0)
	key = append(key, d.namespace...)
	key = append(key, 0)
	key = append(key, d.metric...)
	for _, dm := range d.dims {
		key = append(key, 0)
		key = append(key, dm.name...)
		key = append(key, 1)
		key = append(key, dm.value...)
	}
	sc.key = key
	m.mu.RLock()
	s := m.series[string(key)]
	m.mu.RUnlock()
	if s == nil {
		s = m.resolve(string(key), d)
	}
	if s.drop {
		m.dropped.Add(1)
		return 0, nil
	}
	period := d.period
	if period <= 0 {
		period = DefaultPeriod
	}
	n := 0
	emit := func(name string, kind record.MetricKind, v float64, unit string) {
		pt := record.Metric{Name: name, Kind: kind, Timestamp: d.ts, Value: v, Tags: s.tags, Unit: unit}
		if kind == record.MetricCount {
			pt.Interval = period
		}
		fn(pt)
		n++
	}
	switch s.fam {
	case famCount, famCountWithSum:
		if d.has&HasSum == 0 {
			break
		}
		emit(s.name, record.MetricCount, d.sum, s.unit)
		if s.fam == famCountWithSum {
			emit(s.sum, record.MetricCount, d.sum, s.unit)
		}
		if s.cache != "" {
			if r, ok := m.join.add(s.cache, s.hit, d.ts, d.sum); ok {
				emit(m.ratioName, record.MetricGauge, r, "fraction")
				m.ratios.Add(1)
			}
		}
	case famLatency, famGeneric:
		unit := s.unit
		if s.fam == famGeneric {
			unit = datadogUnit(d.unit)
		}
		// With no samples, CloudWatch's average, minimum and maximum are
		// undefined: send nothing rather than zeros.
		samples := d.has&HasCount == 0 || d.count > 0
		if d.has&(HasCount|HasSum) == HasCount|HasSum && d.count > 0 {
			emit(s.name, record.MetricGauge, d.sum/d.count, unit)
		}
		if samples && d.has&HasMax != 0 {
			emit(s.max, record.MetricGauge, d.max, unit)
		}
		if samples && d.has&HasMin != 0 {
			emit(s.min, record.MetricGauge, d.min, unit)
		}
		if s.fam == famGeneric {
			if d.has&HasSum != 0 {
				emit(s.sum, record.MetricGauge, d.sum, unit)
			}
			if d.has&HasCount != 0 {
				emit(s.cnt, record.MetricGauge, d.count, "")
			}
		}
		if m.cfg.Percentiles && samples {
			for _, p := range d.pcts {
				if name := s.percentileName(p.stat); name != "" {
					emit(name, record.MetricGauge, p.value, unit)
				}
			}
		}
	}
	m.points.Add(int64(n))
	return n, nil
}

// percentileName returns the point name of a percentile statistic, "" for
// a statistic that is not one ("p" and digits, optionally ".digits").
func (s *series) percentileName(stat []byte) string {
	for _, p := range s.pcts {
		if string(stat) == p.stat {
			return p.name
		}
	}
	if !isPercentile(stat) {
		return ""
	}
	return s.name + "." + percentileSuffix(string(stat))
}

func isPercentile(stat []byte) bool {
	if len(stat) < 2 || stat[0] != 'p' {
		return false
	}
	dot := false
	for i := 1; i < len(stat); i++ {
		c := stat[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 1 && i < len(stat)-1:
			dot = true
		default:
			return false
		}
	}
	return true
}

// percentileSuffix names a percentile in Datadog: "p99" stays, "p99.9"
// becomes "p99_9" (a '.' would start a new segment of the metric name).
func percentileSuffix(stat string) string { return strings.ReplaceAll(stat, ".", "_") }

// resolve computes and caches the series of a datum.
func (m *Mapper) resolve(key string, d *rawDatum) *series {
	s := m.build(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.series[key]; old != nil {
		return old
	}
	if len(m.series) >= m.cfg.MaxSeries {
		// A full cache is dropped whole: simpler than LRU bookkeeping on
		// the hot path, and rebuilt from the next few records.
		clear(m.series)
	}
	m.series[key] = s
	return s
}

func (m *Mapper) build(d *rawDatum) *series {
	ns, metric := string(d.namespace), string(d.metric)
	if m.drop[ns] {
		return &series{drop: true}
	}
	s := &series{}
	if ns == APIGatewayNamespace {
		base := m.prefix + "apigateway."
		if am, ok := apigwMetrics[metric]; ok {
			s.fam, s.unit, s.name = am.fam, am.unit, base+am.name
		} else {
			// A metric API Gateway adds later: named like the integration
			// names unknown metrics, typed like any other.
			s.fam, s.name = famGeneric, base+snakeCase(metric)
		}
		s.tags = apigwTagList(d)
		if metric == "CacheHitCount" || metric == "CacheMissCount" {
			s.hit = metric == "CacheHitCount"
			s.cache = stageJoinKey(d)
		}
	} else {
		if !m.cfg.PassOther {
			return &series{drop: true}
		}
		s.fam = famGeneric
		if svc, ok := strings.CutPrefix(ns, "AWS/"); ok {
			s.name = m.prefix + serviceName(svc) + "." + snakeCase(metric)
		} else {
			s.name = m.customPrefix + serviceName(ns) + "." + snakeCase(metric)
		}
		s.tags = genericTagList(d)
	}
	switch s.fam {
	case famCountWithSum:
		s.sum = s.name + ".sum"
	case famLatency, famGeneric:
		s.max, s.min = s.name+".maximum", s.name+".minimum"
		s.sum, s.cnt = s.name+".sum", s.name+".samplecount"
		s.pcts = make([]pctName, len(commonPercentiles))
		for i, p := range commonPercentiles {
			s.pcts[i] = pctName{stat: p, name: s.name + "." + percentileSuffix(p)}
		}
	}
	return s
}

// apigwTagList tags an API Gateway series with the integration's keys,
// valued as the enrichment stage values them (awstags.NormalizeValue), so
// that the stage's own tags, added later, are the same strings.
func apigwTagList(d *rawDatum) []string {
	var apiID, apiName, stage, method, resource string
	var other []string
	for _, dm := range d.dims {
		name, v := string(dm.name), string(dm.value)
		switch name {
		case "ApiId":
			apiID = awstags.NormalizeValue(v)
		case "ApiName":
			apiName = awstags.NormalizeValue(v)
		case "Stage":
			stage = awstags.NormalizeValue(v)
		case "Method":
			method = strings.ToLower(v)
		case "Resource":
			resource = v
		case "Route":
			// HTTP and WebSocket routes ("GET /pets/{id}", "$connect"):
			// split like the derive stage splits $context.routeKey, so
			// that log-derived and CloudWatch series share method and
			// resource.
			if meth, path, ok := strings.Cut(v, " "); ok && strings.HasPrefix(path, "/") {
				method, resource = strings.ToLower(meth), path
			} else {
				resource = v
			}
		default:
			if t := awstags.NormalizeTag(name, v); t != "" {
				other = append(other, t)
			}
		}
	}
	tags := make([]string, 0, 7+len(other))
	add := func(k, v string) {
		if v != "" {
			tags = append(tags, awstags.TruncateTag(k+":"+v))
		}
	}
	add("apiid", apiID)
	add("apiname", apiName)
	add("stage", stage)
	add("region", awstags.NormalizeValue(string(d.region)))
	add("aws_account", awstags.NormalizeValue(string(d.account)))
	add("method", method)
	add("resource", resource)
	sort.Strings(other)
	tags = append(tags, other...)
	return tags[:len(tags):len(tags)]
}

// genericTagList tags any other series: each dimension as a normalised
// tag (lower-cased key, as the integration does: functionname, queuename),
// then region and aws_account.
func genericTagList(d *rawDatum) []string {
	tags := make([]string, 0, len(d.dims)+2)
	for _, dm := range d.dims {
		if t := awstags.NormalizeTag(string(dm.name), string(dm.value)); t != "" {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	if v := awstags.NormalizeValue(string(d.region)); v != "" {
		tags = append(tags, "region:"+v)
	}
	if v := awstags.NormalizeValue(string(d.account)); v != "" {
		tags = append(tags, "aws_account:"+v)
	}
	return tags[:len(tags):len(tags)]
}

// snakeCase names a CloudWatch metric as the integration does: '_' before
// an upper-case letter that follows a lower-case one, lower case, anything
// but letters and digits becoming '_' (CPUUtilization → cpuutilization,
// NetworkIn → network_in, 4XXError → 4xxerror, HTTPCode_ELB_5XX_Count →
// httpcode_elb_5xx_count).
func snakeCase(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	var prev byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if prev >= 'a' && prev <= 'z' {
				b.WriteByte('_')
			}
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		default:
			c = '_'
			if prev != '_' && b.Len() > 0 {
				b.WriteByte('_')
			}
		}
		prev = c
	}
	out := strings.TrimRight(b.String(), "_")
	if out == "" {
		return "unnamed"
	}
	return out
}

// serviceName names a namespace's service: lower case, '/' separating
// segments (AWS/CloudWatch/MetricStreams → cloudwatch.metricstreams), other
// characters dropped (ApiGateway → apigateway, NATGateway → natgateway).
func serviceName(ns string) string {
	var b strings.Builder
	for _, seg := range strings.Split(ns, "/") {
		var part bytes.Buffer
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case c >= 'A' && c <= 'Z':
				part.WriteByte(c + 'a' - 'A')
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
				part.WriteByte(c)
			}
		}
		if part.Len() == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.Write(part.Bytes())
	}
	if b.Len() == 0 {
		return "custom"
	}
	return b.String()
}

// datadogUnit maps a CloudWatch unit (JSON output) or its UCUM form
// (OpenTelemetry output) to a Datadog unit; "" when there is none.
func datadogUnit(u []byte) string {
	switch string(u) {
	case "Seconds", "Second", "s":
		return "second"
	case "Milliseconds", "ms":
		return "millisecond"
	case "Microseconds", "us":
		return "microsecond"
	case "Bytes", "By":
		return "byte"
	case "Bits", "bit":
		return "bit"
	case "Percent", "%":
		return "percent"
	}
	return ""
}
