package awsconf

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// isolate points the SDK at no shared files and a known environment.
func isolate(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_REGION", "us-east-2")
}

func TestLoadHonoursTheEnvironmentAndARegionOverride(t *testing.T) {
	isolate(t)
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
	cfg, err := Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-east-2" {
		t.Errorf("region %q, want AWS_REGION's us-east-2", cfg.Region)
	}
	if got := aws.ToString(cfg.BaseEndpoint); got != "http://127.0.0.1:5000" {
		t.Errorf("endpoint %q, want AWS_ENDPOINT_URL's", got)
	}
	cfg, err = Load(context.Background(), "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" {
		t.Errorf("region %q, want the override eu-west-1", cfg.Region)
	}
}

func TestS3AddressesBucketsByPathOnlyWithACustomEndpoint(t *testing.T) {
	isolate(t)
	if S3(aws.Config{Region: "us-east-1"}).Options().UsePathStyle {
		t.Error("path-style addressing on AWS itself")
	}
	if !S3(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:9000")}).Options().UsePathStyle {
		t.Error("virtual-host addressing on a custom endpoint")
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
	if !S3(aws.Config{Region: "us-east-1"}).Options().UsePathStyle {
		t.Error("virtual-host addressing with AWS_ENDPOINT_URL_S3")
	}
}
