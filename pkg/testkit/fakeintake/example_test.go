package fakeintake_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gwpipe/gwpipe/pkg/testkit/fakeintake"
)

func Example() {
	intake, err := fakeintake.New(fakeintake.Config{APIKeys: []string{"key"}})
	if err != nil {
		panic(err)
	}
	defer intake.Close()
	srv := httptest.NewServer(intake)
	defer srv.Close()

	// The code under test sends a payload…
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/logs",
		strings.NewReader(`[{"message":"GET /pets 200","service":"orders-api","ddtags":"env:prod"}]`))
	if err != nil {
		panic(err)
	}
	req.Header.Set("DD-API-KEY", "key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	// …and the test waits for it without sleeping.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := intake.WaitLogs(ctx, 1); err != nil {
		panic(err)
	}
	l := intake.Logs()[0]
	fmt.Println(resp.StatusCode, l.Message, l.Service, l.Tags)
	// Output: 202 GET /pets 200 orders-api [env:prod]
}
