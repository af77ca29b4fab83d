package s3obj

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/backoff"
	"github.com/gwpipe/gwpipe/pkg/testkit/corpus"
)

// flakyS3 serves one object and cuts every response after cut bytes.
type flakyS3 struct {
	mu      sync.Mutex
	data    []byte
	etag    string
	cut     int
	ranges  []string
	changed bool // the object was overwritten after the first GET
	calls   int
}

func (f *flakyS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if aws.ToString(in.Key) != "k" {
		return nil, &smithy.GenericAPIError{Code: "NoSuchKey", Message: "The specified key does not exist."}
	}
	off := 0
	if r := aws.ToString(in.Range); r != "" {
		f.ranges = append(f.ranges, r)
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r, "bytes="), "-"))
		if err != nil {
			return nil, err
		}
		off = n
		if f.changed && aws.ToString(in.IfMatch) == f.etag {
			return nil, &smithy.GenericAPIError{Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
		}
	}
	rest := f.data[off:]
	return &s3.GetObjectOutput{
		Body:          &cutReader{r: bytes.NewReader(rest), left: f.cut},
		ContentLength: aws.Int64(int64(len(rest))),
		ETag:          aws.String(f.etag),
		LastModified:  aws.Time(time.Unix(1700000000, 0)),
	}, nil
}

type cutReader struct {
	r    io.Reader
	left int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("read tcp 127.0.0.1:1234: connection reset by peer")
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= n
	return n, err
}
func (c *cutReader) Close() error { return nil }

// noWait is the resume pacing without its waits.
func noWait() *backoff.Backoff {
	p := resumeBackoff
	p.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return p.Start()
}

func TestBodyResumesWhereTheConnectionBroke(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	f := &flakyS3{data: data, etag: `"abc"`, cut: 30_000}
	b, err := Open(context.Background(), f, "bucket", "k")
	require.NoError(t, err)
	b.pace = noWait()
	got, err := io.ReadAll(b)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Equal(t, []string{"bytes=30000-", "bytes=60000-", "bytes=90000-"}, f.ranges)
	assert.EqualValues(t, len(data), b.Size)
	assert.Equal(t, `"abc"`, b.ETag)
}

func TestBodyErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		f    *flakyS3
		key  string
		want error
	}{
		{"missing object", &flakyS3{data: []byte("x"), cut: 10}, "missing", ErrNotFound},
		{"overwritten while read", &flakyS3{data: bytes.Repeat([]byte("x"), 100), etag: `"e"`, cut: 10, changed: true}, "k", ErrChanged},
		{"never any progress", &flakyS3{data: bytes.Repeat([]byte("x"), 100), cut: 0}, "k", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Open(context.Background(), c.f, "bucket", c.key)
			if err == nil {
				b.pace = noWait()
				_, err = io.ReadAll(b)
			}
			require.Error(t, err)
			if c.want != nil {
				assert.ErrorIs(t, err, c.want)
			} else {
				assert.Contains(t, err.Error(), "gave up after")
				assert.LessOrEqual(t, c.f.calls, maxResumes+2, "bounded attempts")
			}
		})
	}
}

// refusingS3 answers every GET with one S3 error code.
type refusingS3 struct {
	code    string
	version string // the VersionId asked for
}

func (f *refusingS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.version = aws.ToString(in.VersionId)
	return nil, &smithy.GenericAPIError{Code: f.code, Message: f.code}
}

// TestPermanentFailures: the answers S3 gives again and again for an
// object (it, its bucket or its version is gone; access is refused) are
// told from those that may pass (throttling, an internal error), so that a
// notification's object that will never be readable is not retried until
// the redrive policy takes the message, and one that will be is not given up.
func TestPermanentFailures(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]error{
		"NoSuchKey": ErrNotFound, "NoSuchBucket": ErrNotFound, "NoSuchVersion": ErrNotFound, "NotFound": ErrNotFound,
		"AccessDenied": ErrDenied, "Forbidden": ErrDenied, "InvalidObjectState": ErrDenied,
		"SlowDown": nil, "InternalError": nil, "ServiceUnavailable": nil, "InvalidArgument": nil,
	} {
		f := &refusingS3{code: code}
		_, err := OpenVersion(context.Background(), f, "bucket", "k", "")
		require.Error(t, err)
		if want != nil {
			assert.ErrorIs(t, err, want, code)
			assert.True(t, Permanent(err), code)
		} else {
			assert.False(t, Permanent(err), code)
		}
	}
	// A version id S3 never issued is answered InvalidArgument.
	f := &refusingS3{code: "InvalidArgument"}
	_, err := OpenVersion(context.Background(), f, "bucket", "k", "v1")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), "s3://bucket/k?versionId=v1")
	assert.Equal(t, "v1", f.version, "the version is asked for")
	assert.True(t, Permanent(fmt.Errorf("read: %w", ErrChanged)), "what was being read is gone")
}

func TestReaderOverFlakyBodyReadsEverythingOnce(t *testing.T) {
	t.Parallel()
	var docs [][]byte
	for i := range 20 {
		docs = append(docs, corpus.Gzip(envelopeDoc(group, fmt.Sprint("s", i), manyEvents(200, int64(i))...)))
	}
	f := &flakyS3{data: concat(docs...), etag: `"e"`, cut: 7_777}
	b, err := Open(context.Background(), f, "bucket", "k")
	require.NoError(t, err)
	b.pace = noWait()
	r := NewReader(b, Object{Bucket: "bucket", Key: "k"}, Config{})
	n := 0
	eachChunk(t, r, func(c Chunk) {
		require.False(t, c.Dead)
		n += len(c.Batch.Records)
	})
	assert.Equal(t, 4000, n)
	assert.NotEmpty(t, f.ranges)
}
