package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3API is the part of the S3 client the store uses (*s3.Client).
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// MaxS3Value bounds what Get reads: the store holds small documents
// (leases, checkpoints, markers, a poller's state) and dead-letter objects
// it never reads back through Get.
const MaxS3Value = 64 << 20

// S3 is a Store in an S3 bucket, under a prefix: a key is an object, its
// version the object's ETag. Create is PutObject with If-None-Match: *,
// Update PutObject with If-Match: <ETag> — S3's conditional writes, which
// it decides atomically (general purpose buckets, since 2024). S3 answers
// a lost race 412 Precondition Failed, or 409 ConditionalRequestConflict
// when two conditional writes of one key overlap; both are ErrConflict.
type S3 struct {
	client         S3API
	bucket, prefix string
	// ContentType of the objects written (default application/json).
	ContentType string
}

// NewS3 returns the store of s3://bucket/prefix. The prefix is used as
// given: end it with "/" for a folder.
func NewS3(client S3API, bucket, prefix string) *S3 {
	return &S3{client: client, bucket: bucket, prefix: prefix, ContentType: "application/json"}
}

// Name implements Store.
func (s *S3) Name() string { return "s3://" + s.bucket + "/" + s.prefix }

// Key is the object key of a store key.
func (s *S3) Key(key string) string { return s.prefix + key }

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) ([]byte, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(key))})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || httpStatus(err) == http.StatusNotFound && !noSuchBucket(err) {
			return nil, "", ErrNotFound
		}
		return nil, "", fmt.Errorf("get %s%s: %w", s.Name(), key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxS3Value+1))
	if err != nil {
		return nil, "", fmt.Errorf("get %s%s: %w", s.Name(), key, err)
	}
	if len(data) > MaxS3Value {
		return nil, "", fmt.Errorf("get %s%s: larger than %d bytes: not a document of gwpipe's", s.Name(), key, MaxS3Value)
	}
	return data, aws.ToString(out.ETag), nil
}

// Create implements Store.
func (s *S3) Create(ctx context.Context, key string, value []byte) (string, error) {
	return s.put(ctx, key, value, func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
}

// Update implements Store.
func (s *S3) Update(ctx context.Context, key string, value []byte, version string) (string, error) {
	if version == "" {
		return "", fmt.Errorf("update %s%s: %w (no version to match)", s.Name(), key, ErrConflict)
	}
	return s.put(ctx, key, value, func(in *s3.PutObjectInput) { in.IfMatch = aws.String(version) })
}

func (s *S3) put(ctx context.Context, key string, value []byte, cond func(*s3.PutObjectInput)) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.Key(key)),
		Body: bytes.NewReader(value), ContentLength: aws.Int64(int64(len(value))),
		ContentType: aws.String(s.ContentType),
	}
	cond(in)
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		if conflict(err) {
			return "", fmt.Errorf("put %s%s: %w", s.Name(), key, ErrConflict)
		}
		return "", fmt.Errorf("put %s%s: %w", s.Name(), key, err)
	}
	return aws.ToString(out.ETag), nil
}

// conflict reports S3's answers to a conditional write that lost: 412
// (the condition failed), 409 ConditionalRequestConflict (another
// conditional write of the key at the same time), and 404 for If-Match on
// a key that no longer exists.
func conflict(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey":
			return true
		}
	}
	switch httpStatus(err) {
	case http.StatusPreconditionFailed:
		return true
	case http.StatusConflict:
		return errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "Conditional")
	case http.StatusNotFound:
		return !noSuchBucket(err)
	}
	return false
}

func noSuchBucket(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket"
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
