package top

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// stageOrder is the pipeline order of the stages (and sources) gwpipe
// registers; others follow by name.
var stageOrder = []string{"ingest", "sqs", "sqs-s3", "replay", "cwpoller", "decode", "parse", "enrich", "derive", "deliver-logs", "deliver-metrics", "dlq"}

// Total names the row that adds up the workers of a fleet.
const Total = "total"

// Frame is one refresh of the view: every figure of every worker, the
// rates and p99s over the interval since the previous scrape. A rate or
// p99 is NaN when it is not known yet (the first scrape) or nothing was
// observed.
type Frame struct {
	Taken    time.Time
	Interval time.Duration // since the previous scrape; 0 on the first
	Workers  []WorkerState
	Stages   []StageRow // by worker, then stage; with a Total row per stage when there are several workers
	Sources  []SourceRow
	Delivery []DeliveryRow
	Enrich   []EnrichRow
}

// WorkerState says whether a worker answered.
type WorkerState struct {
	Addr string
	Err  error
}

// StageRow is one stage of one worker (or the Total of a fleet).
type StageRow struct {
	Worker, Stage string
	InRate        float64 // records (or metric points) handled per second
	OutRate       float64 // records emitted per second
	InFlight      float64 // batches being handled now
	Queue         float64 // batches waiting; NaN when unknown
	Errors        float64 // handler errors since start
	Dead          float64 // records dead-lettered since start
	// BrokerDLQ is what waits in the stage's transport dead-letter queue
	// (SQS's <queue>-dlq): read by no worker. NaN when unknown.
	BrokerDLQ float64
	P99       float64 // handling time of a batch, seconds
}

// SourceRow is one source of one worker.
type SourceRow struct {
	Worker, Source string
	Rate           float64 // requests (messages) per second
	// Refused are the requests refused before they were admitted, by
	// status, since start; NotAcked what was admitted and not
	// acknowledged, by why (a Firehose request answered 503 after
	// ack_timeout or at shutdown, 500 when a record failed; an SQS
	// message that failed or was handed back). Firehose's 503s and 500s
	// count in one or the other, not both.
	Refused  map[string]float64
	NotAcked map[string]float64
	AckP99   float64 // seconds from arrival to acknowledgement
}

// DeliveryRow is one Datadog client of one worker.
type DeliveryRow struct {
	Worker, What string  // logs, metrics
	Rate         float64 // accepted per second
	Accepted     float64 // since start
	Refused      float64 // refused for good since start
	// Filtered are the logs the filters dropped or sampled out since start
	// (filters.*), which Accepted does not count; NaN for metrics.
	Filtered float64
	Retries  float64 // requests sent again since start
	Bytes    float64 // bytes accepted since start
	ByteRate float64 // per second
	P99      float64 // request time
}

// EnrichRow is the enrichment of one worker.
type EnrichRow struct {
	Worker  string
	HitRate float64 // share of tag lookups answered from the cache over the interval (since start on the first frame); NaN without lookups
	Partial float64 // records that went on with partial tags, since start
	AWSTags bool    // tags are read from AWS (awstags figures exist)
}

// Compute makes a frame from the workers' current samples and their
// previous ones (nil on the first scrape), keyed by address, in the
// order of addrs.
func Compute(addrs []string, prev, cur map[string]Sample) Frame {
	f := Frame{}
	fleet := len(addrs) > 1
	totals := map[string]*StageRow{}
	var totalHists = map[string]hist{}
	for _, addr := range addrs {
		c := cur[addr]
		f.Workers = append(f.Workers, WorkerState{Addr: addr, Err: c.Err})
		if c.Taken.After(f.Taken) {
			f.Taken = c.Taken
		}
		if c.Err != nil || c.fams == nil {
			continue
		}
		p, hasPrev := prev[addr]
		hasPrev = hasPrev && p.Err == nil && p.fams != nil && p.Taken.Before(c.Taken)
		dt := math.NaN()
		if hasPrev {
			dt = c.Taken.Sub(p.Taken).Seconds()
			f.Interval = max(f.Interval, c.Taken.Sub(p.Taken))
		}
		// rate is a counter's increase per second (a reset counts from 0).
		rate := func(now, before float64) float64 {
			if !hasPrev {
				return math.NaN()
			}
			d := now - before
			if d < 0 {
				d = now
			}
			return d / dt
		}
		p99 := func(now, before hist) float64 {
			if !hasPrev {
				return math.NaN()
			}
			return now.since(before).quantile(0.99)
		}

		// Stages.
		in, out := c.values("stage.records_in", "stage"), c.values("stage.records_out", "stage")
		pin, pout := p.values("stage.records_in", "stage"), p.values("stage.records_out", "stage")
		inflight, queue := c.values("stage.in_flight", "stage"), c.values("stage.queue_depth", "stage")
		errs, dead := c.values("stage.errors", "stage"), c.values("stage.dead_lettered", "stage")
		parked := c.values("transport.dead_letter_backlog", "stage")
		// On a broker every worker of a stage reads the same backlog: the
		// fleet's is one of theirs (the latest read, the largest), not
		// their sum, which counted it once per worker.
		shared := c.sum("transport.shared") > 0
		lat, plat := c.histograms("runtime.handle_latency", "stage"), p.histograms("runtime.handle_latency", "stage")
		for _, st := range sortStages(in) {
			q, known := queue[st]
			if !known {
				q = math.NaN()
			}
			row := StageRow{Worker: addr, Stage: st, InRate: rate(in[st], pin[st]), OutRate: rate(out[st], pout[st]),
				InFlight: inflight[st], Queue: q, Errors: errs[st], Dead: dead[st], BrokerDLQ: math.NaN(), P99: math.NaN()}
			if n, ok := parked[st]; ok && n >= 0 { // -1 until the broker answered
				row.BrokerDLQ = n
			}
			if h, ok := lat[st]; ok {
				row.P99 = p99(h, plat[st])
				if hasPrev {
					totalHists[st] = h.since(plat[st]).add(totalHists[st])
				}
			}
			f.Stages = append(f.Stages, row)
			if fleet {
				t, ok := totals[st]
				if !ok {
					t = &StageRow{Worker: Total, Stage: st, Queue: math.NaN(), BrokerDLQ: math.NaN()}
					totals[st] = t
				}
				t.InRate, t.OutRate = t.InRate+row.InRate, t.OutRate+row.OutRate
				t.InFlight += row.InFlight
				switch {
				case known && shared:
					t.Queue = max(nan0(t.Queue), q)
				case known:
					t.Queue = nan0(t.Queue) + q
				}
				if !math.IsNaN(row.BrokerDLQ) {
					t.BrokerDLQ = max(nan0(t.BrokerDLQ), row.BrokerDLQ)
				}
				t.Errors, t.Dead = t.Errors+row.Errors, t.Dead+row.Dead
			}
		}

		// Sources.
		if c.has("firehose.status") {
			codes, pcodes := c.values("firehose.status", "code"), p.values("firehose.status", "code")
			var now, before float64
			notAcked := map[string]float64{}
			for k, name := range map[string]string{"timed_out": "requests_timed_out", "handed_back": "requests_handed_back", "failed": "requests_failed"} {
				if n := c.sum("firehose." + name); n > 0 {
					notAcked[k] = n
				}
			}
			// Answered after admission: not refusals.
			admitted := map[string]float64{"503": notAcked["timed_out"] + notAcked["handed_back"], "500": notAcked["failed"]}
			refused := map[string]float64{}
			for code, n := range codes {
				now, before = now+n, before+pcodes[code]
				if n -= admitted[code]; code != "200" && n > 0 {
					refused[code] = n
				}
			}
			f.Sources = append(f.Sources, SourceRow{Worker: addr, Source: "firehose", Rate: rate(now, before), Refused: refused, NotAcked: notAcked,
				AckP99: p99(c.histograms("firehose.ack_latency", "")[""], p.histograms("firehose.ack_latency", "")[""])})
		}
		if c.has("sqs.messages_received") {
			notAcked := map[string]float64{}
			for _, k := range []string{"failed", "unrecognised", "handed_back"} {
				if n := c.sum("sqs.messages_" + k); n > 0 {
					notAcked[k] = n
				}
			}
			f.Sources = append(f.Sources, SourceRow{Worker: addr, Source: "sqs", Rate: rate(c.sum("sqs.messages_received"), p.sum("sqs.messages_received")), NotAcked: notAcked,
				AckP99: p99(c.histograms("sqs.message_latency", "")[""], p.histograms("sqs.message_latency", "")[""])})
		}

		// Delivery.
		for _, d := range []struct{ what, prefix, accepted, refused, bytes string }{
			{"logs", "deliver_logs.", "logs_accepted", "logs_rejected", "bytes_accepted"},
			{"metrics", "deliver_metrics.", "series_accepted", "rejected", "bytes_sent"},
		} {
			if !c.has(d.prefix + d.accepted) {
				continue
			}
			acc := c.sum(d.prefix + d.accepted)
			pacc := p.sum(d.prefix + d.accepted)
			if d.what == "metrics" { // series points and distribution values
				acc += c.sum(d.prefix + "values_accepted")
				pacc += p.sum(d.prefix + "values_accepted")
			}
			bytes := c.sum(d.prefix + d.bytes)
			filtered := math.NaN()
			if d.what == "logs" {
				filtered = c.sum("filters.dropped") + c.sum("filters.sampled_out")
			}
			f.Delivery = append(f.Delivery, DeliveryRow{Worker: addr, What: d.what, Rate: rate(acc, pacc), Accepted: acc,
				Refused: c.sum(d.prefix + d.refused), Filtered: filtered, Retries: c.sum(d.prefix + "retries"), Bytes: bytes, ByteRate: rate(bytes, p.sum(d.prefix+d.bytes)),
				P99: p99(c.histograms(d.prefix+"request_latency", "")[""], p.histograms(d.prefix+"request_latency", "")[""])})
		}

		// Enrichment.
		if c.has("enrich.records_tagged") {
			e := EnrichRow{Worker: addr, Partial: c.sum("enrich.records_partial"), HitRate: math.NaN(), AWSTags: c.has("awstags.hits")}
			if e.AWSTags {
				lookups := func(s Sample) (hits, all float64) {
					hits = s.sum("awstags.hits") + s.sum("awstags.stale") + s.sum("awstags.negative")
					return hits, hits + s.sum("awstags.misses") + s.sum("awstags.partial")
				}
				h, n := lookups(c)
				if hasPrev {
					ph, pn := lookups(p)
					if n-pn > 0 && h >= ph {
						h, n = h-ph, n-pn
					}
				}
				if n > 0 {
					e.HitRate = h / n
				}
			}
			f.Enrich = append(f.Enrich, e)
		}
	}
	if fleet {
		for _, st := range sortStages(totals) {
			t := *totals[st]
			t.P99 = math.NaN()
			if h, ok := totalHists[st]; ok {
				t.P99 = h.quantile(0.99)
			}
			f.Stages = append(f.Stages, t)
		}
	}
	return f
}

func nan0(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// sortStages returns the keys of m in pipeline order.
func sortStages[V any](m map[string]V) []string {
	names := slices.Collect(maps.Keys(m))
	pos := func(s string) int {
		if i := slices.Index(stageOrder, s); i >= 0 {
			return i
		}
		return len(stageOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(pos(a), pos(b)), cmp.Compare(a, b))
	})
	return names
}

// Formatting shared by both views.

// num writes a count compactly: 1234 → 1234, 12345 → 12.3k, 1.2M.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "-"
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 1, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// rateText writes a per-second rate.
func rateText(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return num(v) + "/s"
}

// bytesText writes a byte count in binary units.
func bytesText(v float64) string {
	const unit = 1024
	if math.IsNaN(v) {
		return "-"
	}
	if v < unit {
		return fmt.Sprintf("%.0f B", v)
	}
	div, exp := float64(unit), 0
	for n := v / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v/div, "KMGTP"[exp])
}

// msText writes a duration in seconds as milliseconds.
func msText(sec float64) string {
	switch {
	case math.IsNaN(sec):
		return "-"
	case sec >= 10:
		return fmt.Sprintf("%.0f s", sec)
	case sec >= 1:
		return fmt.Sprintf("%.1f s", sec)
	case sec*1000 >= 10:
		return fmt.Sprintf("%.0f ms", sec*1000)
	default:
		return fmt.Sprintf("%.1f ms", sec*1000)
	}
}

// refusedText writes refusals by status, "-" when none.
func refusedText(m map[string]float64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+":"+num(m[k]))
	}
	return strings.Join(parts, " ")
}

func percentText(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", v*100)
}
