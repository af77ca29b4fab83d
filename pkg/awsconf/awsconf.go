// Package awsconf is the one way gwpipe loads its AWS SDK configuration and
// builds the clients more than one component shares, so that every AWS
// client (the SQS source, the S3 object readers, the SQS/SNS transport,
// enrich's tag reads, the CloudWatch poller, replay) honours the same
// environment.
package awsconf

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Load loads the SDK's default chain (environment, shared files, instance
// and task roles), which honours AWS_REGION, AWS_PROFILE and
// AWS_ENDPOINT_URL (and its per-service forms such as AWS_ENDPOINT_URL_S3);
// a non-empty region overrides the chain's for this use (a bucket's or a
// queue's region). It reads files and may ask an instance's metadata
// service: call it when starting, not when building.
func Load(ctx context.Context, region string) (aws.Config, error) {
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

// S3 returns an S3 client for cfg. With a custom endpoint (an emulator, an
// S3-compatible store, a VPC endpoint by address) it addresses buckets by
// path, since bucket.host names do not resolve there.
func S3(cfg aws.Config) *s3.Client {
	custom := cfg.BaseEndpoint != nil || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = o.UsePathStyle || custom
		// Objects are read as streams and ranges, which S3 does not
		// checksum whole: the SDK would log that for every GET.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}
