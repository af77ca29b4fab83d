// Package moto starts moto_server, the AWS emulator that speaks the real
// wire protocols, for tests that need AWS on 127.0.0.1. Every AWS test of
// the module starts its server through here.
package moto

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/gwpipe/gwpipe/pkg/awsconf"
	"github.com/gwpipe/gwpipe/pkg/testkit/syncbuf"
)

// Region is the region the tests' AWS configuration uses.
const Region = "us-east-1"

// Start runs moto_server on a free 127.0.0.1 port until the test ends and
// returns its endpoint URL. It points the AWS SDK at it through the
// environment (AWS_ENDPOINT_URL, Region, static test credentials, no shared
// profile), so child processes the test starts reach it too. The test is
// skipped only when moto_server is not installed.
func Start(tb testing.TB) string {
	tb.Helper()
	url := Run(tb)
	tb.Setenv("AWS_ENDPOINT_URL", url)
	tb.Setenv("AWS_REGION", Region)
	tb.Setenv("AWS_ACCESS_KEY_ID", "testing")
	tb.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	tb.Setenv("AWS_SESSION_TOKEN", "")
	tb.Setenv("AWS_PROFILE", "")
	tb.Setenv("AWS_CONFIG_FILE", os.DevNull)
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return url
}

// Config is Start for a test that builds its own clients: it skips the
// test with -short (moto_server takes a second or two to start) and returns
// the SDK configuration that reaches the server, loaded the one way gwpipe
// loads it.
func Config(tb testing.TB) aws.Config {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs moto_server")
	}
	Start(tb)
	cfg, err := awsconf.Load(context.Background(), Region)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// Unreachable points the AWS SDK, through the environment, at an endpoint
// nothing listens on, with static test credentials: every AWS call of the
// test (and of the processes it starts) fails, as with AWS unreachable.
func Unreachable(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	tb.Setenv("AWS_ENDPOINT_URL", "http://"+addr)
	tb.Setenv("AWS_REGION", Region)
	tb.Setenv("AWS_ACCESS_KEY_ID", "testing")
	tb.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Run is Start without touching the environment, for parallel tests that
// configure their AWS clients themselves.
func Run(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		tb.Skip("moto_server is not installed (see .ci/run): skipping the test against it")
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		url, err := run(tb, bin)
		if err == nil {
			return url
		}
		lastErr = err
	}
	tb.Fatalf("moto_server did not start: %v", lastErr)
	return ""
}

func run(tb testing.TB, bin string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	// Its own process group, so that stopping it stops any child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncbuf.Buffer{} // the server's output, for failure messages
	cmd.Stdout, cmd.Stderr = out, out
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitReady(url, exited, 60*time.Second); err != nil {
		stop()
		return "", fmt.Errorf("%w; output:\n%s", err, out.String())
	}
	tb.Cleanup(stop)
	return url, nil
}

// waitReady polls until moto answers HTTP or exits: the condition awaited
// is the server answering, and it offers no other notification.
func waitReady(url string, exited <-chan error, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		if resp, err := client.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("moto_server exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("moto_server not answering on %s after %s", url, limit)
		case <-poll.C:
		}
	}
}
