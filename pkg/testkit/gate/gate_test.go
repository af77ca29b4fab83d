package gate

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGate(t *testing.T) {
	t.Parallel()
	var g Gate
	require.NoError(t, g.Wait(context.Background()), "open when zero")

	g.Hold()
	done := make(chan error)
	go func() { done <- g.Wait(context.Background()) }()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, g.Wait(ctx), context.Canceled, "a held call gives up with its context")
	g.Release()
	require.NoError(t, <-done, "Release lets the waiting call through")
	g.Release() // releasing an open gate is harmless
	require.NoError(t, g.Wait(context.Background()))
}
