package metricstream

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

func mapAll(t *testing.T, m *Mapper, ds ...Datum) ([]string, error) {
	t.Helper()
	var got []record.Metric
	var errs error
	for i := range ds {
		n, err := m.Map(&ds[i], func(p record.Metric) { got = append(got, p) })
		if err != nil {
			errs = err
		}
		require.LessOrEqual(t, n, len(got))
	}
	return renderAll(got), errs
}

var (
	stageDims = []Dimension{{"ApiName", "petstore"}, {"Stage", "prod"}}
	latency   = Datum{Account: "123456789012", Region: "us-east-1", Namespace: "AWS/ApiGateway", MetricName: "Latency",
		Dimensions: stageDims, Timestamp: 1700000040, Values: Values{Count: 4, Sum: 40, Min: 2, Max: 20, Has: HasCount | HasSum | HasMin | HasMax,
			Percentiles: []Percentile{{"p99", 19}, {"p99.9", 19.9}, {"tm99", 1}}}}
	hits = Datum{Account: "123456789012", Region: "us-east-1", Namespace: "AWS/ApiGateway", MetricName: "CacheHitCount",
		Dimensions: stageDims, Timestamp: 1700000040, Values: Values{Sum: 3, Has: HasSum}}
	misses = Datum{Account: "123456789012", Region: "us-east-1", Namespace: "AWS/ApiGateway", MetricName: "CacheMissCount",
		Dimensions: []Dimension{{"Stage", "prod"}, {"ApiName", "petstore"}}, Timestamp: 1700000040, Values: Values{Sum: 1, Has: HasSum}}
	lambda = Datum{Account: "123456789012", Region: "us-east-1", Namespace: "AWS/Lambda", MetricName: "Errors",
		Dimensions: []Dimension{{"FunctionName", "auth"}}, Timestamp: 1700000040, Unit: "Count", Values: Values{Count: 2, Sum: 1, Has: HasCount | HasSum}}
	custom = Datum{Account: "123456789012", Region: "us-east-1", Namespace: "MyApp", MetricName: "Orders",
		Timestamp: 1700000040, Values: Values{Sum: 5, Has: HasSum}}
)

const stageTags = "tags=apiname:petstore,stage:prod,region:us-east-1,aws_account:123456789012"

func TestMapperConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   Config
		in    []Datum
		want  []string
		stats MapperStats
	}{
		{
			name: "integration names, percentiles",
			cfg:  DefaultConfig(),
			in:   []Datum{latency},
			want: []string{
				"aws.apigateway.latency gauge ts=1700000040 interval=0 value=10 unit=millisecond " + stageTags,
				"aws.apigateway.latency.maximum gauge ts=1700000040 interval=0 value=20 unit=millisecond " + stageTags,
				"aws.apigateway.latency.minimum gauge ts=1700000040 interval=0 value=2 unit=millisecond " + stageTags,
				"aws.apigateway.latency.p99 gauge ts=1700000040 interval=0 value=19 unit=millisecond " + stageTags,
				"aws.apigateway.latency.p99_9 gauge ts=1700000040 interval=0 value=19.9 unit=millisecond " + stageTags,
			},
			stats: MapperStats{Datums: 1, Points: 5},
		},
		{
			name: "percentiles off",
			cfg:  Config{Namespace: "aws", PassOther: true},
			in:   []Datum{latency},
			want: []string{
				"aws.apigateway.latency gauge ts=1700000040 interval=0 value=10 unit=millisecond " + stageTags,
				"aws.apigateway.latency.maximum gauge ts=1700000040 interval=0 value=20 unit=millisecond " + stageTags,
				"aws.apigateway.latency.minimum gauge ts=1700000040 interval=0 value=2 unit=millisecond " + stageTags,
			},
			stats: MapperStats{Datums: 1, Points: 3},
		},
		{
			name: "gwpipe namespace beside the crawler",
			cfg:  Config{Namespace: "cloudwatch.", PassOther: true},
			in:   []Datum{hits, misses, lambda, custom},
			want: []string{
				"cloudwatch.apigateway.cache_hit_count count ts=1700000040 interval=60 value=3 unit=operation " + stageTags,
				"cloudwatch.apigateway.cache_miss_count count ts=1700000040 interval=60 value=1 unit=operation " + stageTags,
				"cloudwatch.apigateway.cache_hit_ratio gauge ts=1700000040 interval=0 value=0.75 unit=fraction " + stageTags,
				"cloudwatch.lambda.errors gauge ts=1700000040 interval=0 value=0.5 unit= tags=functionname:auth,region:us-east-1,aws_account:123456789012",
				"cloudwatch.lambda.errors.sum gauge ts=1700000040 interval=0 value=1 unit= tags=functionname:auth,region:us-east-1,aws_account:123456789012",
				"cloudwatch.lambda.errors.samplecount gauge ts=1700000040 interval=0 value=2 unit= tags=functionname:auth,region:us-east-1,aws_account:123456789012",
				"cloudwatch.myapp.orders.sum gauge ts=1700000040 interval=0 value=5 unit= tags=region:us-east-1,aws_account:123456789012",
			},
			stats: MapperStats{Datums: 4, Points: 7, Ratios: 1},
		},
		{
			name:  "other namespaces dropped, and counted",
			cfg:   Config{},
			in:    []Datum{lambda, custom, hits},
			want:  []string{"aws.apigateway.cache_hit_count count ts=1700000040 interval=60 value=3 unit=operation " + stageTags},
			stats: MapperStats{Datums: 3, Points: 1, Dropped: 2},
		},
		{
			name:  "namespaces dropped by name",
			cfg:   Config{PassOther: true, DropNamespaces: []string{"AWS/Lambda", "AWS/ApiGateway"}},
			in:    []Datum{lambda, hits, custom},
			want:  []string{"myapp.orders.sum gauge ts=1700000040 interval=0 value=5 unit= tags=region:us-east-1,aws_account:123456789012"},
			stats: MapperStats{Datums: 3, Points: 1, Dropped: 2},
		},
		{
			name: "no samples: no average, minimum, maximum or percentiles",
			cfg:  DefaultConfig(),
			in: []Datum{{Account: "1", Region: "r", Namespace: "AWS/ApiGateway", MetricName: "Latency", Timestamp: 60,
				Values: Values{Has: HasCount | HasSum | HasMin | HasMax, Percentiles: []Percentile{{"p99", 0}}}}},
			stats: MapperStats{Datums: 1},
		},
		{
			name: "poller's statistics: Sum only for counts, a period of five minutes",
			cfg:  DefaultConfig(),
			in: []Datum{{Account: "1", Region: "r", Namespace: "AWS/ApiGateway", MetricName: "5XXError", Timestamp: 300, Period: 300,
				Values: Values{Sum: 2, Has: HasSum}}},
			want:  []string{"aws.apigateway.5xxerror count ts=300 interval=300 value=2 unit=operation tags=region:r,aws_account:1"},
			stats: MapperStats{Datums: 1, Points: 1},
		},
		{
			name: "an API Gateway metric the table does not know",
			cfg:  DefaultConfig(),
			in: []Datum{{Account: "1", Region: "r", Namespace: "AWS/ApiGateway", MetricName: "ThrottleCount", Timestamp: 60,
				Values: Values{Sum: 2, Count: 2, Has: HasSum | HasCount}}},
			want: []string{
				"aws.apigateway.throttle_count gauge ts=60 interval=0 value=1 unit= tags=region:r,aws_account:1",
				"aws.apigateway.throttle_count.sum gauge ts=60 interval=0 value=2 unit= tags=region:r,aws_account:1",
				"aws.apigateway.throttle_count.samplecount gauge ts=60 interval=0 value=2 unit= tags=region:r,aws_account:1",
			},
			stats: MapperStats{Datums: 1, Points: 3},
		},
		{
			name: "unknown dimensions become normalised tags",
			cfg:  DefaultConfig(),
			in: []Datum{{Account: "1", Region: "r", Namespace: "AWS/ApiGateway", MetricName: "Count", Timestamp: 60,
				Dimensions: []Dimension{{"Stage", "Prod"}, {"ApiName", "x"}, {"Canary Name", "Blue"}}, Values: Values{Sum: 1, Has: HasSum}}},
			want:  []string{"aws.apigateway.count count ts=60 interval=60 value=1 unit=operation tags=apiname:x,stage:prod,region:r,aws_account:1,canary_name:blue"},
			stats: MapperStats{Datums: 1, Points: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapper(tt.cfg)
			require.NoError(t, err)
			got, err := mapAll(t, m, tt.in...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, nilIfEmpty(got))
			assert.Equal(t, tt.stats, m.Stats())
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestMapperRefuses(t *testing.T) {
	t.Parallel()
	m, err := NewMapper(DefaultConfig())
	require.NoError(t, err)
	tests := []struct {
		name string
		d    Datum
		err  string
	}{
		{"nan", Datum{Namespace: "AWS/ApiGateway", MetricName: "Count", Timestamp: 60, Values: Values{Sum: math.NaN(), Has: HasSum}}, "non-finite"},
		{"inf percentile", Datum{Namespace: "AWS/ApiGateway", MetricName: "Latency", Timestamp: 60,
			Values: Values{Sum: 1, Has: HasSum, Percentiles: []Percentile{{"p99", math.Inf(1)}}}}, "non-finite statistic p99"},
		{"negative count", Datum{Namespace: "X", MetricName: "Y", Timestamp: 60, Values: Values{Count: -1, Has: HasCount}}, "negative"},
		{"no timestamp", Datum{Namespace: "X", MetricName: "Y", Values: Values{Sum: 1, Has: HasSum}}, "no timestamp"},
		{"no statistics", Datum{Namespace: "X", MetricName: "Y", Timestamp: 60}, "no statistics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := m.Map(&tt.d, func(record.Metric) { t.Fatal("emitted a refused datum") })
			assert.Zero(t, n)
			assert.ErrorContains(t, err, tt.err)
		})
	}
	assert.Equal(t, int64(len(tests)), m.Stats().Invalid)
}

func TestMapperStatistics(t *testing.T) {
	t.Parallel()
	m, err := NewMapper(DefaultConfig())
	require.NoError(t, err)
	for _, tt := range []struct {
		ns, metric string
		want       []string
		latency    bool
	}{
		{"AWS/ApiGateway", "Count", []string{"Sum"}, false},
		{"AWS/ApiGateway", "CacheHitCount", []string{"Sum"}, false},
		{"AWS/ApiGateway", "ConnectCount", []string{"Sum"}, false},
		{"AWS/ApiGateway", "Latency", []string{"SampleCount", "Sum", "Minimum", "Maximum"}, true},
		{"AWS/ApiGateway", "NewMetric", []string{"SampleCount", "Sum", "Minimum", "Maximum"}, true},
		{"AWS/Lambda", "Errors", []string{"SampleCount", "Sum", "Minimum", "Maximum"}, true},
	} {
		got, latency := m.Statistics(tt.ns, tt.metric)
		assert.Equal(t, tt.want, got, tt.metric)
		assert.Equal(t, tt.latency, latency, tt.metric)
	}
}

// A full series cache is emptied and rebuilt; the points stay right.
func TestMapperSeriesCacheBound(t *testing.T) {
	t.Parallel()
	m, err := NewMapper(Config{Namespace: "aws.", MaxSeries: 2})
	require.NoError(t, err)
	for round := range 3 {
		for _, stage := range []string{"a", "b", "c"} {
			d := Datum{Account: "1", Region: "r", Namespace: "AWS/ApiGateway", MetricName: "Count", Timestamp: 60,
				Dimensions: []Dimension{{"Stage", stage}}, Values: Values{Sum: float64(round), Has: HasSum}}
			got, err := mapAll(t, m, d)
			require.NoError(t, err)
			assert.Equal(t, []string{"aws.apigateway.count count ts=60 interval=60 value=" + itoa(round) + " unit=operation tags=stage:" + stage + ",region:r,aws_account:1"}, got)
		}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	assert.LessOrEqual(t, len(m.series), 2)
}

func itoa(i int) string { return string(rune('0' + i)) }

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ns string
		ok bool
	}{
		{"", true}, {"aws.", true}, {"aws", true}, {"apigateway.cloudwatch.", true}, {"gw_pipe.cw", true},
		{".", false}, {"AWS.", false}, {"a b.", false}, {"1cw.", false}, {"cw..x.", false}, {"cw-x.", false},
	} {
		cfg := Config{Namespace: tt.ns}
		err := cfg.Validate()
		assert.Equal(t, tt.ok, err == nil, "%q: %v", tt.ns, err)
		_, err = NewMapper(cfg)
		assert.Equal(t, tt.ok, err == nil, tt.ns)
	}
	m, err := NewMapper(Config{Namespace: "gwpipe.aws"})
	require.NoError(t, err)
	assert.Equal(t, "gwpipe.aws.", m.Config().Namespace)
}

func TestNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"CPUUtilization":            "cpuutilization",
		"NetworkIn":                 "network_in",
		"4XXError":                  "4xxerror",
		"5xx":                       "5xx",
		"IntegrationLatency":        "integration_latency",
		"HTTPCode_ELB_5XX_Count":    "httpcode_elb_5xx_count",
		"EBSByteBalance%":           "ebsbyte_balance",
		"ConsumedReadCapacityUnits": "consumed_read_capacity_units",
		"Metric Name":               "metric_name",
		"%":                         "unnamed",
	} {
		assert.Equal(t, want, snakeCase(in), in)
	}
	for in, want := range map[string]string{
		"ApiGateway":               "apigateway",
		"NATGateway":               "natgateway",
		"CloudWatch/MetricStreams": "cloudwatch.metricstreams",
		"My-App/Orders":            "myapp.orders",
		"//":                       "custom",
	} {
		assert.Equal(t, want, serviceName(in), in)
	}
}
