// Package s3objtest helps the tests and benchmarks of gwpipe's S3 and SQS
// paths: it starts a private moto_server (the AWS emulator) and builds
// realistic archive objects.
package s3objtest

import (
	"github.com/gwpipe/gwpipe/pkg/testkit/moto"

	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/klauspost/compress/gzip"

	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
)

// Region is the region the emulator is used in.
const Region = "us-east-1"

// Account is moto's default account.
const Account = "123456789012"

// Moto is a moto_server of one test.
type Moto struct {
	Endpoint string // http://127.0.0.1:PORT
}

// StartMoto starts moto_server on a free 127.0.0.1 port and stops it when
// the test ends. It skips the test when moto_server is not installed, and
// points the AWS SDK's environment at it (AWS_ENDPOINT_URL, AWS_REGION,
// static credentials), so that code loading the default AWS configuration
// reaches the emulator.
func StartMoto(tb testing.TB) *Moto {
	tb.Helper()
	return &Moto{Endpoint: moto.Start(tb)}
}

// AWSConfig is an SDK configuration for the emulator.
func (m *Moto) AWSConfig() aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(m.Endpoint),
	}
}

// Archive is a Firehose archive of CloudWatch Logs subscription data, as
// loadgen's traffic would have left it in S3.
type Archive struct {
	Objects [][]byte        // each object: gzip members concatenated
	Events  []loadgen.Event // every event, in object order
	PerObj  []int           // events in each object
}

// FirehoseArchive builds objects holding events events of realistic API
// Gateway traffic (loadgen's mix), each object the records of one Firehose
// delivery. The clock fixes every event's timestamp around at.
func FirehoseArchive(seed int64, events int, perObject int, at time.Time) (*Archive, error) {
	g, err := loadgen.NewGenerator(loadgen.Config{
		Seed: seed, RecordsPerRequest: 50, EventsPerRecord: 100,
		Clock: func() time.Time { return at },
	})
	if err != nil {
		return nil, err
	}
	defer g.Close()
	a := &Archive{}
	var cur bytes.Buffer
	curEvents := 0
	for len(a.Events) < events {
		req, err := g.NextRequest()
		if err != nil {
			return nil, err
		}
		var body struct {
			Records []struct {
				Data string `json:"data"`
			} `json:"records"`
		}
		if err := json.Unmarshal(req.Body, &body); err != nil {
			return nil, fmt.Errorf("loadgen body: %w", err)
		}
		for _, r := range body.Records {
			member, err := base64.StdEncoding.DecodeString(r.Data)
			if err != nil {
				return nil, err
			}
			cur.Write(member)
		}
		a.Events = append(a.Events, req.Events...)
		curEvents += len(req.Events)
		if curEvents >= perObject {
			a.Objects = append(a.Objects, bytes.Clone(cur.Bytes()))
			a.PerObj = append(a.PerObj, curEvents)
			cur.Reset()
			curEvents = 0
		}
	}
	if curEvents > 0 {
		a.Objects = append(a.Objects, bytes.Clone(cur.Bytes()))
		a.PerObj = append(a.PerObj, curEvents)
	}
	return a, nil
}

// LargeObject is an object of a given size (as stored) generated on the
// fly: gzip members (stored blocks, so that generating it costs little) of
// CloudWatch envelopes of access-log events one millisecond apart from a
// start time; Events counts the events generated. Nothing but the member
// being generated is in memory.
type LargeObject struct {
	size, emitted int64
	buf           bytes.Buffer
	doc           []byte
	zw            *gzip.Writer
	n             int64
	at            int64
	// Events is the number of events generated so far.
	Events int64
}

// LargeObjectSize is the size of the object the large-object benchmarks
// stream: GWPIPE_BENCH_OBJECT_BYTES, 2 GiB when unset.
func LargeObjectSize(tb testing.TB) int64 {
	tb.Helper()
	s := os.Getenv("GWPIPE_BENCH_OBJECT_BYTES")
	if s == "" {
		return 2 << 30
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		tb.Fatalf("GWPIPE_BENCH_OBJECT_BYTES: %v", err)
	}
	return n
}

// NewLargeObject returns a generator of size bytes whose events start at at.
func NewLargeObject(size int64, at time.Time) *LargeObject {
	zw, _ := gzip.NewWriterLevel(nil, gzip.NoCompression)
	return &LargeObject{size: size, zw: zw, at: at.UnixMilli()}
}

// Read implements io.Reader.
func (l *LargeObject) Read(p []byte) (int, error) {
	if l.buf.Len() == 0 {
		if l.emitted >= l.size {
			return 0, io.EOF
		}
		l.member()
	}
	n, _ := l.buf.Read(p)
	l.emitted += int64(n)
	return n, nil
}

func (l *LargeObject) member() {
	d := l.doc[:0]
	d = append(d, `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/api-gateway/a1b2c3d4e5/prod","logStream":"`...)
	d = strconv.AppendInt(d, l.n%64, 10)
	d = append(d, `","subscriptionFilters":["gwpipe"],"logEvents":[`...)
	for i := range 200 {
		if i > 0 {
			d = append(d, ',')
		}
		l.n++
		d = append(d, `{"id":"`...)
		d = strconv.AppendInt(d, 1_000_000_000+l.n, 10)
		d = append(d, `","timestamp":`...)
		d = strconv.AppendInt(d, l.at+l.n, 10) // a millisecond apart, as live traffic
		d = append(d, `,"message":"{\"requestId\":\"`...)
		d = strconv.AppendInt(d, l.n, 36)
		d = append(d, `\",\"ip\":\"203.0.113.`...)
		d = strconv.AppendInt(d, l.n%250, 10)
		d = append(d, `\",\"requestTime\":\"29/Nov/2026:06:00:00 +0000\",\"httpMethod\":\"GET\",\"resourcePath\":\"/pets/{petId}\",\"status\":\"200\",\"protocol\":\"HTTP/1.1\",\"responseLength\":\"512\"}"}`...)
	}
	d = append(d, "]}"...)
	l.doc = d
	l.Events += 200
	l.zw.Reset(&l.buf)
	_, _ = l.zw.Write(d)
	_ = l.zw.Close()
}
