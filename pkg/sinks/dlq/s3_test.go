package dlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"
)

// flakyStore is a memory store that fails every operation with err while
// it is down; setDown switches it.
func flakyStore(err error) (s *cas.Memory, setDown func(bool)) {
	s = cas.NewMemory()
	var mu sync.Mutex
	var down bool
	s.Fail = func(string, string) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return err
		}
		return nil
	}
	return s, func(d bool) { mu.Lock(); down = d; mu.Unlock() }
}

// readS3Archive reads every object of a store written by an S3Archive:
// the event ids of its letters, and the object names.
func readS3Archive(t *testing.T, s *cas.Memory) (ids []string, names []string) {
	t.Helper()
	names = s.Keys()
	sort.Strings(names)
	for _, name := range names {
		data, _, err := s.Get(context.Background(), name)
		require.NoError(t, err)
		ids = append(ids, readObject(t, data)...)
	}
	return ids, names
}

func readObject(t *testing.T, data []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err, "objects are gzip")
	var ids []string
	st, err := Read(zr, func(e Entry) error { ids = append(ids, e.EventID); return nil })
	require.NoError(t, err)
	assert.Zero(t, st.Partial, "an object is written whole")
	return ids
}

var objectName = regexp.MustCompile(`^dlq-\d{8}T\d{6}\.\d{3}Z-[^/]+-\d+-\d{6}\.jsonl\.gz$`)

// Concurrent writers share objects (gathered for Linger), each returns
// once its letters are stored, and every letter is in the archive once,
// in the documented format.
func TestS3ArchiveGathersAndStoresEveryLetterOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cas.NewMemory()
		cfg := DefaultConfig()
		cfg.Linger = 20 * time.Millisecond
		reg := telemetry.NewRegistry()
		a := NewS3(s, "s3://b/dlq/", cfg)
		a.RegisterMetrics(reg)
		var wg sync.WaitGroup
		var want []string
		var mu sync.Mutex
		for w := range 16 {
			wg.Go(func() {
				for i := range 5 {
					b := LetterBatch(fmt.Sprintf("w%d-%d", w, i), 3)
					if !assert.NoError(t, a.Write(context.Background(), b)) {
						return
					}
					// Returned: the letters are in S3 already.
					stored := map[string]bool{}
					for _, name := range s.Keys() {
						data, _, err := s.Get(context.Background(), name)
						assert.NoError(t, err)
						zr, err := gzip.NewReader(bytes.NewReader(data))
						if !assert.NoError(t, err) {
							return
						}
						_, err = Read(zr, func(e Entry) error { stored[e.EventID] = true; return nil })
						assert.NoError(t, err)
					}
					for _, r := range b.Records {
						assert.True(t, stored[r.EventID], "Write returns once its object is stored")
					}
					mu.Lock()
					for _, r := range b.Records {
						want = append(want, r.EventID)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.NoError(t, a.Close())
		ids, names := readS3Archive(t, s)
		slices.Sort(ids)
		slices.Sort(want)
		assert.Equal(t, want, ids, "every letter once")
		assert.Less(t, len(names), 80, "letters written at the same time share objects")
		for _, n := range names {
			assert.Regexp(t, objectName, n)
		}
		assert.Equal(t, int64(len(names)), reg.Value("dlq.s3.objects"))
		assert.Equal(t, int64(len(want)), reg.Value("dlq.s3.letters"))
	})
}

func TestS3ArchiveObjectsAreBoundedBySize(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cas.NewMemory()
		cfg := DefaultConfig()
		cfg.MaxObjectBytes = 64 << 10
		cfg.Linger = time.Hour // only size seals an object here
		a := NewS3(s, "s3://b/", cfg)
		big := strings.Repeat("x", 10<<10)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				b := &record.Batch{Stage: "decode", Records: []record.Record{{Kind: record.KindLine, EventID: fmt.Sprint(i), Message: []byte(big)}}}
				assert.NoError(t, a.Write(context.Background(), b))
			})
		}
		// 20 letters of ~14 KB: sealed at 64 KiB, the last object stays open
		// until Close, once every letter joined an object.
		joined := func() bool {
			stored, _ := readS3Archive(t, s)
			a.mu.Lock()
			defer a.mu.Unlock()
			open := int64(0)
			if a.cur != nil {
				open = a.cur.letters
			}
			return int64(len(stored))+open == 20
		}
		synctest.Wait() // every writer waits on its object
		require.True(t, joined())
		require.NoError(t, a.Close())
		wg.Wait()
		ids, names := readS3Archive(t, s)
		assert.Len(t, ids, 20)
		assert.GreaterOrEqual(t, len(names), 4)
	})
}

// With S3 unreachable, Write fails — the batch is not acknowledged, its
// source sends it again — and nothing partial is left.
func TestS3ArchiveUnreachableRefusesTheBatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, setDown := flakyStore(errors.New("dial tcp: connection refused"))
		setDown(true)
		cfg := DefaultConfig()
		cfg.Linger = time.Millisecond
		reg := telemetry.NewRegistry()
		a := NewS3(s, "s3://b/dlq/", cfg)
		a.RegisterMetrics(reg)
		err := a.Write(context.Background(), LetterBatch("a", 2))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "s3://b/dlq/dlq-")
		assert.Contains(t, err.Error(), "connection refused")
		assert.Empty(t, s.Keys())
		assert.Equal(t, int64(1), reg.Value("dlq.s3.failures"))

		setDown(false)
		require.NoError(t, a.Write(context.Background(), LetterBatch("a", 2)), "the retry is stored")
		ids, _ := readS3Archive(t, s)
		assert.Equal(t, []string{"a-0", "a-1"}, ids, "once")
	})
}

// Two workers that would choose the same name (a restarted container:
// same host name, same pid, same millisecond) never overwrite each other.
func TestS3ArchiveNamesNeverCollide(t *testing.T) {
	t.Parallel()
	s := cas.NewMemory()
	at := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.Linger = 0
	clock := func() time.Time { return at }
	a := NewS3(s, "s3://b/", cfg, WithS3Clock(clock), WithS3Host("gwpipe-dlq-0", 1))
	b := NewS3(s, "s3://b/", cfg, WithS3Clock(clock), WithS3Host("gwpipe-dlq-0", 1))
	for i := range 3 {
		require.NoError(t, a.Write(context.Background(), LetterBatch(fmt.Sprint("a", i), 1)))
		require.NoError(t, b.Write(context.Background(), LetterBatch(fmt.Sprint("b", i), 1)))
	}
	ids, names := readS3Archive(t, s)
	assert.Len(t, names, 6)
	assert.ElementsMatch(t, []string{"a0-0", "a1-0", "a2-0", "b0-0", "b1-0", "b2-0"}, ids)
	assert.Equal(t, "dlq-20261129T060000.000Z-gwpipe-dlq-0-1-000001.jsonl.gz", names[0])
}

func TestS3ArchiveCloseWritesWhatIsPending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := cas.NewMemory()
		cfg := DefaultConfig()
		cfg.Linger = time.Hour
		a := NewS3(s, "s3://b/", cfg)
		done := make(chan error, 1)
		go func() { done <- a.Write(context.Background(), LetterBatch("x", 1)) }()
		synctest.Wait() // the writer waits on its object
		a.mu.Lock()
		require.NotNil(t, a.cur)
		a.mu.Unlock()
		require.NoError(t, a.Close())
		require.NoError(t, <-done)
		assert.Len(t, s.Keys(), 1)
		assert.ErrorIs(t, a.Write(context.Background(), LetterBatch("y", 1)), errClosed)
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, DefaultConfig().Validate())
	c := DefaultConfig()
	c.Dir, c.URL, c.MaxObjectBytes, c.Linger = "", "", 1, -1
	err := c.Validate()
	require.Error(t, err)
	for _, want := range []string{"dir: must be set", "max_object_bytes: must be", "linger: must be"} {
		assert.Contains(t, err.Error(), want)
	}
	c = DefaultConfig()
	c.URL = "https://bucket/x"
	assert.ErrorContains(t, c.Validate(), "url: ")
	b, p, err := ParseS3URL("s3://bucket/dlq")
	require.NoError(t, err)
	assert.Equal(t, "bucket", b)
	assert.Equal(t, "dlq/", p, "a prefix is a folder")
}

// Against moto_server's S3: objects land under the prefix, named by host,
// time and sequence, and read back in the documented format.
func TestS3ArchiveMoto(t *testing.T) {
	if testing.Short() {
		t.Skip("needs moto_server")
	}
	url := moto.Run(t)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(moto.Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	require.NoError(t, err)
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(url); o.UsePathStyle = true })
	ctx := context.Background()
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("letters")})
	require.NoError(t, err)

	dc := DefaultConfig()
	dc.Linger = 10 * time.Millisecond
	a := NewS3(cas.NewS3(c, "letters", "dlq/"), "s3://letters/dlq/", dc)
	require.NoError(t, a.Write(ctx, LetterBatch("m", 4)))
	require.NoError(t, a.Close())
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("letters")})
	require.NoError(t, err)
	require.Len(t, out.Contents, 1)
	key := aws.ToString(out.Contents[0].Key)
	require.True(t, strings.HasPrefix(key, "dlq/"), key)
	assert.Regexp(t, objectName, strings.TrimPrefix(key, "dlq/"))
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("letters"), Key: aws.String(key)})
	require.NoError(t, err)
	defer obj.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(obj.Body)
	require.NoError(t, err)
	assert.Equal(t, []string{"m-0", "m-1", "m-2", "m-3"}, readObject(t, buf.Bytes()))
}

// FuzzS3ArchiveWholeOrNothing: whatever the sequence of writes and S3
// outages, a letter whose Write returned nil is in the archive exactly
// once, and a letter whose Write failed is not there at all (its source
// sends it again; were it also stored, a replay would send it twice).
func FuzzS3ArchiveWholeOrNothing(f *testing.F) {
	f.Add([]byte{3, 0x80, 2, 0x80, 5})
	f.Add([]byte{1, 1, 0x80, 0x80, 4})
	f.Fuzz(func(t *testing.T, ops []byte) {
		synctest.Test(t, func(t *testing.T) { // Linger passes in no time
			if len(ops) > 64 {
				ops = ops[:64]
			}
			s, setDown := flakyStore(errors.New("unreachable"))
			var down bool
			cfg := DefaultConfig()
			cfg.Linger, cfg.MaxObjectBytes = time.Millisecond, 64<<10
			a := NewS3(s, "s3://b/", cfg)
			stored, refused := map[string]bool{}, map[string]bool{}
			for i, op := range ops {
				if op&0x80 != 0 { // S3 goes down, or comes back
					down = !down
					setDown(down)
					continue
				}
				b := LetterBatch(fmt.Sprint("op", i), int(op%8)+1)
				err := a.Write(context.Background(), b)
				for _, r := range b.Records {
					if err == nil {
						stored[r.EventID] = true
					} else {
						refused[r.EventID] = true
					}
				}
			}
			setDown(false)
			require.NoError(t, a.Close())
			ids, _ := readS3Archive(t, s)
			got := map[string]int{}
			for _, id := range ids {
				got[id]++
			}
			for id := range stored {
				require.Equal(t, 1, got[id], "letter %s written once", id)
			}
			for id := range refused {
				require.Zero(t, got[id], "letter %s was refused, yet stored", id)
			}
			require.Len(t, got, len(stored))
		})
	})
}
