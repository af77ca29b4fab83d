package loadgen

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// BombConfig describes a decompression bomb made of valid data.
type BombConfig struct {
	ID          string // request id
	Records     int    // Firehose records
	RecordBytes int    // what each record decompresses to, about
	EventBytes  int    // each event's message, about (default 3,000)
	AccessKey   string
	Now         time.Time
}

// Bomb builds a Firehose request whose records each decompress to about
// RecordBytes of well-formed CloudWatch envelopes (concatenated, as
// CloudWatch Logs may deliver them), whose events are JSON access-log
// lines padded with one repeated character: small on the wire, huge once
// decoded, and entirely valid, so that no per-record check refuses it. It
// returns the request and how many events it carries.
func Bomb(cfg BombConfig) (*Request, int, error) {
	if cfg.Records < 1 || cfg.Records > MaxRecordsPerRequest || cfg.RecordBytes < 1 {
		return nil, 0, fmt.Errorf("bomb: records must be 1..%d and record bytes positive", MaxRecordsPerRequest)
	}
	if cfg.EventBytes <= 0 {
		cfg.EventBytes = 3000
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	ts := cfg.Now.UnixMilli()
	pad := strings.Repeat("a", max(0, cfg.EventBytes-200))
	const perEnvelope = 1_000_000 // CloudWatch's batch size

	var body, rec, env, msg bytes.Buffer
	fmt.Fprintf(&body, `{"requestId":%q,"timestamp":%d,"records":[`, cfg.ID, ts)
	events := 0
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
	for r := range cfg.Records {
		rec.Reset()
		// Stay under RecordBytes: at the limit is where a bomb is meant to
		// pass the per-record checks.
		const head = `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/apigateway/bomb/prod","logStream":"bomb","subscriptionFilters":["gwpipe"],"logEvents":[`
		for full := false; !full; {
			env.Reset()
			env.WriteString(head)
			n := 0
			for ; env.Len() < perEnvelope; n++ {
				msg.Reset()
				fmt.Fprintf(&msg, `{"id":"%056d","timestamp":%d,"message":"`, events, ts)
				line := fmt.Sprintf(`{"requestId":"%s-%d-%d","ip":"203.0.113.7","requestTime":%d,"httpMethod":"GET","resourcePath":"/pets","status":200,"protocol":"HTTP/1.1","responseLength":512,"userAgent":"%s"}`,
					cfg.ID, r, events, ts, pad)
				msg.Write(appendJSONString(nil, line))
				msg.WriteString(`"}`)
				if rec.Len()+env.Len()+msg.Len()+3 > cfg.RecordBytes {
					full = true
					break
				}
				if n > 0 {
					env.WriteByte(',')
				}
				env.Write(msg.Bytes())
				events++
			}
			if n == 0 {
				break
			}
			env.WriteString("]}")
			rec.Write(env.Bytes())
		}
		var gz bytes.Buffer
		zw.Reset(&gz)
		_, _ = zw.Write(rec.Bytes())
		if err := zw.Close(); err != nil {
			return nil, 0, err
		}
		if r > 0 {
			body.WriteByte(',')
		}
		body.WriteString(`{"data":"`)
		body.WriteString(base64.StdEncoding.EncodeToString(gz.Bytes()))
		body.WriteString(`"}`)
	}
	body.WriteString("]}")
	req := &Request{
		ID: cfg.ID, Timestamp: ts, Body: body.Bytes(), RawSize: body.Len(), Records: cfg.Records,
		Account: "123456789012", Region: "eu-west-1", Stream: DefaultStreamName,
		SourceARN: "arn:aws:firehose:eu-west-1:123456789012:deliverystream/" + DefaultStreamName,
	}
	req.Header = firehoseHeader(req, cfg.AccessKey)
	return req, events, nil
}
