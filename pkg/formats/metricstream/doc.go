// Package metricstream reads the records of a CloudWatch metric stream
// delivered through Firehose, and maps CloudWatch data points, streamed or
// polled (package cwpoller), to the Datadog points of the AWS integration:
// API Gateway's errors, cache hits and misses, and latency, which no log
// carries.
//
// # Formats, and telling them from logs
//
// A metric stream's delivery stream writes to the same Firehose endpoint as
// the log streams. Each Firehose record, after base64 and any gzip, holds
// one of these (Detect tells them apart by content, never by
// configuration; the decode stage asks it about a binary record whole and
// about a text record line by line, so that datums are found wherever they
// stand beside other lines):
//
//   - JSON output: newline-separated objects
//     {"metric_stream_name","account_id","region","namespace","metric_name",
//     "dimensions":{name:value},"timestamp":<ms>,"value":{"count","sum",
//     "max","min", and extra statistics such as "p99"},"unit"}. Detected
//     when the first line's object has "metric_stream_name" and "namespace"
//     or "metric_name" among its top-level keys.
//   - OpenTelemetry 1.0.0 output: ExportMetricsServiceRequest messages, each
//     preceded by its length as an unsigned varint. One ResourceMetrics per
//     account and region (attributes cloud.provider "aws",
//     cloud.account.id, cloud.region, aws.exporter.arn), a Summary metric
//     named amazonaws.com/<namespace>/<metric> per metric, one data point
//     per period: startTimeUnixNano the period start, timeUnixNano its end,
//     count (SampleCount), sum, quantile 0 the minimum, 1 the maximum, the
//     percentiles in between (0.99 is p99), and the attributes Namespace,
//     MetricName and Dimensions (a kvlist). Detected when the first frame's
//     length fits the record, the frame starts with field 1 and parses down
//     to an AWS marker (aws.exporter.arn, cloud.provider "aws", or a metric
//     named amazonaws.com/…); this is tried before JSON, since a first
//     frame of 123 bytes starts with '{'. The 0.7.0 output (flat labels
//     instead of attributes) is read too.
//
// A CloudWatch Logs envelope ({"messageType":…}, even with metric-stream
// JSON inside its messages) and access or execution log lines are never
// detected: their top-level keys differ, and text cannot parse as nested
// protobuf with the marker strings in place. Still-gzipped data is not
// detected either: gunzip first.
//
// # Mapping (Config.Namespace "aws.", the default)
//
// AWS/ApiGateway metrics take the Datadog AWS integration's names:
//
//	CloudWatch metric    Datadog point(s)                                        type     value
//	4XXError             aws.apigateway.4xxerror                                 count    Sum
//	5XXError             aws.apigateway.5xxerror                                 count    Sum
//	4xx, 5xx (HTTP)      aws.apigateway.4xx, aws.apigateway.5xx                  count    Sum
//	Count                aws.apigateway.count                                    count    Sum
//	CacheHitCount        aws.apigateway.cache_hit_count                          count    Sum
//	CacheMissCount       aws.apigateway.cache_miss_count                         count    Sum
//	  (derived)          aws.apigateway.cache_hit_ratio                          gauge    hits/(hits+misses)
//	Latency              aws.apigateway.latency                                  gauge    Sum/SampleCount
//	                     aws.apigateway.latency.maximum, .minimum                gauge    Max, Min
//	                     aws.apigateway.latency.p50, .p90, .p99, .p99_9…         gauge    as streamed
//	IntegrationLatency   aws.apigateway.integration_latency (same suffixes)      gauge
//	DataProcessed (HTTP) aws.apigateway.data_processed_bytes                     count    Sum
//	ConnectCount (WS)    aws.apigateway.connect_count, .connect_count.sum        count    Sum
//	MessageCount (WS)    aws.apigateway.message_count, .message_count.sum        count    Sum
//	IntegrationError     aws.apigateway.integration_error, .integration_error.sum count   Sum
//	ClientError (WS)     aws.apigateway.client_error, .client_error.sum          count    Sum
//	ExecutionError (WS)  aws.apigateway.execution_error, .execution_error.sum    count    Sum
//	any other            aws.apigateway.<snake_case>, generic statistics (below)
//
// Counts are record.MetricCount with Interval the period (60 s for a
// stream) and Timestamp the period start, in seconds, as CloudWatch dates
// the point. The WebSocket .sum names are those the integration documents;
// the name without .sum carries the Sum too (the integration's average of a
// per-request 0/1 count is a rate, not a count). DataProcessed has no
// integration name: data_processed_bytes stays distinct from whatever name
// the crawler may give it. Units: operation, millisecond, byte, fraction.
//
// Tags are the integration's keys: apiname (ApiName), apiid (ApiId), stage,
// method (lower case), resource, region and aws_account from the record.
// A Route dimension ("GET /pets/{id}", "$connect") becomes method and
// resource, as the derive stage splits $context.routeKey, so that
// log-derived and CloudWatch series share tags. apiid, apiname, stage,
// region and aws_account are normalised like the enrichment stage's tags
// (awstags.NormalizeValue: "$default" becomes "_default", names lower
// case), so that the stage's console tags, added by the enrichment stage,
// join them without duplicates; other dimensions become normalised
// "name:value" tags. Key (or KeyOfTags) reads the stage back from a point's
// tags for the enrichment stage. All the points of a series share one tag
// slice, full to capacity: append copies, never write in place.
//
// Other namespaces, with Config.PassOther, take the generic mapping:
// AWS/<Service> metric M becomes aws.<service>.<m>, custom namespaces
// <namespace>.<m> (the integration's naming; '/' separates segments, M in
// snake case: CPUUtilization → cpuutilization, NetworkIn → network_in),
// each as gauges: the average, .maximum, .minimum, .sum, .samplecount and,
// with Percentiles, .pNN. Without PassOther, and for Config.DropNamespaces,
// they are dropped and counted (Stats.Dropped), never lost unnoticed.
//
// # The namespace setting
//
// Users who keep Datadog's own CloudWatch crawler on for the same accounts
// must not have both write aws.apigateway.*: every point would be counted
// twice. Config.Namespace then replaces "aws." (for custom namespaces, the
// empty prefix) with a namespace of gwpipe's: "cloudwatch." writes
// cloudwatch.apigateway.count and cloudwatch.apigateway.cache_hit_ratio.
// (gwpipe's log-derived metrics live under apigateway.logs., see package
// derive.)
//
// # The cache view
//
// For each CacheHitCount and CacheMissCount of the same stage (same account,
// region and dimensions) and period, <namespace>apigateway.cache_hit_ratio
// is emitted with the second of the two, so that "cache hits and misses"
// is one graph. The halves may come in one record, in different records,
// or from different GetMetricData calls: the first waits, in a set bounded
// by Config.MaxPendingCache (oldest evicted first, counted in
// Stats.Unpaired), for the other. Nothing waits for a timer, so no point is
// delayed. A period without requests (0 and 0) has no ratio. The last
// Config.MaxPendingCache pairs completed are remembered: the half that
// completed one, coming again (its record sent again after a failed
// delivery, a period the poller fetches again), brings the ratio again. The pending
// set is in memory: after a restart, a half that arrived before it is not
// paired (its counts were delivered; only that ratio point is missing).
//
// # Errors and dead letters
//
// Decode never stops at a bad part. A JSON line that does not parse, or
// whose data point is refused (no namespace, metric name, timestamp or
// statistics, a non-finite or negative statistic), is reported in
// *DecodeError.Parts with its line number, offset and bytes; the other
// lines decode. An OpenTelemetry frame is decoded whole before any of its
// points is emitted: a corrupt frame emits nothing and is reported with its
// length prefix, so that its bytes alone are a record to replay; a frame
// with some refused data points (or with metrics that are not summaries)
// emits the others and is reported too, and so is a frame with no data
// point at all (other protobuf, which would otherwise vanish). DecodeAs
// decodes a format the caller already knows. Dead-letter the parts: their
// points are never silently lost, and replaying a part re-sends points
// Datadog already has, which overwrite themselves (same name, tags and
// timestamp, no host).
//
// # Limits and cost
//
// One Decoder and one Mapper serve any number of goroutines. Decoding does
// not allocate once a series has been seen: names and tags are resolved
// once per series (account, region, metric, dimensions) and cached, at
// most Config.MaxSeries (the cache is emptied when full). Measured with
// go test -bench . -cpu 1 on the project's 2-core machine (500 API Gateway
// data points per record, a fifth of them latencies with percentiles):
// 1.0 to 2.3 million data points per CPU-second for JSON and 0.8 to 2.0
// million for OpenTelemetry, the spread being the machine's other load; the
// generated OTLP types alone unmarshal 0.28 to 0.34 million, which is why
// the decoder reads the wire with protowire. Percentiles and the generic
// mapping multiply the Datadog points per data point: a latency with three
// percentiles is six points.
package metricstream
