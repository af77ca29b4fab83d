package stage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestShutdownOfARuntimeNeverStarted: a pipeline whose Start failed before
// the router ran (a broker or a certificate out of reach) shuts down at
// once — there is no handler to wait for — instead of waiting out the
// router's close timeout.
func TestShutdownOfARuntimeNeverStarted(t *testing.T) {
	t.Parallel()
	rt := newRuntime(t, Config{CloseTimeout: time.Minute})
	require.NoError(t, rt.Add(Stage{Name: "deliver", Input: "raw", Handler: &sink{}}))
	require.NoError(t, rt.Add(Stage{Name: "dlq", Input: "dlq", Handler: &sink{}}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, rt.Shutdown(ctx), "nothing ran: nothing to wait for")
}
