package replay

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/gwpipe/gwpipe/pkg/sources/s3obj"
)

// S3API is the part of the S3 client a replay uses (*s3.Client).
type S3API interface {
	s3obj.Getter
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// entry is one object (or file) a replay may read.
type entry struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
}

// store lists and opens what a replay reads: a bucket, or a directory.
type store interface {
	// Name is the source, as the checkpoint records it.
	Name() string
	// List calls fn for every entry in key order, starting after
	// startAfter, until fn returns false.
	List(ctx context.Context, startAfter string, fn func(entry) (more bool, err error)) error
	Open(ctx context.Context, e entry) (io.ReadCloser, s3obj.Object, error)
}

type bucketStore struct {
	client         S3API
	bucket, prefix string
	region         string
	pattern        string   // matched against the last part of a key; empty: all
	exclude        []string // key prefixes not read
}

// skip reports whether key is left out: excluded, or not of the pattern.
func (b *bucketStore) skip(key string) bool {
	for _, x := range b.exclude {
		if strings.HasPrefix(key, x) {
			return true
		}
	}
	if b.pattern == "" {
		return false
	}
	ok, _ := path.Match(b.pattern, path.Base(key))
	return !ok
}

func (b *bucketStore) Name() string { return "s3://" + b.bucket + "/" + b.prefix }

func (b *bucketStore) List(ctx context.Context, startAfter string, fn func(entry) (bool, error)) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String(b.prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(startAfter)
	}
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", b.bucket, b.prefix, err)
		}
		for _, o := range page.Contents {
			if b.skip(aws.ToString(o.Key)) {
				continue
			}
			more, err := fn(entry{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), LastModified: aws.ToTime(o.LastModified)})
			if err != nil || !more {
				return err
			}
		}
	}
	return nil
}

func (b *bucketStore) Open(ctx context.Context, e entry) (io.ReadCloser, s3obj.Object, error) {
	body, err := s3obj.Open(ctx, b.client, b.bucket, e.Key)
	if err != nil {
		return nil, s3obj.Object{}, err
	}
	obj := s3obj.Object{Bucket: b.bucket, Key: e.Key, Size: body.Size, ETag: body.ETag, LastModified: body.LastModified, Region: b.region}
	return body, obj, nil
}

// firstKey returns the first key under the prefix, to learn the layout.
func (b *bucketStore) firstKey(ctx context.Context) (string, error) {
	out, err := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket), Prefix: aws.String(b.prefix), MaxKeys: aws.Int32(1)})
	if err != nil {
		return "", fmt.Errorf("list s3://%s/%s: %w", b.bucket, b.prefix, err)
	}
	if len(out.Contents) == 0 {
		return "", nil
	}
	return aws.ToString(out.Contents[0].Key), nil
}

// dirStore reads the files of a local directory (a dead-letter archive)
// and of the directories below it: a replay of the archive writes the
// letters that fail again into a new directory inside it, which the same
// replay, run again, reads too. Keys are slash-separated paths relative to
// dir, in lexical order.
type dirStore struct {
	dir     string
	pattern string   // matched against file names
	exclude []string // directories (keys) not read
}

func (d *dirStore) Name() string { return "file://" + d.dir }

func (d *dirStore) List(_ context.Context, startAfter string, fn func(entry) (bool, error)) error {
	if _, err := os.Stat(d.dir); err != nil {
		return fmt.Errorf("dead-letter archive: %w", err)
	}
	var keys []string
	err := filepath.WalkDir(d.dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, rerr := filepath.Rel(d.dir, path)
		if rerr != nil {
			return rerr
		}
		key := filepath.ToSlash(rel)
		if de.IsDir() {
			if key != "." && slices.Contains(d.exclude, key) {
				return filepath.SkipDir
			}
			return nil
		}
		if ok, _ := filepath.Match(d.pattern, de.Name()); ok && de.Type().IsRegular() {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter archive: %w", err)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if key <= startAfter {
			continue
		}
		st, err := os.Stat(filepath.Join(d.dir, filepath.FromSlash(key)))
		if err != nil {
			return err
		}
		more, err := fn(entry{Key: key, Size: st.Size(), LastModified: st.ModTime()})
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (d *dirStore) Open(_ context.Context, e entry) (io.ReadCloser, s3obj.Object, error) {
	path := filepath.Join(d.dir, filepath.FromSlash(e.Key))
	f, err := os.Open(path)
	if err != nil {
		return nil, s3obj.Object{}, err
	}
	return f, s3obj.Object{Key: e.Key, URL: path, Size: e.Size, LastModified: e.LastModified}, nil
}

// dateRightAfter reports whether keys under prefix start with the Firehose
// YYYY/MM/DD/HH/ layout, so that listing can start at an hour and stop
// after another.
func dateRightAfter(prefix, key string) bool {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return false
	}
	t, ok := s3obj.KeyTime(rest)
	return ok && strings.HasPrefix(rest, t.Format("2006/01/02/15/"))
}
