package dryrun

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/stages/filter"
)

const datadogLine = `{"apiId":"a1b2c3d4e5","stage":"prod","requestId":"c0475a28-8de8-11e7-8d3f-4183da788f0f","ip":"203.0.113.7","caller":"-","user":"-","requestTime":1732850000000,"httpMethod":"GET","resourcePath":"/pets/{petId}","status":404,"protocol":"HTTP/1.1","responseLength":512}`

func newRunner(t *testing.T, c config.Config) *Runner {
	t.Helper()
	r, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.Close(context.Background()) })
	return r
}

// decodeLog reads one delivered log into a generic map.
func decodeLog(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("delivered log %s: %v", raw, err)
	}
	return m
}

func TestRunAccessLineDeliveredWithStaticTags(t *testing.T) {
	c := config.DefaultConfig()
	c.Enrich.Tags = []string{"env:test", "team:edge"}
	r := newRunner(t, c)
	res, err := r.Run(context.Background(), Input{Data: []byte(datadogLine), LogGroup: "api-gateway-datadog", Account: "123456789012", Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1 || len(res.Dead) != 0 {
		t.Fatalf("got %d logs and %d dead letters, want 1 log: %+v", len(res.Logs), len(res.Dead), res)
	}
	m := decodeLog(t, res.Logs[0])
	if m["message"] != datadogLine || m["ddsource"] != "apigateway" || m["hostname"] != "api-gateway-datadog" || m["status"] != "warn" {
		t.Fatalf("log %s", res.Logs[0])
	}
	http, _ := m["http"].(map[string]any)
	if http["status_code"] != float64(404) || http["method"] != "GET" {
		t.Fatalf("http attributes %v in %s", http, res.Logs[0])
	}
	tags, _ := m["ddtags"].(string)
	for _, want := range []string{"env:test", "team:edge", "aws_account:123456789012", "region:eu-west-1"} {
		if !strings.Contains(","+tags+",", ","+want+",") {
			t.Errorf("ddtags %q lacks %s", tags, want)
		}
	}
	if _, ok := m["gwpipe"]; ok {
		t.Errorf("a parsed line carries gwpipe attributes: %s", res.Logs[0])
	}
}

func TestRunConfiguredFormatAndParseError(t *testing.T) {
	c := config.DefaultConfig()
	c.Parse.Formats = []apigw.FormatRule{{LogGroup: "*", Format: `ip=$context.identity.sourceIp st=$context.status`}}
	r := newRunner(t, c)
	res, err := r.Run(context.Background(), Input{Data: []byte("ip=203.0.113.7 st=503")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1 {
		t.Fatalf("got %+v", res)
	}
	m := decodeLog(t, res.Logs[0])
	if m["status"] != "error" || m["network"].(map[string]any)["client"].(map[string]any)["ip"] != "203.0.113.7" {
		t.Fatalf("format not applied: %s", res.Logs[0])
	}
	res, err = r.Run(context.Background(), Input{Data: []byte("not what the format says")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1 {
		t.Fatalf("got %+v", res)
	}
	g, _ := decodeLog(t, res.Logs[0])["gwpipe"].(map[string]any)
	if g["parse_error"] == nil {
		t.Fatalf("an unparseable line is delivered without its parse error: %s", res.Logs[0])
	}
}

// A CloudWatch envelope, gzipped as subscriptions send it, gives one log
// per event, with the envelope's log group and owner.
func TestRunEnvelope(t *testing.T) {
	r := newRunner(t, config.DefaultConfig())
	env := map[string]any{
		"messageType": "DATA_MESSAGE", "owner": "111122223333", "logGroup": "API-Gateway-Execution-Logs_h733q2j6gb/Prod", "logStream": "s",
		"subscriptionFilters": []string{"f"},
		"logEvents": []map[string]any{
			{"id": "1", "timestamp": 1732850000000, "message": "(515f1e99-39db-11e9-9e96-01e5c04505b9) Starting execution for request: 515f1e99-39db-11e9-9e96-01e5c04505b9"},
			{"id": "2", "timestamp": 1732850000001, "message": "(515f1e99-39db-11e9-9e96-01e5c04505b9) HTTP Method: POST, Resource Path: /verifyReceipt"},
		},
	}
	js, _ := json.Marshal(env)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(js)
	_ = zw.Close()
	res, err := r.Run(context.Background(), Input{Data: gz.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 2 {
		t.Fatalf("got %d logs, want 2: %+v", len(res.Logs), res)
	}
	for i, raw := range res.Logs {
		m := decodeLog(t, raw)
		if m["hostname"] != "API-Gateway-Execution-Logs_h733q2j6gb/Prod" || m["id"] != []string{"1", "2"}[i] {
			t.Fatalf("log %d: %s", i, raw)
		}
		if tags, _ := m["ddtags"].(string); !strings.Contains(tags, "aws_account:111122223333") || !strings.Contains(tags, "apiid:h733q2j6gb") {
			t.Errorf("log %d tags %q", i, tags)
		}
	}
}

// A line that is not text is dead-lettered, with the reason, never
// delivered.
func TestRunDeadLetter(t *testing.T) {
	r := newRunner(t, config.DefaultConfig())
	res, err := r.Run(context.Background(), Input{Data: []byte("bin\x00\x01\x02ary\x00\x00\x00\x00\x00")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 0 || len(res.Dead) != 1 || res.Dead[0].Stage != "decode" || res.Dead[0].Reason == "" {
		t.Fatalf("got %+v", res)
	}
	// The next input's result holds only its own.
	res, err = r.Run(context.Background(), Input{Data: []byte(datadogLine)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Logs) != 1 || len(res.Dead) != 0 {
		t.Fatalf("second input got %+v", res)
	}
}

// Offline turns off everything that reaches outside the process.
func TestOfflineReachesNothingOutside(t *testing.T) {
	c := config.DefaultConfig()
	c.Transport.Kind = "nats"
	c.Sources.SQS.QueueURLs = []string{"https://sqs.eu-west-1.amazonaws.com/1/q"}
	c.Metrics.Telemetry.Enabled = true
	c.Admin.HealthListen = ":9000"
	o := Offline(c, "http://127.0.0.1:1", "/tmp/x")
	if o.Transport.Kind != "memory" || o.Sources.Firehose.Enabled || len(o.Sources.SQS.QueueURLs) > 0 || o.Enrich.AWSTags ||
		o.Metrics.Enabled || o.Metrics.Telemetry.Enabled || o.Admin.Listen != "" || o.Admin.HealthListen != "" ||
		o.LogsURL() != "http://127.0.0.1:1/api/v2/logs" || o.APIURL() != "http://127.0.0.1:1" || o.DLQ.Dir != "/tmp/x" {
		t.Fatalf("offline configuration %+v", o)
	}
}

// What the filters drop and sample out is counted per input.
func TestRunCountsFilteredLogs(t *testing.T) {
	c := config.DefaultConfig()
	c.Filters.Drop = []filter.Matcher{{Route: "/health"}}
	zero := 0.0
	c.Filters.Sample = []filter.Sample{{Matcher: filter.Matcher{Route: "/pets"}, Rate: &zero}}
	r := newRunner(t, c)
	for _, tc := range []struct {
		route               string
		logs                int
		dropped, sampledOut int64
	}{{"/health", 0, 1, 0}, {"/pets", 0, 0, 1}, {"/orders", 1, 0, 0}} {
		res, err := r.Run(context.Background(), Input{LogGroup: "/aws/api-gateway/shop", Data: []byte(`{"requestId":"r","resourcePath":"` + tc.route + `","status":"200"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Logs) != tc.logs || res.Dropped != tc.dropped || res.SampledOut != tc.sampledOut {
			t.Fatalf("%s: %d logs, %d dropped, %d sampled out", tc.route, len(res.Logs), res.Dropped, res.SampledOut)
		}
	}
}
