//go:build linux || darwin || freebsd || netbsd || openbsd

package pipeline

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With reuse_port, two workers on one host share the Firehose port; without
// it the second is refused as before.
func TestListenReusePort(t *testing.T) {
	ctx := context.Background()
	a, err := listen(ctx, "127.0.0.1:0", true)
	require.NoError(t, err)
	defer a.Close()
	b, err := listen(ctx, a.Addr().String(), true)
	require.NoError(t, err, "a second listener shares the port")
	defer b.Close()
	_, err = listen(ctx, a.Addr().String(), false)
	assert.Error(t, err, "without reuse_port the port is taken")
}
