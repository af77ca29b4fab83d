package awstags

import (
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"

	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// motoServer is a moto_server process of one test, on 127.0.0.1.
type motoServer struct {
	URL string
}

// startMoto starts moto_server for the test and warms its tagging backend.
func startMoto(tb testing.TB) *motoServer {
	tb.Helper()
	url := moto.Run(tb) // these tests run in parallel: no environment
	if err := warmTagging(url); err != nil {
		tb.Fatal(err)
	}
	return &motoServer{URL: url}
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
