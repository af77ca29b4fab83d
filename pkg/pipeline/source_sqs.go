package pipeline

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/sources/sqssource"
)

// Stats names of the SQS source's outputs.
const (
	SourceSQS   = "sqs"    // raw payloads carried by messages
	SourceSQSS3 = "sqs-s3" // events read from the S3 objects messages announce
)

// newSQSSource builds the SQS source (sources.sqs.queue_urls is set).
func (p *Pipeline) newSQSSource(ctx context.Context) (Source, error) {
	cfg := p.Config()
	c := cfg.Sources.SQS
	awsCfg, err := loadAWS(ctx, c.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("sources.sqs: %w", err)
	}
	sc := c
	sc.DefaultRegion = awsCfg.Region
	sc.RecordsPerBatch = cfg.Sources.Firehose.RecordsPerBatch
	sc.Object = objectConfig(cfg, cfg.Decode.MaxEventsPerBatch, p.streams)
	src, err := sqssource.New(sc, sqs.NewFromConfig(awsCfg), awsconf.S3(awsCfg),
		p.entryOutput(SourceSQS), p.entryOutput(SourceSQSS3),
		p.Logger().With("source", "sqs"), p.Metrics())
	if err != nil {
		return nil, fmt.Errorf("sources.sqs: %w", err)
	}
	return src.WithMemory(p.Memory()), nil
}
