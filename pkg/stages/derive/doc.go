// Package derive is gwpipe's derive stage: it turns API Gateway access logs
// (and, for stages without access logs, request summaries folded from
// execution logs) into exact request metrics per API, stage, method,
// resource and status class, in event-time windows, mergeable across a
// fleet of workers and replays.
//
// # What it reads
//
// Records of kind record.KindAccess and record.KindSummary; every other
// kind is ignored (counted in Stats.Ignored). A record whose origin says it
// was counted already (Origin.Counted: a replayed dead letter of
// deliver-logs, which reads this stage's input beside it) is not counted
// again (Stats.CountedBefore). From each, ReadRequest reads
// these attributes, the first present key with a usable value winning ("-",
// empty and non-numeric values count as absent):
//
//	method            http.method, apigateway.httpMethod                     (lower-cased)
//	resource          http.route, apigateway.resourcePath, apigateway.routeKey ("GET /x" → "/x")
//	status            http.status_code, apigateway.status                    (100-599; else status_class:unknown)
//	latency (ms)      duration (ns), apigateway.responseLatency;
//	                  summaries only: apigateway.summary.elapsed_ms when apigateway.summary.complete
//	integration ms    http.integration.latency_ms, apigateway.integrationLatency, apigateway.integration.latency
//	response bytes    network.bytes_written, apigateway.responseLength, apigateway.dataProcessed
//	event type        apigateway.eventType (WebSocket CONNECT, MESSAGE, DISCONNECT)
//	throttled         status 429; error.kind or apigateway.error.responseType THROTTLED or QUOTA_EXCEEDED;
//	                  apigateway.execution.throttled or apigateway.execution.quota_exceeded (Bool)
//	integration error http.integration.status_code (then apigateway.integration.status,
//	                  apigateway.integrationStatus, apigateway.integration.integrationStatus) >= 400;
//	                  or http.integration.error, apigateway.integrationErrorMessage,
//	                  apigateway.integration.error non-empty; or response type INTEGRATION_FAILURE or
//	                  INTEGRATION_TIMEOUT (the AWS integration's IntegrationError: 4XX/5XX from the integration)
//	cache hit/miss    Config.CacheStatusKeys (default apigateway.cacheStatus, apigateway.cache.status,
//	                  apigateway.cache_status, apigateway.cacheHit): HIT/MISS, true/false, 1/0 or Bool.
//	                  API Gateway has no $context variable for it; a custom format can carry it.
//	summary gating    gwpipe.stage_has_access_logs (Bool, optional, e.g. from the stage's accessLogSettings)
//
// and from rec.Tags (first occurrence wins) aws_account, region, apiid,
// apiname, stage, replay, and the keys of Config.TagAllowlist. When a tag is
// missing: aws_account falls back to apigateway.accountId then
// rec.Origin.Account, region to rec.Origin.Region, apiid to
// apigateway.apiId, stage to apigateway.stage, an allowlisted key to the
// static tags (Deriver.SetStaticTags). Event time is rec.Timestamp
// (ms); a record without one takes the processing time.
//
// Tag slices are read as immutable: the parse of the last slice seen is
// kept, keyed by its address (the enrichment shares one slice per origin).
//
// # What it emits
//
// Per series — the tags aws_account, region, apiid, apiname, stage, method,
// resource, status_class (1xx…5xx, unknown), event_type (WebSocket only),
// then the allowlisted tags; a tag without a value is left out — and per
// window, under Config.Namespace (default "apigateway.logs."):
//
//	count                         count   every request
//	4xxerror, 5xxerror            count   REST names (Config.ErrorMetrics "both" or "rest")
//	4xx, 5xx                      count   HTTP API names ("both" or "http")
//	throttled                     count
//	integration_error             count
//	connect_count, message_count,
//	disconnect_count              count   WebSocket, by event type
//	client_error, execution_error count   WebSocket 4xx and 5xx
//	cache_hit_count,
//	cache_miss_count              count   when the log format carries the cache status
//	latency, integration_latency  distribution, ms
//	response_size                 distribution, bytes
//
// Counts are record.MetricCount with Interval the window in seconds and
// Timestamp the window start (plus the generation, below); a count of zero
// is not sent. Distributions are record.MetricDistribution with the exact
// raw values: Datadog builds the sketch server-side from every submitter's
// values, so distributions merge exactly across workers and quantiles are
// within the sketch's relative accuracy of the exact ones. (A client-side
// DDSketch would be smaller on the wire, but the only sketch intake is the
// Agent's undocumented protobuf endpoint.)
//
// # Windows, lateness, and no overwrite
//
// Windows are Config.Window (10 s) of event time, kept per lane: live
// traffic and replays (rec.Origin.Replay or tag replay:true) have their own
// watermark (the largest event time seen, capped at processing time), so a
// replay running beside live traffic is not "late" against it. A window
// closes when its lane's watermark passes its end plus
// Config.AllowedLateness (2 s), or when Window + AllowedLateness of
// processing time have passed since its first record, so a quiet pipeline
// still flushes: call Tick about every second.
//
// Records that arrive after their window closed are not dropped: they
// accumulate in the window's next generation, emitted with timestamp
// window start + generation, so it never overwrites the points already
// sent, and stays inside the window's interval for any rollup of Window or
// more. Generation g ≥ 1 is flushed AllowedLateness·2^(g-1) (at least 1 s)
// after its first record; the last (Window−1 seconds in) waits until the
// window is nearly MaxAge old. Only records later than that are dropped
// (Stats.LateDropped); records older than MaxAge (55 m: the series API
// accepts points up to 1 h old) are counted as too old and not aggregated,
// and so are points whose window has grown too old by the time it is
// flushed (Stats.PointsTooOld, RecordsExpired).
//
// Every point is written for a host: Config.Host plus an incarnation
// (default "<hostname>-<pid>-<start time base 36>"), with ReplayHostSuffix
// ("-replay") on the replay lane. Two workers, two lanes or two
// incarnations of one worker therefore never write the same (metric, tags,
// host, timestamp) point, which the series API would overwrite; Datadog sums
// them across hosts. The cost is one series per worker (and per restart)
// in custom-metric accounting.
//
// # Access logs and summaries of one stage
//
// In auto mode (Config.Summaries) a request is counted once when its stage
// writes both logs: a summary counts only when its record says the stage
// has no access logs (gwpipe.stage_has_access_logs false), or, when it does
// not say, while no access log of the stage (aws_account, region, apiid,
// stage) has been seen for Config.AccessLogMemory (15 m). The two log groups
// arrive independently, so after a start (or a quiet spell) the summaries of
// a stage with no access log seen wait — a copy of each, out of its batch —
// until the stage has had summaries for Config.SummaryGrace (1 m): if one
// of its access logs comes meanwhile they are skipped
// (Stats.SummariesSkipped), otherwise they count, and later ones count at
// once. Tick decides those due; Flush decides all that wait. At most
// 100,000 wait; beyond, they count at once. Like open windows, the waiting
// summaries are lost in a crash.
//
// # Cardinality
//
// Per API (aws_account, region, apiid) and window generation, at most
// Config.MaxResourcesPerAPI distinct resources are kept; the records of the
// others are counted under resource:other (Stats.Folded). A window holds at
// most MaxSeriesPerWindow series; records beyond are dropped and counted.
//
// # Acknowledgement and delivery
//
// Handle aggregates the batch and returns nil: the input is done once it is
// in the accumulators, so that a Firehose request is not held for the 10+ s
// a window stays open. The metric batches derive emits carry no source
// acknowledgement (Batch.Ack is nil). The trade-off: logs stay
// at-least-once end to end, but metrics are best-effort-exact across
// crashes — a crash loses the open windows (at most Window + lateness of
// metrics, plus pending late generations) unless the transport between
// derive and deliver-metrics is durable, and records redelivered after a
// crash are counted again. A clean shutdown loses nothing: Flush emits every
// open window. An Emit that fails (context ended) never fails the input — a
// retry would count it twice —; the metric batches are kept and emitted
// again by the next Handle, Tick or Flush.
//
// The Deriver is safe for concurrent use: aggregation is serialised by one
// mutex (a few hundred nanoseconds per record), emission is not.
package derive
