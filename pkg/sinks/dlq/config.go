package dlq

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config/check"
)

// Config places the dead-letter archive; it is the dlq section of gwpipe's
// configuration: a local directory (the default), or an S3 prefix, which
// outlives the worker that wrote there.
type Config struct {
	// Dir is the local archive's directory.
	Dir string `yaml:"dir"`
	// URL, s3://bucket/prefix/, keeps the archive in S3 instead of Dir:
	// letters are gathered into gzip-compressed JSON-lines objects, each
	// written (PutObject) before the letters in it are acknowledged.
	URL string `yaml:"url"`
	// MaxObjectBytes is how many bytes of letters (uncompressed) an S3
	// object gathers before it is written; a batch of letters is never
	// split, so an object may exceed it by one batch.
	MaxObjectBytes int64 `yaml:"max_object_bytes"`
	// Linger is how long a letter waits for others to share its object:
	// the delay a dead letter adds to its source's acknowledgement.
	Linger time.Duration `yaml:"linger"`
}

// DefaultConfig is the local archive in data/dlq; an S3 archive gathers
// up to 8 MiB of letters for up to 500 ms.
func DefaultConfig() Config {
	return Config{Dir: "data/dlq", MaxObjectBytes: 8 << 20, Linger: 500 * time.Millisecond}
}

// Validate reports every problem, each starting with its key.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" && c.Dir == "" {
		errs = append(errs, errors.New("dir: must be set (or url): dead letters need somewhere to go"))
	}
	if c.URL != "" {
		if _, _, err := c.S3(); err != nil {
			errs = append(errs, fmt.Errorf("url: %w", err))
		}
	}
	if c.MaxObjectBytes < 64<<10 || c.MaxObjectBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("max_object_bytes: must be 64 KiB to 1 GiB, got %d", c.MaxObjectBytes))
	}
	if c.Linger < 0 || c.Linger > time.Minute {
		errs = append(errs, fmt.Errorf("linger: must be 0 to 1m (it delays every dead letter's acknowledgement), got %s", c.Linger))
	}
	return errors.Join(errs...)
}

// Location names the archive the configuration places: its s3:// URL,
// or else its directory.
func (c Config) Location() string {
	if c.URL != "" {
		return c.URL
	}
	return c.Dir
}

// S3 splits URL into its bucket and prefix; the prefix ends with "/"
// unless it is empty.
func (c Config) S3() (bucket, prefix string, err error) {
	return ParseS3URL(c.URL)
}

// ErrS3Credentials refuses an s3:// URL carrying credentials.
var ErrS3Credentials = errors.New("an s3:// URL carries no credentials (key:secret@ before the bucket, not shown): " +
	"gwpipe signs its S3 requests with the AWS credential chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, " +
	"the instance's or the pod's role); remove them from the URL")

// ParseS3URL splits an s3://bucket/prefix URL of an archive; the prefix
// is a folder: it ends with "/" unless it is empty. A URL with credentials
// (s3://key:secret@bucket/) is refused: S3 takes none in its URL, and
// they would be ignored, the requests signed with other credentials.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	if strings.HasPrefix(s, "s3://") && strings.Contains(s, "@") {
		if u, err := url.Parse(s); err != nil || u.User != nil {
			return "", "", ErrS3Credentials
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || strings.Contains(u.Host, ":") || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/prefix/ URL", check.Shown(s))
	}
	prefix = strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return u.Host, prefix, nil
}
