//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package pipeline

import (
	"context"
	"errors"
	"net"
)

// listen opens a TCP listener; SO_REUSEPORT is not available here.
func listen(ctx context.Context, addr string, reusePort bool) (net.Listener, error) {
	if reusePort {
		return nil, errors.New("reuse_port is not supported on this platform")
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}
