// Package record holds the unit of work that flows between gwpipe's stages: a
// Batch of Records, each remembering where it came from (Origin) and, once
// parsed, the Datadog attributes it will be delivered with.
//
// Byte slices in a Record (Message, Attr.Str) may alias buffers owned by the
// Batch; a stage that keeps a Record beyond the life of its Batch must copy.
package record

import "sync/atomic"

// Kind says what a record holds, as far as the pipeline has understood it.
type Kind uint8

const (
	KindRaw       Kind = iota // undecoded source bytes (e.g. one Firehose record)
	KindLine                  // one decoded log line, not yet parsed
	KindAccess                // an API Gateway access log
	KindExecution             // an API Gateway REST/WebSocket execution log line
	KindOther                 // a log that is not from API Gateway
	KindUnparsed              // looked like API Gateway but could not be parsed
	KindSummary               // a request summary folded from execution-log lines
)

var kindNames = [...]string{"raw", "line", "access", "execution", "other", "unparsed", "summary"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Level is the Datadog log status.
type Level uint8

const (
	LevelInfo Level = iota
	LevelWarn
	LevelError
)

func (l Level) String() string {
	switch l {
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	default:
		return "info"
	}
}

// LevelForHTTPStatus maps an HTTP status to a log level: 5xx error, 4xx warn,
// anything else info.
func LevelForHTTPStatus(code int) Level {
	switch {
	case code >= 500:
		return LevelError
	case code >= 400:
		return LevelWarn
	default:
		return LevelInfo
	}
}

// Origin is where a group of records came from. Records decoded from one
// CloudWatch envelope share one *Origin, so it is never copied per record.
type Origin struct {
	Source    string // "firehose", "sqs", "s3", "replay"
	RequestID string // Firehose request id, SQS message id or S3 object key
	SourceARN string // Firehose delivery stream ARN, queue ARN or bucket ARN
	Stream    string // Firehose delivery stream name, when known

	Account string // AWS account that owns the log data (CloudWatch owner)
	Region  string

	LogGroup  string
	LogStream string

	Replay bool // the record comes from a replay of an archive
	// Counted: the derive stage counted the record's request when it first
	// passed (a replay of a letter deliver-logs dead-lettered after derive
	// had taken the record in), so it must not count it again.
	Counted bool
}

// WithLogGroup returns a copy of o for one CloudWatch envelope.
func (o *Origin) WithLogGroup(owner, group, stream string) *Origin {
	c := *o
	if owner != "" {
		c.Account = owner
	}
	c.LogGroup = group
	c.LogStream = stream
	return &c
}

// WithAccountRegion returns o, or a copy of it with the account and region
// an event names (CloudWatch's extractedFields @aws.account and @aws.region,
// as cross-account and centralised subscriptions send them) where they are
// set and differ.
func (o *Origin) WithAccountRegion(account, region []byte) *Origin {
	if (len(account) == 0 || string(account) == o.Account) && (len(region) == 0 || string(region) == o.Region) {
		return o
	}
	c := *o
	if len(account) > 0 {
		c.Account = string(account)
	}
	if len(region) > 0 {
		c.Region = string(region)
	}
	return &c
}

// ValueKind says how an attribute value is rendered in JSON.
type ValueKind uint8

const (
	String ValueKind = iota // Str, rendered as a JSON string
	Int                     // Int, rendered as a JSON number
	Number                  // Str holds a valid JSON number, rendered verbatim
	Bool                    // Int != 0
	Null
)

// Attr is one Datadog attribute. Key is a dotted path ("http.status_code",
// "apigateway.identity.sourceIp") rendered as nested JSON objects.
type Attr struct {
	Key  string
	Kind ValueKind
	Str  []byte
	Int  int64
}

// StringAttr, IntAttr and NumberAttr build attributes.
func StringAttr(key string, v []byte) Attr { return Attr{Key: key, Kind: String, Str: v} }
func IntAttr(key string, v int64) Attr     { return Attr{Key: key, Kind: Int, Int: v} }
func NumberAttr(key string, v []byte) Attr { return Attr{Key: key, Kind: Number, Str: v} }
func BoolAttr(key string, v bool) Attr {
	a := Attr{Key: key, Kind: Bool}
	if v {
		a.Int = 1
	}
	return a
}

// Record is one log event.
type Record struct {
	Origin    *Origin
	EventID   string // CloudWatch event id; empty for lines without one
	Timestamp int64  // event time, ms since the epoch
	Message   []byte // the original line, unchanged
	// TimeFixed says Timestamp was set on purpose (a replay re-timestamped
	// an event the intake would refuse as too old): parsers keep it.
	TimeFixed bool

	Kind    Kind
	Source  string // ddsource; empty means the pipeline default
	Service string
	Level   Level
	Attrs   []Attr
	Tags    []string // extra ddtags, already "key:value"

	// ParseError is set when the parser recognised the record as API Gateway
	// but could not understand it; the record is still delivered.
	ParseError string
	// Reason is set on dead letters: why the record could not go on.
	Reason string
}

// Attr returns the first attribute with the given key.
func (r *Record) Attr(key string) (Attr, bool) {
	for _, a := range r.Attrs {
		if a.Key == key {
			return a, true
		}
	}
	return Attr{}, false
}

// Batch is the payload of one message between stages.
type Batch struct {
	ID      string
	Origin  *Origin // the request, message or object the batch came from
	Records []Record
	// Metrics travel on the metrics topic instead of records.
	Metrics []Metric

	// Ack, when set, completes the source's acknowledgement. It travels with
	// the batch in-process; a durable transport drops it (see package stage).
	Ack Acker

	// Stage and Reason describe a dead-letter batch.
	Stage  string
	Reason string

	// Unit, when set, is shared by the raw batches of one source unit of
	// work (a Firehose request, an SQS message) in one process: decode
	// bounds what the whole unit decompresses to. A durable transport
	// drops it, like Ack.
	Unit *Unit

	// Arena owns bytes that Records alias, so one allocation serves a batch.
	Arena []byte
}

// Unit counts what one source unit of work decompressed to, across its
// batches.
type Unit struct{ decompressed atomic.Int64 }

// Reserve takes up to want bytes of the unit's allowance of limit
// decompressed bytes and returns how many it took (0 when the allowance is
// spent). Give back what was not used with Unreserve.
func (u *Unit) Reserve(want, limit int64) int64 {
	for {
		used := u.decompressed.Load()
		take := min(want, limit-used)
		if take <= 0 {
			return 0
		}
		if u.decompressed.CompareAndSwap(used, used+take) {
			return take
		}
	}
}

// Unreserve gives back n reserved bytes that were not used.
func (u *Unit) Unreserve(n int64) { u.decompressed.Add(-n) }

// Decompressed is the bytes reserved and used so far.
func (u *Unit) Decompressed() int64 { return u.decompressed.Load() }

// Acker is the source-side completion handle of a batch (see package ack).
type Acker interface {
	Add(n int)
	Done()
	Fail(err error)
}

// Len is the number of records, or of metric points for a metrics batch.
func (b *Batch) Len() int { return len(b.Records) + len(b.Metrics) }

// Derive returns an empty batch that shares b's identity and acknowledgement.
func (b *Batch) Derive(capacity int) *Batch {
	return &Batch{ID: b.ID, Origin: b.Origin, Ack: b.Ack, Records: make([]Record, 0, capacity)}
}

// minArena is the smallest arena Keep and Reserve start.
const minArena = 64 << 10

// Reserve makes room for n more bytes of Keep in the arena. A caller that
// knows what it is about to keep (a decoded document's strings) gets it in
// one arena of the right size, instead of in arenas doubled as they fill,
// which allocate about twice what they hold.
func (b *Batch) Reserve(n int) {
	if cap(b.Arena)-len(b.Arena) >= n {
		return
	}
	// Records alias the old arena; it stays alive through them.
	b.Arena = make([]byte, 0, max(n, minArena))
}

// Keep copies p into the batch's arena and returns the copy, so that records
// can alias it without an allocation each.
func (b *Batch) Keep(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	if cap(b.Arena)-len(b.Arena) < len(p) {
		n := max(2*cap(b.Arena), minArena)
		if n < len(p) {
			n = len(p)
		}
		// Records alias the old arena; it stays alive through them.
		b.Arena = make([]byte, 0, n)
	}
	start := len(b.Arena)
	b.Arena = append(b.Arena, p...)
	return b.Arena[start:len(b.Arena):len(b.Arena)]
}
