package firehose

import (
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/runtime/cas"
	"github.com/gwpipe/gwpipe/pkg/runtime/claim"
	"github.com/gwpipe/gwpipe/pkg/telemetry"
)

// twoWorkers are two ingest workers behind a load balancer, sharing the
// fleet's request ids.
func twoWorkers(t *testing.T, settleA, settleB func(*record.Batch)) (a, b *Source, pa, pb *fakePipeline, ma, mb *telemetry.Registry, store *cas.Memory) {
	store = cas.NewMemory()
	cc := claim.Config{TTL: time.Minute, ClaimTTL: time.Second}
	pa, pb = newFake(settleA), newFake(settleB)
	ma, mb = telemetry.NewRegistry(), telemetry.NewRegistry()
	a = New(testConfig(), pa, nil, nil, ma).WithFleet(claim.NewRequests(store, "a", cc), ma)
	b = New(testConfig(), pb, nil, nil, mb).WithFleet(claim.NewRequests(store, "b", cc), mb)
	return
}

// A retry that reaches the other worker after the first attempt was
// delivered is answered 200 and sends nothing.
func TestFleetRetryAfterDeliveryOnAnotherWorker(t *testing.T) {
	t.Parallel()
	a, b, pa, pb, _, mb, _ := twoWorkers(t, deliverAll, deliverAll)
	w, _ := serve(a, request("req-1", body("req-1", "x", "y", "z")))
	require.Equal(t, http.StatusOK, w.Code)
	w, resp := serve(b, request("req-1", body("req-1", "x", "y", "z")))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "req-1", resp.RequestID)
	assert.Equal(t, 3, pa.Records())
	assert.Zero(t, pb.Records(), "the retry sent nothing")
	assert.Equal(t, int64(1), mb.Value("firehose.fleet.duplicate_requests"))
	// Remembered locally too: the next retry to b costs no store read.
	w, _ = serve(b, request("req-1", body("req-1", "x", "y", "z")))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Zero(t, pb.Records())
}

// A retry that reaches the other worker while the first attempt is still
// delivering waits for it and answers with its outcome.
func TestFleetRetryWhileTheFirstAttemptDelivers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		a, b, pa, pb, _, mb, _ := twoWorkers(t, func(bt *record.Batch) { <-release; bt.Ack.Done() }, deliverAll)
		first := make(chan int, 1)
		go func() {
			w, _ := serve(a, request("req-1", body("req-1", "x", "y")))
			first <- w.Code
		}()
		<-pa.got // a is delivering
		retried := make(chan int, 1)
		go func() {
			w, _ := serve(b, request("req-1", body("req-1", "x", "y")))
			retried <- w.Code
		}()
		synctest.Wait() // the retry waits on the first attempt
		require.Equal(t, int64(1), mb.Value("firehose.fleet.waits"))
		select {
		case <-retried:
			t.Fatal("the retry answered before the first attempt was delivered")
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		assert.Equal(t, http.StatusOK, <-first)
		assert.Equal(t, http.StatusOK, <-retried)
		assert.Zero(t, pb.Records(), "the retry sent nothing")
	})
}

// A first attempt that fails releases the request: the retry on the other
// worker handles it.
func TestFleetRetryAfterAFailedAttempt(t *testing.T) {
	t.Parallel()
	a, b, pa, pb, _, _, _ := twoWorkers(t, func(bt *record.Batch) { bt.Ack.Fail(errors.New("intake refused")) }, deliverAll)
	w, _ := serve(a, request("req-1", body("req-1", "x")))
	require.Equal(t, http.StatusInternalServerError, w.Code)
	require.Equal(t, 1, pa.Records())
	require.Eventually(t, func() bool {
		w, _ := serve(b, request("req-1", body("req-1", "x")))
		return w.Code == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, pb.Records(), "the retry delivered it")
}

// A worker that dies with the request in flight: the retry waiting on the
// other worker takes it over once the claim is not renewed.
func TestFleetRetryTakesOverFromADeadWorker(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		_, b, _, pb, _, _, store := twoWorkers(t, nil, deliverAll)
		// The dead worker's claim: written, never renewed.
		link := cas.NewLink(store)
		dead := claim.NewRequests(link, "dead", claim.Config{TTL: time.Minute, ClaimTTL: time.Second}).Claim("req-1")
		out, err := dead.Try(t.Context())
		require.NoError(t, err)
		require.Equal(t, claim.Mine, out)
		link.Cut(true) // kill -9
		start := time.Now()
		w, _ := serve(b, request("req-1", body("req-1", "x")))
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, 1, pb.Records())
		assert.Less(t, time.Since(start), 3*time.Second)
	})
}

// Without the store the worker goes on alone, and counts it.
func TestFleetStoreDownHandlesAlone(t *testing.T) {
	t.Parallel()
	a, _, pa, _, ma, _, store := twoWorkers(t, deliverAll, deliverAll)
	store.Fail = func(string, string) error { return errors.New("unreachable") }
	w, _ := serve(a, request("req-1", body("req-1", "x")))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, 1, pa.Records())
	assert.Equal(t, int64(1), ma.Value("firehose.fleet.errors"))
}
