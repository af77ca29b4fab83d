package tap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Read streams a tap from the admin endpoint at addr (host:port or a
// URL): the event lines go to out as they come; the status lines are
// returned, the last one seen. It returns when the server ends the stream
// (Status.End says why) or ctx ends (then with ctx's error).
func Read(ctx context.Context, client *http.Client, addr, topic string, limit int64, out io.Writer) (Status, error) {
	st := Status{Topic: topic}
	u, err := endpoint(addr, topic, limit)
	if err != nil {
		return st, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("tap %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return st, fmt.Errorf("tap %s: %s: %s", addr, resp.Status, bytes.TrimSpace(msg))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20) // a log renders to 1 MB at most
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"tap":`)) {
			var s statusLine
			if err := json.Unmarshal(line, &s); err == nil {
				st = s.Tap
				continue
			}
		}
		if _, err := out.Write(append(line, '\n')); err != nil {
			return st, err
		}
	}
	if ctx.Err() != nil {
		return st, ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("tap %s: %w", addr, err)
	}
	if st.End == "" {
		return st, errors.New("tap: the stream ended without its last status line (the server went away)")
	}
	return st, nil
}

// endpoint is the /tap URL of addr.
func endpoint(addr, topic string, limit int64) (string, error) {
	base := addr
	if u, err := url.Parse(addr); err != nil || u.Scheme == "" || u.Host == "" {
		base = "http://" + addr
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("--admin %q: %w", addr, err)
	}
	u.Path = "/tap"
	q := url.Values{"topic": {topic}}
	if limit > 0 {
		q.Set("limit", strconv.FormatInt(limit, 10))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
