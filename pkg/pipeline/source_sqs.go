package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/sources/sqssource"
)

// Stats names of the SQS source's outputs.
const (
	SourceSQS   = "sqs"    // raw payloads carried by messages
	SourceSQSS3 = "sqs-s3" // events read from the S3 objects messages announce
)

func init() { sourceFactories = append(sourceFactories, newSQSSource) }

// newSQSSource builds the SQS source when sources.sqs.queue_urls is set.
func newSQSSource(p *Pipeline) (Source, error) {
	cfg := p.Config()
	c := cfg.Sources.SQS
	if len(c.QueueURLs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	awsCfg, err := awsconf.Load(ctx, c.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("sources.sqs: %w", err)
	}
	topics := cfg.Pipeline.Topics
	sc := c
	sc.DefaultRegion = awsCfg.Region
	sc.RecordsPerBatch = cfg.Sources.Firehose.RecordsPerBatch
	sc.Object = objectConfig(cfg, cfg.Decode.MaxEventsPerBatch, p.streams)
	src, err := sqssource.New(sc, sqs.NewFromConfig(awsCfg), awsconf.S3(awsCfg),
		p.Output(SourceSQS, topics.Raw), p.Output(SourceSQSS3, topics.Decoded),
		p.Logger().With("source", "sqs"), p.Metrics())
	if err != nil {
		return nil, fmt.Errorf("sources.sqs: %w", err)
	}
	return src.WithMemory(p.Memory()), nil
}
