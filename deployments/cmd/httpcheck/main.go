// Command httpcheck is a container healthcheck: it GETs a URL and exits 0 on
// a 2xx answer, 1 otherwise. The gwpipe image is distroless (no shell, no
// curl), so Compose healthchecks run this instead:
//
//	healthcheck:
//	  test: ["CMD", "/usr/local/bin/httpcheck", "http://127.0.0.1:8090/healthz"]
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: httpcheck URL")
		return 2
	}
	if err := check(args[0], 3*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "httpcheck:", err)
		return 1
	}
	return 0
}

func check(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
