package firehose

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/runtime/membudget"
)

// trickle opens a connection that announces a body of announced bytes and
// sends it one byte at a time, every gap, until the server stops it. It
// reports the status line the server answered (or the error that ended the
// connection) and how many body bytes went out.
func trickle(t *testing.T, addr, reqID string, announced int, gap time.Duration) <-chan string {
	t.Helper()
	conn := post(t, addr, "1.0", reqID, "key-one", announced, "")
	out := make(chan string, 1)
	stop := make(chan struct{})
	go func() {
		prefix := `{"requestId":"` + reqID + `","records":[{"data":"`
		for i := 0; ; i++ {
			b := byte('A')
			if i < len(prefix) {
				b = prefix[i]
			}
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
		}
	}()
	go func() {
		defer close(stop)
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		out <- strings.TrimSpace(line)
	}()
	return out
}

func TestSlowClientsDoNotStarveTheOthers(t *testing.T) {
	// A budget far smaller than what the slow clients announce: reserving
	// the announced size would refuse every other request.
	budget, err := membudget.New(4<<20, 2<<20)
	require.NoError(t, err)
	cfg := testConfig()
	cfg.MaxBodyBytes, cfg.MaxDecompressedBytes, cfg.MaxInFlightBytes = 64<<20, 64<<20, 64<<20
	cfg.BodyReadTimeout = 400 * time.Millisecond
	cfg.MinBodyRate = 64 << 10
	p := newFake(deliverAll)
	s := New(cfg, p, nil, nil, nil).WithMemory(budget)
	srv := httptest.NewServer(s)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the fake keeps what it got: let it take any number
		for {
			select {
			case <-p.got:
			case <-stop:
				return
			}
		}
	}()

	start := time.Now()
	slow := []<-chan string{
		trickle(t, addr, "slow-1", 64<<20, 10*time.Millisecond),
		trickle(t, addr, "slow-2", 64<<20, 10*time.Millisecond),
	}
	client := srv.Client()
	answered := 0
	for done := 0; done < len(slow); {
		resp, err := client.Do(httpRequest(t, srv.URL, fmt.Sprintf("ok-%d", answered), body(fmt.Sprintf("ok-%d", answered), "a", "b", "c")))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "a legitimate request while slow clients hold connections")
		answered++
		// What is reserved follows what arrived: the slow clients hold a
		// chunk each, not the 64 MiB they announced.
		assert.LessOrEqual(t, budget.Stats().AdmittedBytes, int64(3*chunkBytes/16))
		for _, ch := range slow {
			select {
			case line := <-ch:
				assert.Equal(t, "HTTP/1.1 408 Request Timeout", line, "a client too slow is cut off")
				done++
			default:
			}
		}
	}
	elapsed := time.Since(start)
	assert.Positive(t, answered)
	assert.Less(t, elapsed, 5*time.Second, "cut after about body_read_timeout, whatever the announced size")
	assert.Eventually(t, func() bool { return budget.Stats().HeldBytes == 0 }, 5*time.Second, time.Millisecond,
		"nothing stays reserved") // the last request's hooks run just after its answer
	assert.Equal(t, int64(2), s.statuses[http.StatusRequestTimeout].Load())
}

func TestAFastLargeBodyIsNotHurried(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes, cfg.MaxDecompressedBytes, cfg.MaxInFlightBytes = 64<<20, 64<<20, 64<<20
	cfg.BodyReadTimeout = 200 * time.Millisecond
	cfg.MinBodyRate = 64 << 10
	p := newFake(deliverAll)
	s := New(cfg, p, nil, nil, nil)
	srv := httptest.NewServer(s)
	defer srv.Close()
	// 8 MiB would take two minutes at the minimum rate: only a deadline
	// that moves with the bytes received lets it through.
	big := strings.Repeat("x", 6<<20)
	resp, err := srv.Client().Do(httpRequest(t, srv.URL, "big", body("big", big)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, p.Records())
}

// post opens a connection to addr and writes the head of a Firehose
// request (protocol version, request id and access key as given)
// announcing a body of length bytes, then rest: what is sent of the body,
// and whatever follows it on the connection.
func post(t *testing.T, addr, version, reqID, key string, length int, rest string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Firehose-Protocol-Version: %s\r\nX-Amz-Firehose-Request-Id: %s\r\n"+
		"X-Amz-Firehose-Access-Key: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, version, reqID, key, length, rest)
	require.NoError(t, err)
	return conn
}

// answers bounds the reading of conn to 20 s (the test's only bound: the
// server must answer by itself) and returns its reader.
func answers(t *testing.T, conn net.Conn) *bufio.Reader {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	return bufio.NewReader(conn)
}

// readAnswer reads the next answer on br, and its body; msg says what not
// reading one means.
func readAnswer(t *testing.T, br *bufio.Reader, msg string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err, msg)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, string(body)
}

// slowServer serves a Firehose source of cfg, delivering everything to p,
// until the test ends.
func slowServer(t *testing.T, cfg Config) (s *Source, p *fakePipeline, addr string) {
	t.Helper()
	p = newFake(deliverAll)
	s = New(cfg, p, nil, nil, nil)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, p, srv.Listener.Addr().String()
}

func httpRequest(t *testing.T, url, reqID string, payload []byte) *http.Request {
	t.Helper()
	r := request(reqID, payload)
	hr, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(payload)))
	require.NoError(t, err)
	hr.Header = r.Header
	return hr
}

func TestABodyThatStopsShortOfItsLengthIsAnswered408AndClosed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.BodyReadTimeout = 300 * time.Millisecond
	cfg.MinBodyRate = 64 << 10
	s, p, addr := slowServer(t, cfg)

	// A few bytes of a 1000-byte body, then nothing: the client stalls
	// without closing (its half of the connection stays open).
	conn := post(t, addr, "1.0", "stalled", "key-one", 1000, `{"requestId":"stalled","records":[{"data":"`)

	// The server must answer about body_read_timeout after the body
	// started.
	start := time.Now()
	br := answers(t, conn)
	resp, body := readAnswer(t, br, "the stalled request is answered, not held")
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, body)
	assert.Contains(t, body, `"requestId":"stalled"`)
	assert.True(t, resp.Close, "the answer says the connection closes: what remains of the body must not be read as a request")

	// The server closes its end: the next read sees EOF, not our own
	// deadline passing (that would be a worker held for the client).
	_, err := br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the connection is closed after the 408")
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, int64(1), s.statuses[http.StatusRequestTimeout].Load())
	assert.Zero(t, p.Records(), "nothing of a request cut short is published")
	assert.Zero(t, s.held.Load(), "nothing stays reserved")
}

func TestARequestRefusedBeforeItsBodyIsReadDoesNotWaitForIt(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	// Long enough that a whole body sent at once is read within it on a
	// loaded machine; the stalled ones are answered when it has passed.
	cfg.BodyReadTimeout = 2 * time.Second
	cfg.MinBodyRate = 64 << 10
	_, _, addr := slowServer(t, cfg)

	for _, tc := range []struct {
		name, key, version string
		want               int
	}{
		{"wrong access key", "not-a-key", "1.0", http.StatusUnauthorized},
		{"wrong protocol version", "key-one", "0.9", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Anyone on the Internet can open a request, announce a body
			// and stall after a few bytes of it.
			conn := post(t, addr, tc.version, "refused", tc.key, 1000, `{"requestId"`)
			br := answers(t, conn)
			resp, body := readAnswer(t, br, "the refusal is sent, not held behind the rest of the body")
			assert.Equal(t, tc.want, resp.StatusCode, body)
			assert.Contains(t, body, `"requestId":"refused"`)
			_, err := br.ReadByte()
			assert.ErrorIs(t, err, io.EOF, "the connection is closed: the server does not wait for the body")
		})
	}
	t.Run("whole body sent", func(t *testing.T) {
		// A refused request whose body arrived keeps its connection: the
		// bound is on the client's pace, not a cut.
		payload := `{"requestId":"refused","records":[]}`
		conn := post(t, addr, "1.0", "refused", "not-a-key", len(payload), payload+"GET / HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
		br := answers(t, conn)
		resp, _ := readAnswer(t, br, "the refusal is answered")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.False(t, resp.Close)
		resp, _ = readAnswer(t, br, "the next request on the connection is answered")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
}
