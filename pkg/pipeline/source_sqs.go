package pipeline

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

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
	awsCfg, err := AWSConfig(ctx, c.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("sources.sqs: %w", err)
	}
	topics := cfg.Pipeline.Topics
	sc := c
	sc.DefaultRegion = awsCfg.Region
	sc.RecordsPerBatch = cfg.Sources.Firehose.RecordsPerBatch
	sc.Object = objectConfig(cfg, cfg.Decode.MaxEventsPerBatch, p.streams)
	src, err := sqssource.New(sc, sqs.NewFromConfig(awsCfg), NewS3Client(awsCfg),
		p.Output(SourceSQS, topics.Raw), p.Output(SourceSQSS3, topics.Decoded),
		p.Logger().With("source", "sqs"), p.Metrics())
	if err != nil {
		return nil, fmt.Errorf("sources.sqs: %w", err)
	}
	return src.WithMemory(p.Memory()), nil
}

// AWSConfig loads the AWS SDK configuration gwpipe's AWS clients use: the
// SDK's default chain (environment, shared files, instance roles), which
// honours AWS_REGION and AWS_ENDPOINT_URL; a non-empty region overrides
// the chain's.
func AWSConfig(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// NewS3Client returns an S3 client for cfg. With a custom endpoint (an
// emulator, a VPC endpoint by address) it addresses buckets by path, since
// bucket.host names do not resolve there.
func NewS3Client(cfg aws.Config) *s3.Client {
	custom := cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = o.UsePathStyle || custom
		// Objects are read as streams and ranges, which S3 does not
		// checksum whole: the SDK would log that for every GET.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}
