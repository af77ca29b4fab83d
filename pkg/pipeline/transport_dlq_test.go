package pipeline

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// A worker on SQS/SNS tells what waits in its stages' dead-letter queues
// (received max_receive_count times, read by nobody): in /status and in
// the exit summary, which otherwise would say nothing of records that are
// not at Datadog.
func TestSQSFleetCountsItsTransportDeadLetters(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto_server")
	}
	cfg := sqsFleetConfig(t)
	cfg.Transport.SQS.TopicPrefix = "parked-"
	cfg.Pipeline.Runtime.BacklogInterval = 50 * time.Millisecond
	p, err := New(cfg, []string{StageDecode}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, p.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, p.Shutdown(sctx))
	})

	// What SQS's redrive policy moved aside, as it does after the last
	// receive a message is allowed.
	awsCfg, err := awsconf.Load(ctx, moto.Region)
	require.NoError(t, err)
	client := sqs.NewFromConfig(awsCfg)
	url, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("parked-" + StageDecode + "-raw-dlq")})
	require.NoError(t, err)
	for range 3 {
		_, err = client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String("parked")})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return p.Status().Gauges["transport.dead_letter_backlog."+StageDecode] == 3 }, 20*time.Second, 20*time.Millisecond,
		"asked with the backlog: %v", p.Status().Gauges)
	got := summaryLines(t, p)
	assert.Contains(t, got["transport dead letters"], "3 messages in the SQS dead-letter queues (decode 3)")
}
