package cwpoller

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFileState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	k1 := Key{Account: acct, Region: "us-east-1", Namespace: "AWS/ApiGateway", Metric: "Count", Dimensions: "ApiName=a,Stage=b"}
	k2 := Key{Account: acct, Region: "us-east-1", Namespace: "AWS/ApiGateway", Metric: "Latency", Dimensions: "ApiName=a,Stage=b"}

	s, err := NewFileState(path)
	require.NoError(t, err)
	_, ok := s.Last(k1)
	assert.False(t, ok, "a missing file is an empty state")

	require.NoError(t, s.Advance(ctx, []Key{k1, k2}, minute0))
	require.NoError(t, s.Advance(ctx, []Key{k1}, minute0.Add(time.Minute)))
	// Never backwards: a late, older advance keeps the newer end.
	require.NoError(t, s.Advance(ctx, []Key{k1}, minute0.Add(-time.Hour)))

	s2, err := NewFileState(path)
	require.NoError(t, err)
	for k, want := range map[Key]time.Time{k1: minute0.Add(time.Minute), k2: minute0} {
		got, ok := s2.Last(k)
		require.True(t, ok, k.String())
		assert.True(t, want.Equal(got), "%s: %v, want %v", k, got, want)
	}
	assert.Equal(t, []string{k1.String(), k2.String()}, s2.Keys())

	// Entries older than MaxAge are dropped when the file is written.
	s2.MaxAge = 30 * time.Minute
	require.NoError(t, s2.Advance(ctx, []Key{k1}, minute0.Add(40*time.Minute)))
	s3, err := NewFileState(path)
	require.NoError(t, err)
	assert.Equal(t, []string{k1.String()}, s3.Keys())

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, s3.Advance(ctxDone, []Key{k1}, minute0), context.Canceled)
}

func TestFileStateErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"corrupt":         `{"version":1,"periods":`,
		"unknown version": `{"version":2,"periods":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			_, err := NewFileState(path)
			assert.Error(t, err)
		})
	}
	t.Run("unwritable", func(t *testing.T) {
		s, err := NewFileState(filepath.Join(dir, "missing-dir", "state.json"))
		require.NoError(t, err)
		k := Key{Account: acct, Region: "r", Namespace: "n", Metric: "m"}
		assert.ErrorContains(t, s.Advance(context.Background(), []Key{k}, minute0), "write state")
		_, ok := s.Last(k)
		assert.True(t, ok, "advanced in memory all the same")
	})
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Accounts: []Target{{acct, "us-east-1"}}}
	tests := []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no accounts", func(c *Config) { c.Accounts = nil }, "no accounts"},
		{"bad account", func(c *Config) { c.Accounts = []Target{{"12345", "us-east-1"}} }, "not 12 digits"},
		{"no region", func(c *Config) { c.Accounts = []Target{{acct, ""}} }, "no region"},
		{"twice", func(c *Config) { c.Accounts = append(c.Accounts, c.Accounts[0]) }, "listed twice"},
		{"period", func(c *Config) { c.Period = 90 * time.Second }, "multiple of 60s"},
		{"five-minute period", func(c *Config) { c.Period, c.Backfill = 5*time.Minute, 30*time.Minute }, ""},
		{"backfill too long", func(c *Config) { c.Backfill = time.Hour }, "backfill"},
		{"backfill shorter than the period", func(c *Config) { c.Period, c.Backfill = 5*time.Minute, time.Minute }, "backfill"},
		{"too many queries", func(c *Config) { c.MaxQueriesPerRequest = 501 }, "max_queries_per_request"},
		{"too many data points", func(c *Config) { c.MaxDatapointsPerRequest = 100_801 }, "max_datapoints_per_request"},
		{"a metric does not fit a call", func(c *Config) { c.MaxDatapointsPerRequest = 20 }, "do not fit"},
		{"negative lag", func(c *Config) { c.Lag = -time.Second }, "lag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Accounts = append([]Target(nil), ok.Accounts...)
			tt.mod(&c)
			err := c.Validate()
			if tt.err == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.err)
			_, err = New(c, aws.Config{})
			assert.Error(t, err)
		})
	}
}

type fakeSTS struct{ calls map[string]int }

func (f *fakeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.calls[aws.ToString(in.RoleArn)+"|"+aws.ToString(in.ExternalId)]++
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String("ASIA" + aws.ToString(in.RoleArn)[13:25]), SecretAccessKey: aws.String("s"),
		SessionToken: aws.String("t"), Expiration: aws.Time(time.Now().Add(time.Hour)),
	}}, nil
}

var _ stscreds.AssumeRoleAPIClient = (*fakeSTS)(nil)

func TestRoleCredentials(t *testing.T) {
	roleFor := func(account string) string {
		if account == "123456789012" {
			return "" // the pipeline's own credentials
		}
		return "arn:aws:iam::" + account + ":role/gwpipe"
	}

	f := &fakeSTS{calls: map[string]int{}}
	credsFor := RoleCredentials(f, roleFor, "ext-1")
	assert.Nil(t, credsFor("123456789012"))
	p := credsFor("111111111111")
	require.NotNil(t, p)
	assert.Same(t, p, credsFor("111111111111"), "one provider per role")
	for range 3 {
		c, err := p.Retrieve(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "ASIA111111111111", c.AccessKeyID)
	}
	assert.Equal(t, map[string]int{"arn:aws:iam::111111111111:role/gwpipe|ext-1": 1}, f.calls, "credentials cached")
}
