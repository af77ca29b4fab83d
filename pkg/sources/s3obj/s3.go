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

// ErrNotFound is wrapped by Open's error when the object, its bucket or the
// version asked for does not exist (deleted since it was announced, or a
// wrong name).
var ErrNotFound = errors.New("no such object")

// ErrDenied is wrapped by Open's error when S3 refuses this reader the
// object (access denied, or archived and not restored): asking again gets
// the same answer until someone changes a policy or restores the object.
var ErrDenied = errors.New("object refused")

// ErrChanged is wrapped by a Body's read error when the object was
// overwritten while it was being read: the rest would not match the start.
var ErrChanged = errors.New("object changed while being read")

// Permanent reports whether err is a failure to read an object that asking
// S3 again will not cure: no such key, bucket or version, access denied,
// or the object overwritten while it was read (the rest of what was being
// read is gone). Anything else (throttling, 5xx, the network) may pass.
func Permanent(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrDenied) || errors.Is(err, ErrChanged)
}

// maxResumes bounds the consecutive failed attempts to resume a body
// that made no progress in between.
const maxResumes = 5

// Body is an object's content as a stream that survives a broken
// connection: after a read error it asks S3 for the rest (Range from the
// offset reached, If-Match on the ETag) instead of starting again, so a
// multi-gigabyte object is read once even over a flaky network.
type Body struct {
	Bucket, Key  string
	VersionID    string // the version read; empty: the current one
	Size         int64  // -1 when S3 did not say
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
	return OpenVersion(ctx, g, bucket, key, "", optFns...)
}

// OpenVersion is Open of one version of the object (its current one when
// version is empty): a notification announces the version that was
// written, which a later write may since have replaced.
func OpenVersion(ctx context.Context, g Getter, bucket, key, version string, optFns ...func(*s3.Options)) (*Body, error) {
	b := &Body{Bucket: bucket, Key: key, VersionID: version, Size: -1, ctx: ctx, g: g, optFns: optFns, pace: resumeBackoff.Start()}
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
	if b.VersionID != "" {
		in.VersionId = aws.String(b.VersionID)
	}
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
			case "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchVersion":
				return nil, fmt.Errorf("get %s: %w: %w", b.name(), ErrNotFound, err)
			case "InvalidArgument":
				if b.VersionID != "" {
					// S3's answer to a version id it never issued.
					return nil, fmt.Errorf("get %s: %w: %w", b.name(), ErrNotFound, err)
				}
			case "AccessDenied", "Forbidden", "AllAccessDisabled", "InvalidObjectState":
				return nil, fmt.Errorf("get %s: %w: %w", b.name(), ErrDenied, err)
			case "PreconditionFailed":
				return nil, fmt.Errorf("get %s at byte %d: %w: %w", b.name(), b.off, ErrChanged, err)
			}
		}
		return nil, fmt.Errorf("get %s: %w", b.name(), err)
	}
	return out, nil
}

// name is the object's URL, with the version read when one was asked for.
func (b *Body) name() string {
	if b.VersionID != "" {
		return "s3://" + b.Bucket + "/" + b.Key + "?versionId=" + b.VersionID
	}
	return "s3://" + b.Bucket + "/" + b.Key
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			out, err := b.get()
			if err != nil {
				if Permanent(err) || b.ctx.Err() != nil || b.fails >= maxResumes {
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
