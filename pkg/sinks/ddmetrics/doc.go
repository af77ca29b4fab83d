// Package ddmetrics delivers metric points to Datadog and reports gwpipe's
// own telemetry.
//
// Client submits record.Metric points, in one of two modes:
//
//   - api (default): the Metrics API. Counts, rates and gauges go to
//     POST /api/v2/series (type 1, 2, 3; interval for counts and rates;
//     the point's host as resources [{name, type:"host"}]; tags; unit).
//     Distributions go to POST /api/v1/distribution_points as raw values
//     ({"series":[{"metric","host","tags","type":"distribution",
//     "points":[[ts,[v…]]]}]}). Bodies are compressed (series: gzip, zstd1
//     or deflate; distribution points: deflate, the only encoding that
//     endpoint documents) and packed within the API's limits: series at most
//     512,000 bytes on the wire and less than 5,242,880 decompressed (a
//     payload compressing larger than the limit is split in halves);
//     distribution points at most 3,000,000 bytes by default, a point with
//     more values than fit being split into several points of the same
//     timestamp, which Datadog merges. Status handling is the one Datadog
//     sender's (package ddhttp, shared with the logs client): 2xx
//     accepted; 408, 429, 5xx and network errors retried with exponential
//     backoff and jitter, never sooner than an answer's Retry-After asks;
//     400 and 413 split in halves down to single points, which
//     are then rejected with the reason; 401 and 403 retried while Healthy
//     reports the refused key. The API key is never logged. Points that are
//     older than an hour (or more than 10 minutes ahead) when submitted, or
//     that age past the hour while being retried, are rejected with the
//     reason instead of being sent to be dropped silently.
//
//   - dogstatsd: datagrams to a local Agent through datadog-go/v5, for sites
//     that run one (see submitDogStatsD for its limits: distributions carry no
//     timestamp, nothing is acknowledged).
//
// Stage is the deliver-metrics stage: its Handle returns once the API
// accepted the batch's points or rejected them for good, and dead-letters
// the rejected ones (Batch.Metrics, Stage "deliver-metrics").
//
// SelfTelemetry sends gwpipe's telemetry registry (package telemetry: every
// family, its labels as tags) to DogStatsD with a "gwpipe." prefix, the last
// report on Close.
package ddmetrics
