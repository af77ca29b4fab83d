package firehose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"
)

// referenceBody is what the endpoint read from a body before it streamed
// it: the whole body parsed by fastjson. The streaming parser must agree
// with it.
type referenceBody struct {
	RequestID  string
	Timestamp  int64
	HasRecords bool
	Records    []string
}

func referenceParse(data []byte) (referenceBody, bool) {
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil || v.Type() != fastjson.TypeObject {
		return referenceBody{}, false
	}
	out := referenceBody{RequestID: string(v.GetStringBytes("requestId")), Timestamp: v.GetInt64("timestamp")}
	recs := v.Get("records")
	if recs == nil {
		return out, true
	}
	if recs.Type() != fastjson.TypeArray {
		return referenceBody{}, false
	}
	out.HasRecords = true
	items, _ := recs.Array()
	if len(items) > MaxRecords {
		return referenceBody{}, false
	}
	for _, it := range items {
		d := it.Get("data")
		if it.Type() != fastjson.TypeObject || (d != nil && d.Type() != fastjson.TypeString) {
			return referenceBody{}, false
		}
		out.Records = append(out.Records, string(it.GetStringBytes("data")))
	}
	return out, true
}

func streamParse(t testing.TB, r io.Reader) (referenceBody, *requestBody, error) {
	var charged int64
	b, err := parseBody(r, func(n int64) error { charged += n; return nil })
	if err != nil {
		return referenceBody{}, nil, err
	}
	require.Equal(t, charged, b.Kept, "what was charged is what is kept")
	out := referenceBody{RequestID: string(b.RequestID), Timestamp: b.Timestamp, HasRecords: b.HasRecords}
	for _, r := range b.Records {
		out.Records = append(out.Records, string(r))
	}
	return out, b, nil
}

// checkAgainstReference: on valid JSON both parsers agree; the streaming
// parser never accepts what the reference refuses, nor reads it otherwise.
func checkAgainstReference(t *testing.T, data []byte) {
	want, refOK := referenceParse(data)
	for name, r := range map[string]io.Reader{"whole": bytes.NewReader(data), "byte by byte": iotest.OneByteReader(bytes.NewReader(data))} {
		got, _, err := streamParse(t, r)
		if err == nil {
			require.True(t, refOK, "%s: accepted what fastjson refuses: %q", name, data)
			require.Equal(t, want, got, "%s: %q", name, data)
		} else {
			require.ErrorIs(t, err, errMalformed, "%s: %q", name, data)
			require.False(t, json.Valid(data) && refOK, "%s: refused valid JSON that fastjson reads: %q: %v", name, data, err)
		}
	}
}

var bodySeeds = []string{
	`{"requestId":"r","timestamp":1578090901599,"records":[{"data":"aGVsbG8="},{"data":""},{}]}`,
	` {"records":[] , "requestId" : "r"} `,
	`{"requestId":"r","records":[{"data":"a\/b\\c\"d\u0041","other":{"x":[1,2.5e3,-0,true,false,null]}}]}`,
	`{"re\u0071uestId":"escaped key","records":[]}`,
	`{"requestId":"first","requestId":"second","records":[{"data":"1"}],"records":[{"data":"2"}]}`,
	`{"requestId":7,"timestamp":"x","records":[]}`,
	`{"requestId":"r","timestamp":1.5,"records":[]}`,
	`{"requestId":"r","timestamp":-12,"records":[]}`,
	`{"requestId":"r","timestamp":99999999999999999999,"records":[]}`,
	`{"requestId":"r","records":[{"data":"x","data":7}]}`,
	`{"requestId":"r","records":[{"data":7}]}`,
	`{"requestId":"r","records":[42]}`,
	`{"requestId":"r","records":{}}`,
	`{"requestId":"r"}`,
	`{"requestId":"r","records":[]}x`,
	`{"requestId":"r","records":[],}`,
	`{"requestId":"r","records":[{"data":"\\"}]}`,
	`{"requestId":"r","records":[{"data":"\\\"}]}`,
	`{"requestId":"r","n":01,"records":[]}`,
	`{"requestId":"r","n":1.,"records":[]}`,
	`{"requestId":"r","n":-,"records":[]}`,
	`{"requestId":"r","n":tru,"records":[]}`,
	`[1,2]`,
	``,
	`{`,
	`{"requestId":"r","records":[{"data":"` + strings.Repeat("QUJD", 40000) + `"},{"data":"` + strings.Repeat("x", 70000) + `\/"}]}`,
	`{"requestId":"r","deep":` + strings.Repeat("[", 299) + strings.Repeat("]", 299) + `,"records":[]}`,
	`{"requestId":"r","deep":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `,"records":[]}`,
}

func TestBodyParserMatchesFastjson(t *testing.T) {
	t.Parallel()
	for _, s := range bodySeeds {
		checkAgainstReference(t, []byte(s))
	}
}

func FuzzBodyParser(f *testing.F) {
	for _, s := range bodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstReference(t, data)
	})
}

func TestBodyParserKeepsRecordsApart(t *testing.T) {
	t.Parallel()
	// Records outlive the parse: each must be its own bytes, whatever the
	// chunk it was kept in.
	var recs []string
	var sb strings.Builder
	sb.WriteString(`{"requestId":"r","records":[`)
	for i := range 300 {
		if i > 0 {
			sb.WriteByte(',')
		}
		r := strings.Repeat(fmt.Sprint(i%10), 1+i*97%5000)
		recs = append(recs, r)
		fmt.Fprintf(&sb, `{"data":%q}`, r)
	}
	sb.WriteString("]}")
	got, b, err := streamParse(t, strings.NewReader(sb.String()))
	require.NoError(t, err)
	assert.Equal(t, recs, got.Records)
	for i := range b.Records {
		assert.Equal(t, len(b.Records[i]), cap(b.Records[i]), "a record cannot grow into its neighbour")
	}
}

func TestBodyParserStopsWhenRefused(t *testing.T) {
	t.Parallel()
	refuse := errors.New("refused")
	var charged int64
	body := `{"requestId":"r","records":[{"data":"` + strings.Repeat("x", 1<<20) + `"}]}`
	_, err := parseBody(strings.NewReader(body), func(n int64) error {
		if charged+n > 300<<10 {
			return refuse
		}
		charged += n
		return nil
	})
	require.ErrorIs(t, err, refuse)
	assert.LessOrEqual(t, charged, int64(300<<10))
}
