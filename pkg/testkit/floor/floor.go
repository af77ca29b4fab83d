// Package floor measures what gwpipe's job costs at the least: a minimal
// single-core loop doing only the work no implementation can avoid on
// CloudWatch envelopes of JSON access logs — gunzip the envelope, parse it
// and each message with fastjson, write each event as a Datadog log (the
// message, its CloudWatch fields and the message's fields as attributes),
// gzip batches of 1,000 logs at level 1.
//
// The end-to-end benchmark (make bench) divides gwpipe's events per
// CPU-second by the floor's, measured in the same run on the same traffic:
// absolute figures vary with the machine and its load, the ratio far less.
//
// Worker.Contract (loadgen -floor-contract) makes the same loop write the
// whole log of gwpipe's output contract (DESIGN.md §4) — also the API's
// tags, Datadog's standard attributes, the duration and the level from the
// HTTP status — which is what gwpipe must write: about 30 % more bytes to
// gzip. make bench reports the ratio to both.
//
// Left out on purpose, so the floor is if anything too high: the Firehose
// HTTP body and base64 (the corpus holds the decoded records), HTTP, request
// bodies' JSON wrapping, enrichment and metrics.
package floor

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"
	"github.com/gwpipe/gwpipe/pkg/testkit/loadgen"
	"github.com/gwpipe/gwpipe/pkg/testkit/procstat"
)

// LogsPerPayload is the batch size of the output, the intake's maximum.
const LogsPerPayload = 1000

// Corpus is the input of a floor run: the records of Firehose requests, as
// gzipped CloudWatch envelopes.
type Corpus struct {
	Records [][]byte
	// Base64 holds the same records as they are on the wire (what a
	// pipeline's decode stage reads).
	Base64 [][]byte
	Events int // log events in Records (control messages excluded)
}

// NewCorpus generates requests carrying at least events events with cfg,
// exactly as loadgen sends them, and keeps their records' data
// (base64-decoded).
func NewCorpus(cfg loadgen.Config, events int) (*Corpus, error) {
	c := &Corpus{}
	err := EachRequest(cfg, func(req *loadgen.Request, data, b64 [][]byte) (bool, error) {
		for i := range data {
			c.Records = append(c.Records, bytes.Clone(data[i]))
			c.Base64 = append(c.Base64, bytes.Clone(b64[i]))
		}
		c.Events += len(req.Events)
		return c.Events < events, nil
	})
	return c, err
}

// EachRequest generates requests with cfg (control messages off), exactly
// as loadgen sends them, and hands fn each one with its records' data,
// base64-decoded and as on the wire, until fn returns false or an error.
// The slices are valid only during the call.
func EachRequest(cfg loadgen.Config, fn func(req *loadgen.Request, data, b64 [][]byte) (bool, error)) error {
	if cfg.Direct {
		return errors.New("floor: direct mode has no CloudWatch envelopes")
	}
	cfg.ControlRate = 0
	g, err := loadgen.NewGenerator(cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	var p fastjson.Parser
	var data, b64 [][]byte
	for {
		req, err := g.NextRequest()
		if err != nil {
			return err
		}
		v, err := p.ParseBytes(req.Body)
		if err != nil {
			return fmt.Errorf("floor: request body: %w", err)
		}
		data, b64 = data[:0], b64[:0]
		for _, r := range v.GetArray("records") {
			s := r.GetStringBytes("data")
			d, err := base64.StdEncoding.DecodeString(string(s))
			if err != nil {
				return fmt.Errorf("floor: record data: %w", err)
			}
			data, b64 = append(data, d), append(b64, s)
		}
		if more, err := fn(req, data, b64); err != nil || !more {
			return err
		}
	}
}

// Result is what one floor run did and cost.
type Result struct {
	Events     int
	Logs       int           // logs written (= Events)
	OutBytes   int64         // gzipped payload bytes
	PlainBytes int64         // payload bytes before gzip
	CPU        time.Duration // process CPU time, GC included
	Wall       time.Duration
	Iterations int // passes over the corpus
}

// EventsPerCPUSecond is the floor's figure.
func (r Result) EventsPerCPUSecond() float64 {
	if r.CPU <= 0 {
		return 0
	}
	return float64(r.Events) / r.CPU.Seconds()
}

// Run processes the corpus passes times on one core (it sets GOMAXPROCS to
// 1 for its duration: GC then shares the core, as it must be counted) and
// measures the process's CPU time.
// With contract, the logs are the output contract's (Worker.Contract).
func Run(c *Corpus, passes int, contract bool) (Result, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w := NewWorker()
	w.Contract = contract
	runtime.GC()
	cpu0, t0 := procstat.CPU(), time.Now()
	for range passes {
		for _, rec := range c.Records {
			if err := w.Record(rec); err != nil {
				return Result{}, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return Result{}, err
	}
	return Result{Events: w.Logs, Logs: w.Logs, OutBytes: w.OutBytes, PlainBytes: w.PlainBytes, CPU: procstat.CPU() - cpu0,
		Wall: time.Since(t0), Iterations: passes}, nil
}

// Worker is the loop's state; its buffers are reused across records.
type Worker struct {
	// Contract makes the floor write the whole log of gwpipe's output
	// contract (DESIGN.md §4), not only the message, its CloudWatch fields
	// and the message's fields: also the API's tags, Datadog's standard
	// attributes, the duration and the level from the HTTP status, which
	// no implementation of the contract can avoid either.
	Contract bool

	Logs       int
	OutBytes   int64
	PlainBytes int64

	zr      *gzip.Reader
	src     bytes.Reader
	env     []byte
	envP    fastjson.Parser
	msgP    fastjson.Parser
	payload []byte // the JSON array being built
	inBatch int
	zw      *gzip.Writer
	out     countWriter
	fields  contractFields
}

// NewWorker returns a worker with empty buffers.
func NewWorker() *Worker {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level never fails
	return &Worker{zw: zw, payload: make([]byte, 0, 1<<20)}
}

// Record processes one gzipped CloudWatch envelope.
func (w *Worker) Record(gz []byte) error {
	w.src.Reset(gz)
	if w.zr == nil {
		zr, err := gzip.NewReader(&w.src)
		if err != nil {
			return fmt.Errorf("floor: gunzip: %w", err)
		}
		w.zr = zr
	} else if err := w.zr.Reset(&w.src); err != nil {
		return fmt.Errorf("floor: gunzip: %w", err)
	}
	buf := bytes.NewBuffer(w.env[:0])
	if _, err := buf.ReadFrom(w.zr); err != nil {
		return fmt.Errorf("floor: gunzip: %w", err)
	}
	w.env = buf.Bytes()
	env, err := w.envP.ParseBytes(w.env)
	if err != nil {
		return fmt.Errorf("floor: envelope: %w", err)
	}
	if string(env.GetStringBytes("messageType")) != "DATA_MESSAGE" {
		return nil
	}
	owner := env.GetStringBytes("owner")
	group := env.GetStringBytes("logGroup")
	stream := env.GetStringBytes("logStream")
	for _, ev := range env.GetArray("logEvents") {
		msg := ev.GetStringBytes("message")
		w.appendLog(owner, group, stream, ev.GetStringBytes("id"), ev.GetInt64("timestamp"), msg)
		if w.inBatch == LogsPerPayload {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendLog writes one Datadog log onto the payload.
func (w *Worker) appendLog(owner, group, stream, id []byte, ts int64, msg []byte) {
	p := w.payload
	if w.inBatch == 0 {
		p = append(p[:0], '[')
	} else {
		p = append(p, ',')
	}
	// A message that is not valid JSON (loadgen's bare "-" for a missing
	// length) is delivered as its text alone, as any parser must at least
	// do.
	fields, _ := w.msgP.ParseBytes(msg)
	var o *fastjson.Object
	if fields != nil {
		o, _ = fields.Object()
	}
	level := "info"
	if w.Contract && o != nil {
		// The level comes before the fields in the log, so it is looked up.
		if st := o.Get("status"); st != nil {
			switch n, _ := st.Int(); {
			case n >= 500:
				level = "error"
			case n >= 400:
				level = "warn"
			}
		}
	}
	p = append(p, `{"ddsource":"apigateway","service":"apigateway","hostname":`...)
	p = AppendString(p, group)
	p = append(p, `,"timestamp":`...)
	p = strconv.AppendInt(p, ts, 10)
	p = append(p, `,"status":"`...)
	p = append(p, level...)
	p = append(p, `","id":`...)
	p = AppendString(p, id)
	p = append(p, `,"message":`...)
	p = AppendString(p, msg)
	p = append(p, `,"aws":{"awslogs":{"logGroup":`...)
	p = AppendString(p, group)
	p = append(p, `,"logStream":`...)
	p = AppendString(p, stream)
	p = append(p, `,"owner":`...)
	p = AppendString(p, owner)
	p = append(p, `}}`...)
	// The message's fields as attributes, values as parsed.
	if o != nil {
		p = append(p, `,"apigateway":{`...)
		first := true
		w.fields = contractFields{}
		o.Visit(func(k []byte, v *fastjson.Value) {
			if !first {
				p = append(p, ',')
			}
			first = false
			p = AppendString(p, k)
			p = append(p, ':')
			p = v.MarshalTo(p)
			if w.Contract {
				w.fields.see(k, v)
			}
		})
		p = append(p, '}')
		if w.Contract {
			p = appendContract(p, &w.fields, owner)
		}
	}
	p = append(p, '}')
	w.payload = p
	w.inBatch++
	w.Logs++
}

// contractFields are the access-log fields (as loadgen names them) the
// output contract needs besides the attributes, found during the one walk
// over the message's fields: strings by contractStrings' index, numbers by
// contractNumbers'.
type contractFields struct {
	str [7][]byte
	num [3]*fastjson.Value
}

const (
	cAPIID = iota
	cStage
	cMethod
	cRoute
	cRequestID
	cProtocol
	cIP
)

var (
	contractStrings = map[string]int{"apiId": cAPIID, "stage": cStage, "httpMethod": cMethod, "resourcePath": cRoute,
		"requestId": cRequestID, "protocol": cProtocol, "ip": cIP}
	contractNumbers = map[string]int{"status": 0, "responseLength": 1, "responseLatency": 2}
)

// see notes the value of key if the contract needs it.
func (c *contractFields) see(k []byte, v *fastjson.Value) {
	if i, ok := contractNumbers[string(k)]; ok && v.Type() == fastjson.TypeNumber {
		c.num[i] = v
	} else if i, ok := contractStrings[string(k)]; ok && v.Type() == fastjson.TypeString {
		if b, _ := v.StringBytes(); len(b) > 0 && !(len(b) == 1 && b[0] == '-') {
			c.str[i] = b
		}
	}
}

// appendContract writes what the output contract adds to a log (DESIGN.md
// §4: the API's tags, Datadog's standard attributes and the duration).
func appendContract(p []byte, c *contractFields, owner []byte) []byte {
	p = append(p, `,"ddtags":"`...)
	p = appendEscapedTag(p, "apiid:", c.str[cAPIID])
	p = appendEscapedTag(append(p, ','), "stage:", c.str[cStage])
	p = append(p, ",region:us-east-1"...)
	p = appendEscapedTag(append(p, ','), "aws_account:", owner)
	p = append(p, `","http":{`...)
	n := len(p)
	p = appendMember(p, n, "method", c.str[cMethod], nil)
	p = appendMember(p, n, "route", c.str[cRoute], nil)
	p = appendMember(p, n, "request_id", c.str[cRequestID], nil)
	p = appendMember(p, n, "status_code", nil, c.num[0])
	p = appendMember(p, n, "version", bytes.TrimPrefix(c.str[cProtocol], []byte("HTTP/")), nil)
	p = append(p, `},"network":{`...)
	n = len(p)
	if c.str[cIP] != nil {
		p = append(p, `"client":{"ip":`...)
		p = AppendString(p, c.str[cIP])
		p = append(p, '}')
	}
	p = appendMember(p, n, "bytes_written", nil, c.num[1])
	p = append(p, '}')
	if c.num[2] != nil {
		p = append(p, `,"duration":`...)
		p = strconv.AppendInt(p, c.num[2].GetInt64()*1e6, 10)
	}
	return p
}

// appendMember appends "key":value to an object opened at n, when the
// value (a string, or else a number) is set.
func appendMember(p []byte, n int, key string, str []byte, num *fastjson.Value) []byte {
	if str == nil && num == nil {
		return p
	}
	if len(p) > n {
		p = append(p, ',')
	}
	p = append(p, '"')
	p = append(p, key...)
	p = append(p, `":`...)
	if str != nil {
		return AppendString(p, str)
	}
	return num.MarshalTo(p)
}

// appendEscapedTag appends name and value, escaped inside a JSON string.
func appendEscapedTag(p []byte, name string, value []byte) []byte {
	p = append(p, name...)
	q := AppendString(p, value)
	copy(q[len(p):], q[len(p)+1:len(q)-1]) // without its quotes
	return q[:len(q)-2]
}

// Flush gzips the logs written since the last flush.
func (w *Worker) Flush() error {
	if w.inBatch == 0 {
		return nil
	}
	w.payload = append(w.payload, ']')
	w.PlainBytes += int64(len(w.payload))
	w.zw.Reset(&w.out)
	if _, err := w.zw.Write(w.payload); err != nil {
		return err
	}
	if err := w.zw.Close(); err != nil {
		return err
	}
	w.OutBytes, w.out.n = w.OutBytes+w.out.n, 0
	w.payload, w.inBatch = w.payload[:0], 0
	return nil
}

// countWriter discards the compressed payload: sending it is not the floor.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)

// AppendString appends s as a JSON string, with gwpipe's own escaper (the
// floor should not lose to gwpipe on a detail of escaping).
func AppendString(dst, s []byte) []byte {
	return jsonstr.AppendQuoted(dst, unsafe.String(unsafe.SliceData(s), len(s)))
}
