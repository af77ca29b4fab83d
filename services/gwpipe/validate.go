package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/preflight"
)

// connectChecks is `gwpipe validate --connect`: one line per check, and
// an error when one failed.
func connectChecks(ctx context.Context, c config.Config, timeout time.Duration, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	rs := preflight.Run(ctx, c, preflight.Options{Timeout: timeout})
	for _, r := range rs {
		fmt.Fprintln(w, r)
	}
	if n := preflight.Failed(rs); n > 0 {
		return fmt.Errorf("%d of %d connection checks failed", n, len(rs))
	}
	fmt.Fprintf(w, "all %d connection checks passed\n", len(rs))
	return nil
}
