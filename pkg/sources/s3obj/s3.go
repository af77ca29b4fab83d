package s3obj

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
)

// Getter is the one S3 call the reader needs (*s3.Client has it).
type Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// ErrNotFound is wrapped by Open's error when the object or its bucket does
// not exist (deleted since it was announced, or a wrong name).
var ErrNotFound = errors.New("no such object")

// ErrChanged is wrapped by a Body's read error when the object was
// overwritten while it was being read: the rest would not match the start.
var ErrChanged = errors.New("object changed while being read")

// maxResumes bounds the consecutive failed attempts to resume a body
// that made no progress in between.
const maxResumes = 5

// Body is an object's content as a stream that survives a broken
// connection: after a read error it asks S3 for the rest (Range from the
// offset reached, If-Match on the ETag) instead of starting again, so a
// multi-gigabyte object is read once even over a flaky network.
type Body struct {
	Bucket, Key  string
	Size         int64 // -1 when S3 did not say
	ETag         string
	LastModified time.Time

	ctx    context.Context
	g      Getter
	optFns []func(*s3.Options)
	body   io.ReadCloser
	off    int64
	fails  int
	pace   *backoff.Backoff
}

// Open starts reading s3://bucket/key. optFns apply to every GetObject
// call (for example the bucket's region). ctx bounds the whole read.
func Open(ctx context.Context, g Getter, bucket, key string, optFns ...func(*s3.Options)) (*Body, error) {
	b := &Body{Bucket: bucket, Key: key, Size: -1, ctx: ctx, g: g, optFns: optFns, pace: resumeBackoff.Start()}
	out, err := b.get()
	if err != nil {
		return nil, err
	}
	b.body = out.Body
	if out.ContentLength != nil {
		b.Size = *out.ContentLength
	}
	b.ETag = aws.ToString(out.ETag)
	b.LastModified = aws.ToTime(out.LastModified)
	return b, nil
}

// resumeBackoff paces the attempts to resume a broken read: 200ms, doubling,
// up to 5s; without jitter, as a read resumes alone.
var resumeBackoff = backoff.Policy{InitialInterval: 200 * time.Millisecond, MaxInterval: 5 * time.Second, Multiplier: backoff.DefaultMultiplier}

func (b *Body) get() (*s3.GetObjectOutput, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.Bucket), Key: aws.String(b.Key)}
	if b.off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", b.off))
		if b.ETag != "" {
			in.IfMatch = aws.String(b.ETag)
		}
	}
	out, err := b.g.GetObject(b.ctx, in, b.optFns...)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			switch ae.ErrorCode() {
			case "NoSuchKey", "NotFound", "NoSuchBucket":
				return nil, fmt.Errorf("get s3://%s/%s: %w: %w", b.Bucket, b.Key, ErrNotFound, err)
			case "PreconditionFailed":
				return nil, fmt.Errorf("get s3://%s/%s at byte %d: %w: %w", b.Bucket, b.Key, b.off, ErrChanged, err)
			}
		}
		return nil, fmt.Errorf("get s3://%s/%s: %w", b.Bucket, b.Key, err)
	}
	return out, nil
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			out, err := b.get()
			if err != nil {
				if errors.Is(err, ErrChanged) || errors.Is(err, ErrNotFound) || b.ctx.Err() != nil || b.fails >= maxResumes {
					return 0, err
				}
				b.fails++
				if err := b.pace.Wait(b.ctx); err != nil {
					return 0, err
				}
				continue
			}
			b.body = out.Body
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if n > 0 {
			b.fails = 0
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			if b.Size < 0 || b.off >= b.Size {
				return n, io.EOF
			}
			err = fmt.Errorf("connection closed at byte %d of %d: %w", b.off, b.Size, io.ErrUnexpectedEOF)
		}
		_ = b.body.Close()
		b.body = nil
		if b.ctx.Err() != nil {
			return n, b.ctx.Err()
		}
		if b.fails >= maxResumes {
			return n, fmt.Errorf("read s3://%s/%s at byte %d (gave up after %d attempts to resume): %w", b.Bucket, b.Key, b.off, b.fails, err)
		}
		b.fails++
		if n > 0 {
			return n, nil // the next Read resumes
		}
		if err := b.pace.Wait(b.ctx); err != nil {
			return 0, err
		}
	}
}

// Offset is the number of bytes read so far.
func (b *Body) Offset() int64 { return b.off }

// Close releases the connection.
func (b *Body) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}
