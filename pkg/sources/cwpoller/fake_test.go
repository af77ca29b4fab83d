package cwpoller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// fakeCloudWatch answers ListMetrics and GetMetricData in the AWS JSON 1.0
// protocol the poller speaks, from a table of metrics and a value
// function, and records what it was asked. It can throttle, as CloudWatch
// does (HTTP 400, ThrottlingException), and paginate.
type fakeCloudWatch struct {
	mu      sync.Mutex
	metrics []fakeMetric
	// value is the statistic of a metric for the period starting at ts.
	value func(m fakeMetric, stat string, ts int64) (float64, bool)
	// throttleGet and throttleList are how many requests to throttle
	// before answering.
	throttleGet, throttleList int
	// queryError throttles with the query-compatible header (code
	// "Throttling") instead of the JSON error type.
	queryError bool
	// status, when set, answers a query with its own StatusCode (and
	// Messages, code and text) instead of Complete, on every page: as
	// CloudWatch does for one query of a call it could not serve.
	status   func(q fakeQuery) (code string, messages [][2]string)
	pageSize int // data points per GetMetricData page; 0: all
	listPage int // metrics per ListMetrics page; 0: all

	gets      []getRequest
	listCalls int
}

type fakeMetric struct {
	Namespace, Name string
	Dims            [][2]string
}

type getRequest struct {
	Start, End int64
	Queries    []fakeQuery
	NextToken  string
}

type fakeQuery struct {
	ID     string
	Metric fakeMetric
	Stat   string
	Period int64
}

type wireDim struct{ Name, Value string }

type wireMetric struct {
	Namespace, MetricName string
	Dimensions            []wireDim `json:",omitempty"`
}

func (m fakeMetric) wire() wireMetric {
	w := wireMetric{Namespace: m.Namespace, MetricName: m.Name}
	for _, d := range m.Dims {
		w.Dimensions = append(w.Dimensions, wireDim{d[0], d[1]})
	}
	return w
}

func (w wireMetric) fake() fakeMetric {
	m := fakeMetric{Namespace: w.Namespace, Name: w.MetricName}
	for _, d := range w.Dimensions {
		m.Dims = append(m.Dims, [2]string{d.Name, d.Value})
	}
	return m
}

func (f *fakeCloudWatch) start(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(f.serve(t)))
	t.Cleanup(srv.Close)
	return srv.URL
}

// inProcess is an aws.Config whose requests f answers in the calling
// goroutine, with no socket: what a synctest bubble needs, since a
// connection's goroutines waiting on the network are never durably
// blocked and the bubble's clock would not move.
func (f *fakeCloudWatch) inProcess(t *testing.T) aws.Config {
	cfg := fakeConfig("http://cloudwatch.in-process")
	serve := f.serve(t)
	cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		serve(rec, r)
		return rec.Result(), nil
	})}
	return cfg
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (f *fakeCloudWatch) serve(t *testing.T) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		target := r.Header.Get("X-Amz-Target")
		f.mu.Lock()
		defer f.mu.Unlock()
		switch target {
		case "GraniteServiceVersion20100801.ListMetrics":
			f.listCalls++
			if f.throttleList > 0 {
				f.throttleList--
				f.throttled(w)
				return
			}
			f.list(t, w, body)
		case "GraniteServiceVersion20100801.GetMetricData":
			if f.throttleGet > 0 {
				f.throttleGet--
				f.gets = append(f.gets, getRequest{}) // counted, not answered
				f.throttled(w)
				return
			}
			f.get(t, w, body)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"UnknownOperationException","message":%q}`, target)
		}
	}
}

func (f *fakeCloudWatch) throttled(w http.ResponseWriter) {
	if f.queryError {
		w.Header().Set("x-amzn-query-error", "Throttling;Sender")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"com.amazonaws.cloudwatch#ThrottlingException","message":"Rate exceeded"}`)
		return
	}
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
}

func (f *fakeCloudWatch) list(t *testing.T, w http.ResponseWriter, body []byte) {
	var in struct {
		Namespace      string
		RecentlyActive string
		NextToken      string
	}
	require.NoError(t, json.Unmarshal(body, &in))
	require.Equal(t, "PT3H", in.RecentlyActive)
	var ms []wireMetric
	for _, m := range f.metrics {
		if m.Namespace == in.Namespace {
			ms = append(ms, m.wire())
		}
	}
	from, _ := strconv.Atoi(in.NextToken)
	to := len(ms)
	if f.listPage > 0 {
		to = min(from+f.listPage, len(ms))
	}
	out := map[string]any{"Metrics": ms[from:to]}
	if to < len(ms) {
		out["NextToken"] = strconv.Itoa(to)
	}
	require.NoError(t, json.NewEncoder(w).Encode(out))
}

func (f *fakeCloudWatch) get(t *testing.T, w http.ResponseWriter, body []byte) {
	var in struct {
		StartTime, EndTime float64
		ScanBy             string
		NextToken          string
		MetricDataQueries  []struct {
			Id         string
			MetricStat struct {
				Metric wireMetric
				Period int64
				Stat   string
			}
			ReturnData bool
		}
	}
	require.NoError(t, json.Unmarshal(body, &in))
	req := getRequest{Start: int64(in.StartTime), End: int64(in.EndTime), NextToken: in.NextToken}
	for _, q := range in.MetricDataQueries {
		require.True(t, q.ReturnData)
		req.Queries = append(req.Queries, fakeQuery{ID: q.Id, Metric: q.MetricStat.Metric.fake(), Stat: q.MetricStat.Stat, Period: q.MetricStat.Period})
	}
	f.gets = append(f.gets, req)

	type point struct {
		id string
		ts int64
		v  float64
	}
	var all []point
	for _, q := range req.Queries {
		for ts := req.Start; ts < req.End; ts += q.Period {
			if v, ok := f.value(q.Metric, q.Stat, ts); ok {
				all = append(all, point{q.ID, ts, v})
			}
		}
	}
	from, _ := strconv.Atoi(in.NextToken)
	to := len(all)
	if f.pageSize > 0 {
		to = min(from+f.pageSize, len(all))
	}
	type message struct{ Code, Value string }
	type result struct {
		Id         string
		Label      string
		Timestamps []int64
		Values     []float64
		StatusCode string
		Messages   []message `json:",omitempty"`
	}
	var results []*result
	byID := map[string]*result{}
	status := "Complete"
	if to < len(all) {
		status = "PartialData"
	}
	for _, p := range all[from:to] {
		r := byID[p.id]
		if r == nil {
			r = &result{Id: p.id, Label: p.id, StatusCode: status}
			byID[p.id] = r
			results = append(results, r)
		}
		r.Timestamps = append(r.Timestamps, p.ts)
		r.Values = append(r.Values, p.v)
	}
	for _, q := range req.Queries {
		if f.status == nil {
			break
		}
		code, msgs := f.status(q)
		if code == "" {
			continue
		}
		r := byID[q.ID]
		if r == nil {
			r = &result{Id: q.ID, Label: q.ID}
			byID[q.ID] = r
			results = append(results, r)
		}
		r.StatusCode = code
		for _, m := range msgs {
			r.Messages = append(r.Messages, message{m[0], m[1]})
		}
	}
	out := map[string]any{"MetricDataResults": results, "Messages": []any{}}
	if to < len(all) {
		out["NextToken"] = strconv.Itoa(to)
	}
	require.NoError(t, json.NewEncoder(w).Encode(out))
}

func (f *fakeCloudWatch) requests() []getRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]getRequest(nil), f.gets...)
}

// fakeConfig is an aws.Config pointed at url with static credentials.
func fakeConfig(url string) aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}
}

// collector gathers emitted points; it may fail the next emits.
type collector struct {
	mu     sync.Mutex
	points []record.Metric
	fail   int // how many emits to fail
	calls  int
	// windows are the periods (start timestamps, sorted) of each emit
	// accepted, in order.
	windows [][]int64
}

func (c *collector) emit(_ context.Context, pts []record.Metric) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.fail > 0 {
		c.fail--
		return fmt.Errorf("delivery refused")
	}
	c.points = append(c.points, pts...)
	var w []int64
	for _, p := range pts {
		w = append(w, p.Timestamp)
	}
	slices.Sort(w)
	c.windows = append(c.windows, slices.Compact(w))
	return nil
}

// emitted returns the periods of each emit accepted, in order.
func (c *collector) emitted() [][]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.windows)
}

// take returns the points gathered since the last take, rendered and
// sorted.
func (c *collector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.points))
	for i, m := range c.points {
		out[i] = render(m)
	}
	c.points = nil
	sort.Strings(out)
	return out
}

func render(m record.Metric) string {
	return fmt.Sprintf("%s %s ts=%d interval=%d value=%s tags=%s",
		m.Name, m.Kind, m.Timestamp, m.Interval, strconv.FormatFloat(m.Value, 'g', -1, 64), strings.Join(m.Tags, ","))
}

// minute0 is a period-aligned time for tests.
var minute0 = time.Unix(1_700_000_040, 0) // divisible by 60
