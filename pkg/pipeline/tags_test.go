package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/fakeintake"
	"github.com/gwpipe/gwpipe/pkg/internal/moto"
)

// restStage creates, in moto's API Gateway, a REST API with one GET method
// deployed to a stage, with their tags, and returns the API's id.
func restStage(t *testing.T, name, stage string, apiTags, stageTags map[string]string) string {
	t.Helper()
	ctx := context.Background()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
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
