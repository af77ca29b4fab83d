// Package cwpoller is the fallback for accounts without a CloudWatch metric
// stream: it polls GetMetricData per account and region for API Gateway's
// metrics and maps them exactly as streamed ones (through
// metricstream.Mapper, the same names, tags and cache view).
//
// # What it does
//
// For each Target (account, region), with the credentials
// Config.CredentialsFor gives (RoleCredentials and RoleTemplate build it
// from the roles of the tag enrichment; nil: the aws.Config's own):
//
//  1. ListMetrics on Config.Namespace (AWS/ApiGateway), RecentlyActive
//     PT3H, every page; the list is kept and asked again every
//     ListInterval (15m). When a refresh fails the previous list is
//     polled.
//  2. Every Interval (60s, aligned to multiples of it), the window ends at
//     the last period boundary at least Lag (2m) ago: CloudWatch accepts
//     late data for a while, and a period fetched too soon would be
//     fetched once, incomplete. It starts where the State says this
//     metric was last fetched, or Backfill (15m) before the end for a
//     metric never fetched or after a long stop.
//  3. GetMetricData over [start, end) with one query per metric and
//     statistic: Sum for count metrics, SampleCount, Sum, Minimum and
//     Maximum plus Config.Stats (p50, p90, p99; none when the Mapper's
//     Percentiles is off) for latency-like ones.
//     Calls hold at most MaxQueriesPerRequest (500) queries and
//     MaxDatapointsPerRequest (100,800) data points (queries × periods), a
//     metric's queries never split between calls; NextToken pages are
//     followed to the end.
//  4. The points are mapped and handed to the emit function; only when it
//     returned nil is the State advanced for those metrics. A failed emit
//     or call leaves the State where it was: the next poll fetches the
//     same periods, so nothing is lost, and nothing that was delivered is
//     fetched again. A FileState keeps this across restarts. A query
//     CloudWatch answers InternalError, Forbidden, or PartialData with no
//     page left fails its metric alone (Stats.QueryFailures): the call's
//     other metrics are delivered and advance, and that metric, none of
//     its statistics emitted, is fetched again by the next poll.
//
// # Several replicas
//
// Run in more than one worker, the poller shares two things through a
// compare-and-swap store (package cas: S3 conditional writes, or NATS
// JetStream key-value): a lease per target (Config.Leases, package lease)
// and the state (StoreState, one document per target). A worker polls a
// target only while it holds the target's lease; the others stand by
// (Stats.Standby) and take it over within about the lease's TTL·1.5 once
// its holder stops renewing it (a worker that stops cleanly releases its
// leases: the next takes them at once). Before each poll the holder reads
// the target's state, so a worker taking over starts exactly where the
// last one stopped; it writes the state only in the version it read, so a
// worker that lost its lease and still runs cannot overwrite the new
// holder's. A poll runs under the lease's hold, which ends before anyone
// else's can begin. One window remains, as with a FileState and a crash:
// points delivered and the state not yet written (the holder dies, or
// cannot reach the store, in between) are fetched again by the next
// holder.
//
// # Limits and cost
//
// Calls to a target are paced (RequestsPerSecond 10, Burst 10;
// GetMetricData's quota is 50 per second per account and region) and
// retried when throttled (Throttling, ThrottlingException…) or transient,
// up to MaxAttempts (5) with exponential back-off and full jitter
// (Retry: 500ms to 20s); the SDK's own retries are off so
// that throttles are counted (Stats.Throttles). Targets are polled
// Concurrency (4) at a time, each independently: one failing account does
// not hold up the others. MaxMetrics (5,000) bounds the metrics per target:
// over it, whole dimension sets (a stage's, an API's, a method's metrics
// all together) in order of API, stage and dimensions, the rest left out
// and counted (Stats.LeftOut).
//
// GetMetricData is billed per metric (query) requested. A REST stage
// without detailed metrics has Count, 4XXError and 5XXError (1 query each;
// 2 more with a cache) and Latency and IntegrationLatency (4 + len(Stats)
// queries each): 17 queries per poll with the defaults, about 25,000 a day
// at a 60 s interval, and as many again for the API-level series (ApiName
// alone). Detailed metrics multiply this by the methods. Metric streams are
// cheaper for many stages.
//
// The client speaks AWS JSON 1.0, which CloudWatch serves beside the SDK's
// default Smithy RPCv2 CBOR; emulators (moto) and many proxies speak only
// JSON or query.
//
// # Permissions
//
// cloudwatch:ListMetrics and cloudwatch:GetMetricData in every account
// polled (add them to the role the tag enrichment assumes), and
// sts:AssumeRole on that role for the pipeline.
//
// # What it does not do
//
// Data CloudWatch accepts after Lag has passed is not fetched (raise Lag
// for late publishers). Periods older than Backfill (at most 55m: Datadog
// refuses points more than an hour old) are not caught up after a long
// stop.
package cwpoller
