package awstags

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// motoServer is a moto_server process of one test, on 127.0.0.1.
type motoServer struct {
	URL string
}

// startMoto starts moto_server on a free port, waits until it answers HTTP
// and stops it when the test ends. It skips the test only when moto_server
// is not installed.
func startMoto(tb testing.TB) *motoServer {
	tb.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		tb.Skip("moto_server is not installed (pip install 'moto[server]'): skipping the test against it")
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		port, err := freePort()
		if err != nil {
			tb.Fatalf("find a free port: %v", err)
		}
		m, err := runMoto(tb, bin, port)
		if err == nil {
			return m
		}
		lastErr = err
	}
	tb.Fatalf("moto_server did not start: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the server's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runMoto(tb testing.TB, bin string, port int) (*motoServer, error) {
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	// Its own process group, so that stopping it stops any child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := waitHTTP(url, exited, 30*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("%w; output:\n%s", err, out.String())
	}
	if err := warmTagging(url); err != nil {
		stop()
		return nil, fmt.Errorf("%w; output:\n%s", err, out.String())
	}
	tb.Cleanup(stop)
	return &motoServer{URL: url}, nil
}

// warmTagging makes moto load its tagging backend, which imports every
// other backend and takes seconds on its first call; the tests then time
// the code under test, not moto's start-up.
func warmTagging(url string) error {
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader("{}"))
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Target", "ResourceGroupsTaggingAPI_20170126.GetResources")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/tagging/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("warm moto's tagging API: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("warm moto's tagging API: HTTP %d", resp.StatusCode)
	}
	return nil
}

// waitHTTP polls until url answers (any status) or the process exits.
func waitHTTP(url string, exited <-chan error, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		resp, err := client.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("moto_server exited: %v", err)
		case <-deadline.C:
			return fmt.Errorf("moto_server not answering on %s after %s", url, limit)
		case <-poll.C:
		}
	}
}

// awsConfig is the pipeline's own configuration pointed at moto; moto maps
// these static keys to its default account 123456789012.
func (m *motoServer) awsConfig() aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(m.URL),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
}

// motoCallTimeout is the Tagger's CallTimeout in tests against moto, which
// is slow when several instances share the machine's cores.
const motoCallTimeout = time.Minute

// motoCtx bounds a test's setup calls.
func motoCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
