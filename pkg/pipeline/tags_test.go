package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	v2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// restStage creates, in moto's API Gateway, a REST API with one GET method
// deployed to a stage, with their tags, and returns the API's id.
func restStage(t *testing.T, name, stage string, apiTags, stageTags map[string]string) string {
	t.Helper()
	ctx := context.Background()
	awsCfg, err := awsconf.Load(ctx, "")
	require.NoError(t, err)
	gw := apigateway.NewFromConfig(awsCfg)
	api, err := gw.CreateRestApi(ctx, &apigateway.CreateRestApiInput{Name: aws.String(name), Tags: apiTags})
	require.NoError(t, err)
	res, err := gw.GetResources(ctx, &apigateway.GetResourcesInput{RestApiId: api.Id})
	require.NoError(t, err)
	root := res.Items[0].Id
	_, err = gw.PutMethod(ctx, &apigateway.PutMethodInput{RestApiId: api.Id, ResourceId: root, HttpMethod: aws.String("GET"), AuthorizationType: aws.String("NONE")})
	require.NoError(t, err)
	_, err = gw.PutIntegration(ctx, &apigateway.PutIntegrationInput{RestApiId: api.Id, ResourceId: root, HttpMethod: aws.String("GET"), Type: "MOCK"})
	require.NoError(t, err)
	dep, err := gw.CreateDeployment(ctx, &apigateway.CreateDeploymentInput{RestApiId: api.Id})
	require.NoError(t, err)
	_, err = gw.CreateStage(ctx, &apigateway.CreateStageInput{RestApiId: api.Id, StageName: aws.String(stage), DeploymentId: dep.Id, Tags: stageTags})
	require.NoError(t, err)
	return *api.Id
}

// TestStageTagsFromAWS runs the pipeline against moto's API Gateway: the
// logs of a stage carry the console's tags (the API's merged with the
// stage's, the stage winning), its name and service, with no configuration
// beyond the AWS endpoint.
func TestStageTagsFromAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto_server")
	}
	moto.Start(t)
	apiID := restStage(t, "petstore", "prod", map[string]string{"team": "payments", "env": "staging", "service": "pets-api"},
		map[string]string{"env": "prod", "CostCenter": "Pets:42"})

	h := start(t, func(c *config.Config) {
		c.Enrich.AWSTags = true
		c.Enrich.MaxWait = 10 * time.Second // moto answers in time: no partial tags
	})
	group := fmt.Sprintf("API-Gateway-Execution-Logs_%s/prod", apiID)
	env := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":%q,"logStream":"s","subscriptionFilters":["f"],"logEvents":[`+
		`{"id":"1","timestamp":%d,"message":"(r1) Method completed with status: 200"}]}`, group, time.Now().UnixMilli())
	status, resp := firehoseRequest(t, h.url, "tags-1", recordsBody("tags-1", gz([]byte(env))), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)

	logs := h.intake.Logs()
	require.Len(t, logs, 1)
	tags := logs[0].Tags
	for _, want := range []string{"apiid:" + apiID, "apiname:petstore", "stage:prod", "region:us-east-1", "aws_account:123456789012",
		"team:payments", "env:prod", "costcenter:pets:42"} {
		assert.Contains(t, tags, want)
	}
	assert.NotContains(t, tags, "env:staging", "the stage's tag wins over the API's")
	assert.NotContains(t, tags, "gwpipe_tags:partial")
	assert.Equal(t, "pets-api", logs[0].Service, "service comes from the tags")

	// API Gateway's own CloudWatch metrics, from a metric stream, carry the
	// same console tags; REST metrics name the API by ApiName only.
	point := fmt.Sprintf(`{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"AWS/ApiGateway",`+
		`"metric_name":"CacheHitCount","dimensions":{"ApiName":"petstore","Stage":"prod"},"timestamp":%d,"value":{"max":1,"min":0,"sum":7,"count":60},"unit":"Count"}`,
		time.Now().Add(-2*time.Minute).Truncate(time.Minute).UnixMilli())
	status, resp = firehoseRequest(t, h.url, "tags-2", recordsBody("tags-2", []byte(point+"\n")), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	var hit *fakeintake.SeriesPoint
	for _, p := range h.intake.Series() {
		if p.Metric == "aws.apigateway.cache_hit_count" {
			hit = &p
		}
	}
	require.NotNil(t, hit, "acknowledged only once the metrics API accepted the point")
	assert.Equal(t, 7.0, hit.Value)
	for _, want := range []string{"apiid:" + apiID, "apiname:petstore", "stage:prod", "team:payments", "env:prod"} {
		assert.Contains(t, hit.Tags, want)
	}
}

// TestLogTagsAgreeWithMetricTags: an access log whose own fields name its
// API and stage (apiId, stage), in a log group that does not, carries them
// as tags whatever the AWS settings — enrich.aws_tags off, or on without
// AWS access, with or without a region to ask AWS in — and the metrics
// derived from the same logs carry the same values (compared at the fake
// intake).
func TestLogTagsAgreeWithMetricTags(t *testing.T) {
	cases := []struct {
		name string
		aws  bool
	}{{"aws_tags off", false}, {"no AWS access", true}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.aws {
				moto.Unreachable(t)
			}
			h := start(t, func(cfg *config.Config) {
				cfg.Enrich.AWSTags = c.aws
				cfg.Enrich.MaxWait = 50 * time.Millisecond
			})
			apis := map[string]string{"a1b2c3d4e5": "prod", "f6g7h8i9j0": "dev"}
			n := 0
			// With the delivery stream's ARN the records have a region; a
			// request without it leaves them none (AWS cannot be asked).
			for _, arn := range []string{"arn:aws:firehose:us-east-1:123456789012:deliverystream/test", ""} {
				var events []string
				for api, stage := range apis {
					for range 3 {
						n++
						events = append(events, fmt.Sprintf(`{"id":"%d","timestamp":%d,"message":"{\"apiId\":\"%s\",\"stage\":\"%s\",\"requestId\":\"r%d\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":\"200\",\"responseLatency\":\"12\"}"}`,
							n, time.Now().UnixMilli(), api, stage, n))
					}
				}
				env := `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"api-gateway-access-logs","logStream":"s","subscriptionFilters":["f"],"logEvents":[` +
					strings.Join(events, ",") + `]}`
				id := fmt.Sprintf("own-tags-%d", n)
				status, resp := firehoseRequest(t, h.url, id, recordsBody(id, gz([]byte(env))), map[string]string{"X-Amz-Firehose-Source-Arn": arn})
				require.Equal(t, http.StatusOK, status, "%v", resp)
			}
			// Shutting down flushes the open metric windows.
			h.shutdown(t)

			own := func(tags []string) map[string]string {
				m := map[string]string{}
				for _, tag := range tags {
					k, v, _ := strings.Cut(tag, ":")
					switch k {
					case "apiid", "stage", "region", "aws_account":
						m[k] = v
					}
				}
				return m
			}
			logs := h.intake.Logs()
			require.Len(t, logs, n)
			// The identity of each series of count points, by API and region.
			metrics := map[[2]string]map[string]string{}
			counted := map[[2]string]float64{}
			for _, p := range h.intake.Series() {
				if p.Metric != derive.DefaultNamespace+derive.NameCount {
					continue
				}
				tags := own(p.Tags)
				k := [2]string{tags["apiid"], tags["region"]}
				if prev, ok := metrics[k]; ok {
					assert.Equal(t, prev, tags, "one identity per API and region")
				}
				metrics[k] = tags
				counted[k] += p.Value
			}
			for _, l := range logs {
				tags := own(l.Tags)
				api, _ := attr(l, "apigateway.apiId").(string)
				require.Contains(t, apis, api)
				assert.Equal(t, api, tags["apiid"], "the log carries its own apiId: %v", l.Tags)
				assert.Equal(t, apis[api], tags["stage"], "and its own stage: %v", l.Tags)
				assert.Equal(t, "123456789012", tags["aws_account"])
				assert.Equal(t, tags, metrics[[2]string{api, tags["region"]}], "the log and the metrics derived from it agree")
			}
			for api := range apis {
				for _, region := range []string{"us-east-1", ""} {
					assert.Equal(t, 3.0, counted[[2]string{api, region}], "every log of %s (region %q) counted", api, region)
				}
			}
		})
	}
}

// TestServiceAndSourceOfOtherLogs: through the Firehose endpoint, only API
// Gateway's logs get service apigateway (datadog.service); a log of another
// AWS service is named as the Datadog Forwarder names it.
func TestServiceAndSourceOfOtherLogs(t *testing.T) {
	h := start(t)
	cases := []struct{ group, stream, source, service string }{
		{"/aws/api-gateway/a1b2c3d4e5/prod", "s", "apigateway", "apigateway"},
		{"API-Gateway-Execution-Logs_a1b2c3d4e5/prod", "s", "apigateway", "apigateway"},
		{"/aws/rds/instance/orders/postgresql", "orders.0", "postgresql", "postgresql"},
		{"/aws/rds/cluster/aurora-1/error", "s", "rds", "rds"},
		{"/aws/lambda/Checkout-Fn", "2026/11/29/[$LATEST]0123456789abcdef0123456789abcdef", "lambda", "checkout-fn"},
		{"/ecs/orders", "ecs/orders/1", "cloudwatch", "cloudwatch"},
	}
	var datas [][]byte
	for i, c := range cases {
		msg := "a log line"
		if c.source == "apigateway" {
			msg = `{\"requestId\":\"r` + fmt.Sprint(i) + `\",\"status\":200}`
			if strings.HasPrefix(c.group, "API-") {
				msg = "(r" + fmt.Sprint(i) + ") Method completed with status: 200"
			}
		}
		datas = append(datas, gz([]byte(fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":%q,"logStream":%q,"subscriptionFilters":["f"],"logEvents":[{"id":"%d","timestamp":%d,"message":"%s"}]}`,
			c.group, c.stream, i, time.Now().UnixMilli(), msg))))
	}
	status, resp := firehoseRequest(t, h.url, "svc", recordsBody("svc", datas...), nil)
	require.Equal(t, http.StatusOK, status, "%v", resp)
	logs := h.intake.Logs()
	require.Len(t, logs, len(cases))
	byGroup := map[string]fakeintake.Log{}
	for _, l := range logs {
		byGroup[l.Hostname] = l
	}
	for _, c := range cases {
		l, ok := byGroup[c.group]
		require.True(t, ok, c.group)
		assert.Equal(t, c.source, l.Source, "ddsource of %s", c.group)
		assert.Equal(t, c.service, l.Service, "service of %s", c.group)
	}
}

// TestRequestCountedOnceFromBothLogs: a stage's execution logs arriving
// before its access logs (another Firehose request, as after every start)
// do not count its requests a second time; a stage with execution logs only
// has each request counted once, from its summary.
func TestRequestCountedOnceFromBothLogs(t *testing.T) {
	h := start(t)
	arn := map[string]string{"X-Amz-Firehose-Source-Arn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/test"}
	send := func(id, group string, messages []string) {
		t.Helper()
		events := make([]string, len(messages))
		for i, m := range messages {
			events[i] = fmt.Sprintf(`{"id":"%s-%d","timestamp":%d,"message":%q}`, id, i, time.Now().UnixMilli(), m)
		}
		env := fmt.Sprintf(`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":%q,"logStream":"s","subscriptionFilters":["f"],"logEvents":[%s]}`,
			group, strings.Join(events, ","))
		status, resp := firehoseRequest(t, h.url, id, recordsBody(id, gz([]byte(env))), arn)
		require.Equal(t, http.StatusOK, status, "%v", resp)
	}
	execLines := func(prefix string) []string {
		var out []string
		for i := range 5 {
			out = append(out, fmt.Sprintf("(%s%d) Method completed with status: 200", prefix, i))
		}
		return out
	}
	send("exec-prod", "API-Gateway-Execution-Logs_a1b2c3d4e5/prod", execLines("p"))
	send("exec-dev", "API-Gateway-Execution-Logs_a1b2c3d4e5/dev", execLines("d"))
	var access []string
	for i := range 5 {
		access = append(access, fmt.Sprintf(`{"apiId":"a1b2c3d4e5","stage":"prod","requestId":"p%d","httpMethod":"GET","resourcePath":"/pets","status":"200","responseLatency":"12"}`, i))
	}
	send("access-prod", "api-gateway-access-logs", access)
	h.shutdown(t) // flushes the open windows and decides the waiting summaries

	counted := map[string]float64{}
	for _, p := range h.intake.Series() {
		if p.Metric != derive.DefaultNamespace+derive.NameCount {
			continue
		}
		for _, tag := range p.Tags {
			if stage, ok := strings.CutPrefix(tag, "stage:"); ok {
				counted[stage] += p.Value
			}
		}
	}
	assert.Equal(t, map[string]float64{"prod": 5, "dev": 5}, counted, "each request counted once")
}

// TestStaticTagsOnAllowlistedMetrics: metrics.tag_allowlist copies the
// static tags (enrich.tags, DD_TAGS) onto the derived metrics, as it does
// the tags AWS gives a stage, though only the logs deliverer adds them to
// logs; the keys the allowlist does not name stay on the logs only. A
// reload of enrich.tags applies to the metrics as to the logs.
func TestStaticTagsOnAllowlistedMetrics(t *testing.T) {
	h := start(t, func(c *config.Config) {
		c.Enrich.Tags = []string{"team:payments", "env:prod", "cost_center:42"} // the last as DD_TAGS adds it
		c.Metrics.TagAllowlist = []string{"team", "cost_center"}
	})
	send := func(id string, n int) {
		var events []string
		for i := range n {
			events = append(events, fmt.Sprintf(`{"id":"%s-%d","timestamp":%d,"message":"{\"apiId\":\"a1b2c3d4e5\",\"stage\":\"prod\",\"requestId\":\"%s-%d\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets\",\"status\":\"200\",\"responseLatency\":\"12\"}"}`,
				id, i, time.Now().UnixMilli(), id, i))
		}
		env := `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"api-gateway-access-logs","logStream":"s","subscriptionFilters":["f"],"logEvents":[` +
			strings.Join(events, ",") + `]}`
		status, resp := firehoseRequest(t, h.url, id, recordsBody(id, gz([]byte(env))), nil)
		require.Equal(t, http.StatusOK, status, "%v", resp)
	}
	send("static-1", 3)
	next := h.p.RunningConfig()
	next.Enrich.Tags = []string{"team:search"}
	rep, err := h.p.Reload(context.Background(), next)
	require.NoError(t, err)
	assert.Equal(t, []string{"enrich.tags"}, rep.Applied)
	send("static-2", 2)
	h.shutdown(t) // flushes the open windows

	logs := h.intake.Logs()
	require.Len(t, logs, 5)
	byTeam := map[string]float64{}
	for _, l := range logs {
		if slices.Contains(l.Tags, "team:search") {
			byTeam["logs team:search"]++
		} else {
			assert.Subset(t, l.Tags, []string{"team:payments", "env:prod", "cost_center:42"})
			byTeam["logs team:payments"]++
		}
	}
	for _, p := range h.intake.Series() {
		if p.Metric != derive.DefaultNamespace+derive.NameCount {
			continue
		}
		assert.Subset(t, p.Tags, []string{"apiid:a1b2c3d4e5", "stage:prod"})
		assert.NotContains(t, p.Tags, "env:prod", "env is not allowlisted")
		if slices.Contains(p.Tags, "team:search") {
			assert.NotContains(t, p.Tags, "cost_center:42", "reloaded away")
			byTeam["metrics team:search"] += p.Value
		} else {
			assert.Subset(t, p.Tags, []string{"team:payments", "cost_center:42"})
			byTeam["metrics team:payments"] += p.Value
		}
	}
	assert.Equal(t, map[string]float64{"logs team:payments": 3, "logs team:search": 2, "metrics team:payments": 3, "metrics team:search": 2}, byTeam)
}

// customFormatStage creates, in moto, an HTTP API whose stage writes access
// logs in a custom format to its own log group (named after no API id, so
// only the stage's accessLogSettings tell what the lines are), and returns
// the API's id and the log group.
func customFormatStage(t *testing.T) (apiID, group string) {
	t.Helper()
	ctx := context.Background()
	awsCfg, err := awsconf.Load(ctx, "")
	require.NoError(t, err)
	gw := apigatewayv2.NewFromConfig(awsCfg)
	api, err := gw.CreateApi(ctx, &apigatewayv2.CreateApiInput{Name: aws.String("orders"), ProtocolType: "HTTP"})
	require.NoError(t, err)
	group = "/custom/orders-" + *api.ApiId
	_, err = gw.CreateStage(ctx, &apigatewayv2.CreateStageInput{ApiId: api.ApiId, StageName: aws.String("live"),
		AccessLogSettings: &v2types.AccessLogSettings{
			DestinationArn: aws.String("arn:aws:logs:us-east-1:123456789012:log-group:" + group),
			Format:         aws.String("$context.requestId $context.identity.sourceIp $context.httpMethod $context.path $context.status"),
		}})
	require.NoError(t, err)
	return *api.ApiId, group
}

func customFormatEnvelope(group string, ids ...string) []byte {
	var events []string
	for _, id := range ids {
		events = append(events, fmt.Sprintf(`{"id":%q,"timestamp":%d,"message":"%s 203.0.113.7 GET /orders 404"}`, id, time.Now().UnixMilli(), id))
	}
	return fmt.Appendf(nil, `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":%q,"logStream":"s","subscriptionFilters":["f"],"logEvents":[%s]}`,
		group, strings.Join(events, ","))
}

// assertParsedCustom: the log was parsed with the format its stage has in
// AWS, not delivered as an unknown CloudWatch log.
func assertParsedCustom(t *testing.T, l fakeintake.Log, apiID string) {
	t.Helper()
	assert.Equal(t, "apigateway", l.Source, "%s: an API Gateway access log", l.Message)
	assert.EqualValues(t, 404, attr(l, "http.status_code"), "%s: parsed with the stage's format", l.Message)
	assert.Equal(t, "/orders", attr(l, "http.url_details.path"), "%s", l.Message)
	assert.Contains(t, l.Tags, "apiid:"+apiID)
}

// TestCustomFormatLearnedFromAWS: the lines of a stage's custom access-log
// format, in a log group that names no API, are parsed with the format
// read from the stage in AWS — from the very first one, which reaches parse
// before anything was read from AWS, and in a fleet whose parse and enrich
// stages run in different workers — and counted by the metrics from logs.
func TestCustomFormatLearnedFromAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto_server")
	}
	moto.Start(t)

	t.Run("one process, first line", func(t *testing.T) {
		apiID, group := customFormatStage(t)
		h := start(t, func(c *config.Config) {
			c.Enrich.AWSTags = true
			c.Enrich.MaxWait = 10 * time.Second // the first batch waits for the read: moto answers in time
			c.Metrics.AllowedLateness = time.Hour
		})
		status, resp := firehoseRequest(t, h.url, "cf-1", recordsBody("cf-1", gz(customFormatEnvelope(group, "c1"))), nil)
		require.Equal(t, http.StatusOK, status, "%v", resp)
		h.shutdown(t)
		logs := h.intake.Logs()
		require.Len(t, logs, 1)
		assertParsedCustom(t, logs[0], apiID)
		var count float64
		for _, p := range h.intake.Series() {
			if p.Metric == "apigateway.logs.count" && slices.Contains(p.Tags, "apiid:"+apiID) {
				count += p.Value
			}
		}
		assert.Equal(t, 1.0, count, "the request is counted")
	})

	t.Run("fleet, parse and enrich apart", func(t *testing.T) {
		apiID, group := customFormatStage(t)
		f := newFleet(t, brokers[0].env(t))
		aws := []string{"GWPIPE_ENRICH_AWS_TAGS=true", "GWPIPE_ENRICH_MAX_WAIT=10s"}
		f.startWith("enrich,deliver-logs", append(aws, "GWPIPE_SOURCES_FIREHOSE_ENABLED=false")...)
		addr := freeAddr(t)
		f.ingest = "http://" + addr + "/"
		f.startWith("ingest,decode,parse", append(aws, "GWPIPE_SOURCES_FIREHOSE_LISTEN="+addr)...)
		for i, ids := range [][]string{{"f1"}, {"f2", "f3"}} {
			id := fmt.Sprintf("cf-fleet-%d", i)
			status, resp := firehoseRequest(t, f.ingest, id, recordsBody(id, gz(customFormatEnvelope(group, ids...))), nil)
			require.Equal(t, http.StatusOK, status, "%v", resp)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		require.NoError(t, f.intake.WaitLogs(ctx, 3), "acknowledged once on the broker: delivered after")
		logs := f.intake.Logs()
		require.Len(t, logs, 3)
		for _, l := range logs {
			assertParsedCustom(t, l, apiID)
		}
	})
}
