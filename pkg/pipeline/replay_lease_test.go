package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/runtime/lease"
)

// renewalAnswerLost stands between the S3 client and moto: the lease's
// first renewal lands in S3, and its answer is lost because the replay
// stopped while it was in flight (the checkpoint is read only once the
// renewal landed, so a replay with nothing to do finishes then). It is
// the race of a quick replay, made certain.
type renewalAnswerLost struct {
	next    http.RoundTripper
	key     string // the checkpoint's key
	mu      sync.Mutex
	writes  int // of the lease, that landed
	renewed chan struct{}
}

func (a *renewalAnswerLost) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, a.key+".lease"):
		resp, err := a.next.RoundTrip(req.WithContext(context.WithoutCancel(req.Context())))
		if err != nil || resp.StatusCode/100 != 2 {
			return resp, err
		}
		a.mu.Lock()
		a.writes++
		n := a.writes
		a.mu.Unlock()
		if n != 2 { // the first is the lease taken, the second its first renewal
			return resp, nil
		}
		close(a.renewed)
		<-req.Context().Done()
		resp.Body.Close()
		return nil, req.Context().Err()
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, a.key):
		<-a.renewed
	}
	return a.next.RoundTrip(req)
}

// TestReplayReleasesItsLeaseWhenItFinishesWhileRenewing: a replay with a
// checkpoint in S3 that finishes (here: nothing to do) while its lease's
// renewal is in flight still releases the lease, so that the next replay
// starts at once instead of waiting for the lease to expire.
func TestReplayReleasesItsLeaseWhenItFinishesWhileRenewing(t *testing.T) {
	a := startAWS(t)
	a.bucket(t, "arch")
	a.bucket(t, "state")
	_, events := putArchive(t, a, "arch", "fh/", 3, 2_000, 1_000)
	e := newReplayEnv(t, 10_000)
	cfg := func(r *config.Replay) {
		r.Bucket, r.Prefix, r.From, r.Checkpoint = "arch", "fh/", "-2h", "s3://state/ck/r1.json"
	}
	res, err := e.run(t, context.Background(), cfg, ReplayOptions{S3: a.s3})
	require.NoError(t, err)
	require.EqualValues(t, events, res.Sent)
	leaseState := func() lease.Record {
		out, err := a.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("state"), Key: aws.String("ck/r1.json.lease")})
		require.NoError(t, err)
		defer out.Body.Close()
		data, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		var rec lease.Record
		require.NoError(t, json.Unmarshal(data, &rec))
		return rec
	}
	require.Equal(t, lease.StateReleased, leaseState().State)

	awsCfg := a.moto.AWSConfig()
	lossy := &renewalAnswerLost{next: http.DefaultTransport, key: "ck/r1.json", renewed: make(chan struct{})}
	awsCfg.HTTPClient = &http.Client{Transport: lossy}
	res, err = e.run(t, context.Background(), cfg, ReplayOptions{S3: awsconf.S3(awsCfg)})
	require.NoError(t, err)
	require.True(t, res.AlreadyComplete)
	rec := leaseState()
	assert.Equal(t, lease.StateReleased, rec.State, "the lease is released, not left held until it expires: %+v", rec)
}
