package cas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
	"github.com/gwpipe/gwpipe/pkg/testkit/natstest"
)

// forEachStore runs f as a subtest on each implementation the contract is
// checked against (but those skip names): the in-memory one, S3 as
// moto_server serves it, and a JetStream key-value bucket of a real
// nats-server (the servers not in -short).
func forEachStore(t *testing.T, skip []string, f func(t *testing.T, s Store)) {
	for name, open := range map[string]func(t *testing.T) Store{
		"memory": func(*testing.T) Store { return NewMemory() },
		"s3":     func(t *testing.T) Store { return NewS3(motoS3(t), "cas", "state/") },
		"kv":     func(t *testing.T) Store { return natsKV(t) },
	} {
		if slices.Contains(skip, name) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if name != "memory" && testing.Short() {
				t.Skip("starts a server")
			}
			f(t, open(t))
		})
	}
}

// motoS3 starts moto_server and returns a client of it, with a bucket
// "cas" created.
func motoS3(t testing.TB) *s3.Client {
	url := moto.Run(t)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(moto.Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	require.NoError(t, err)
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(url); o.UsePathStyle = true })
	_, err = c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("cas")})
	require.NoError(t, err)
	return c
}

func natsKV(t testing.TB) *KV {
	nc, err := nats.Connect(natstest.Start(t))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := OpenKV(context.Background(), js, "cas", 0, 1)
	require.NoError(t, err)
	return s
}

func TestStoreContract(t *testing.T) {
	forEachStore(t, nil, func(t *testing.T, s Store) {
		ctx := context.Background()

		_, _, err := s.Get(ctx, "a/b.json")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = s.Update(ctx, "a/b.json", []byte("x"), "1")
		require.ErrorIs(t, err, ErrConflict, "updating a key that does not exist loses")

		v1, err := s.Create(ctx, "a/b.json", []byte(`{"n":1}`))
		require.NoError(t, err)
		_, err = s.Create(ctx, "a/b.json", []byte(`{"n":2}`))
		require.ErrorIs(t, err, ErrConflict, "a second create loses")
		got, v, err := s.Get(ctx, "a/b.json")
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":1}`, string(got))
		assert.Equal(t, v1, v)

		v2, err := s.Update(ctx, "a/b.json", []byte(`{"n":3}`), v1)
		require.NoError(t, err)
		assert.NotEqual(t, v1, v2)
		_, err = s.Update(ctx, "a/b.json", []byte(`{"n":4}`), v1)
		require.ErrorIs(t, err, ErrConflict, "an update on a stale version loses")
		got, v, err = s.Get(ctx, "a/b.json")
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":3}`, string(got), "the lost write changed nothing")
		assert.Equal(t, v2, v)

		// A key a KV bucket cannot hold as is (any Firehose request id).
		odd := "req/Ünïcode id with spaces"
		_, err = s.Create(ctx, odd, []byte("1"))
		require.NoError(t, err)
		_, err = s.Create(ctx, odd, []byte("2"))
		require.ErrorIs(t, err, ErrConflict)
		_, _, err = s.Get(ctx, "req/Ünïcode id with spaces!")
		require.ErrorIs(t, err, ErrNotFound, "distinct keys stay distinct")
	})
}

// Of writers racing to create one key, or to update the same version,
// exactly one wins. moto_server checks the condition and writes in two
// steps without a lock, so concurrent conditional writes can both succeed
// there: the race is checked against the stores that decide atomically
// (S3 itself does; TestS3ConditionalHeaders shows moto gets the headers).
func TestStoreRaceOneWinner(t *testing.T) {
	forEachStore(t, []string{"s3"}, func(t *testing.T, s Store) {
		ctx := context.Background()
		for round := range 20 {
			key := fmt.Sprintf("race/%d", round)
			v0, err := s.Create(ctx, key, []byte("0"))
			require.NoError(t, err)
			var wins, creates sync.WaitGroup
			var mu sync.Mutex
			won, created := 0, 0
			for i := range 8 {
				wins.Go(func() {
					if _, err := s.Update(ctx, key, []byte(fmt.Sprint(i)), v0); err == nil {
						mu.Lock()
						won++
						mu.Unlock()
					} else if !errors.Is(err, ErrConflict) {
						t.Error(err)
					}
				})
				creates.Go(func() {
					if _, err := s.Create(ctx, key+"/new", []byte(fmt.Sprint(i))); err == nil {
						mu.Lock()
						created++
						mu.Unlock()
					} else if !errors.Is(err, ErrConflict) {
						t.Error(err)
					}
				})
			}
			wins.Wait()
			creates.Wait()
			assert.Equal(t, 1, won, "one update of a version wins")
			assert.Equal(t, 1, created, "one create wins")
		}
	})
}

// moto_server honours the conditional headers S3's contract rests on:
// If-None-Match: * refuses an existing key (412), If-Match refuses another
// ETag (412) and a missing key (404). The store maps all three to
// ErrConflict (TestStoreContract); this checks the raw answers.
func TestS3ConditionalHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto_server")
	}
	c := motoS3(t)
	ctx := context.Background()
	put := func(key string, cond func(*s3.PutObjectInput)) error {
		in := &s3.PutObjectInput{Bucket: aws.String("cas"), Key: aws.String(key), Body: nil}
		cond(in)
		_, err := c.PutObject(ctx, in)
		return err
	}
	require.NoError(t, put("k", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") }))
	err := put("k", func(in *s3.PutObjectInput) { in.IfNoneMatch = aws.String("*") })
	assert.Equal(t, 412, httpStatus(err), "If-None-Match on an existing key: %v", err)
	assert.True(t, conflict(err))
	err = put("k", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123"`) })
	assert.Equal(t, 412, httpStatus(err), "If-Match on another ETag: %v", err)
	assert.True(t, conflict(err))
	err = put("missing", func(in *s3.PutObjectInput) { in.IfMatch = aws.String(`"0123"`) })
	assert.Equal(t, 404, httpStatus(err), "If-Match on a missing key: %v", err)
	assert.True(t, conflict(err))
}

// An unreachable store is an error, never a conflict or a missing key:
// callers must not mistake an outage for a lost race.
func TestS3OutageIsNotAConflict(t *testing.T) {
	s := NewS3(failingS3{}, "b", "p/")
	_, _, err := s.Get(context.Background(), "k")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNotFound)
	_, err = s.Create(context.Background(), "k", nil)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrConflict)
}

type failingS3 struct{}

func (failingS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, errors.New("dial tcp: connection refused")
}

func (failingS3) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return nil, errors.New("dial tcp: connection refused")
}

// FuzzKVKey: whatever a key holds (a Firehose request id is whatever the
// sender chose), the key-value bucket gets a valid key, and distinct keys
// stay distinct.
func FuzzKVKey(f *testing.F) {
	for _, seed := range [][2]string{{"firehose/req-1", "firehose/req-2"}, {"a b", "a_b"}, {".x", "x."}, {"a//b", "a/b"}, {"Ü", "U"}, {"", "h"}} {
		f.Add(seed[0], seed[1])
	}
	valid := func(k string) bool {
		if k == "" || k[0] == '.' || k[len(k)-1] == '.' || strings.Contains(k, "..") {
			return false
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-/_=.", c) >= 0) {
				return false
			}
		}
		return true
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, kb := kvKey(a), kvKey(b)
		if !valid(ka) || !valid(kb) {
			t.Fatalf("invalid bucket key: %q → %q, %q → %q", a, ka, b, kb)
		}
		if a != b && ka == kb {
			t.Fatalf("distinct keys %q and %q share the bucket key %q", a, b, ka)
		}
	})
}
