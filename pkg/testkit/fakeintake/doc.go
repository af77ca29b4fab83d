// Package fakeintake is a stand-in for the Datadog intake APIs gwpipe writes
// to: the v2 logs intake, v2 metric series and v1 distribution points. It is
// as strict as the real service wherever strictness catches a client bug
// (API keys, encodings, byte and entry limits, payload shapes) and it records
// what it accepted, so tests, demos and benchmarks can assert on deliveries.
//
// A Server is an http.Handler: start it with httptest.NewServer, with
// NewTestServer, or on any listener with Serve. Tests then wait for
// deliveries with WaitLogs (or Wait) and inspect Logs, Series,
// Distributions and Stats; SetFailure makes the intake fail or stall to
// exercise a client's retries.
//
// # Endpoints
//
//	POST   /api/v2/logs                 202 {}              401 403 413 415 400
//	POST   /api/v2/series               202 {"errors":[]}   401 403 413 415 400
//	POST   /api/v1/distribution_points  202 {"status":"ok"} 401 403 413 415 400
//	GET    /stats                       200 Stats as JSON
//	GET    /healthz                     200
//	GET    /admin/fail                  200 current FailureState
//	POST   /admin/fail                  200 FailureState; 400 on an invalid Failure
//	DELETE /admin/fail                  204
//	POST   /admin/reset                 204
//
// Logs errors use the HTTPLogErrors shape of the real intake
// ({"errors":[{"status":"400","title":"Bad Request","detail":"…"}]}); the
// metrics endpoints use APIErrorResponse ({"errors":["…"]}).
//
// # Limits
//
// The real intake's, as docs/wire-formats.md#datadog-logs-intake and
// docs/wire-formats.md#datadog-metrics describe them:
//
//   - logs: at most MaxLogsPayloadBytes decompressed (5 MiB, inclusive), at most
//     MaxLogEntries entries; a log whose JSON (compacted: whitespace between
//     tokens does not count) exceeds MaxLogBytes is accepted but truncated.
//   - series: at most MaxSeriesPayloadBytes on the wire (512,000, inclusive),
//     less than MaxSeriesDecompressedBytes decompressed (5,242,880); points
//     more than SeriesMaxAge old or SeriesMaxFuture ahead of the server clock
//     are dropped silently and counted in Stats.
//   - distribution points: the v1 series limits, MaxDistributionPayloadBytes on
//     the wire and less than MaxDistributionDecompressedBytes decompressed.
//
// Decompression is streamed through a limit, so a compression bomb costs at
// most about twice the limit in memory before it is answered with 413.
//
// # Judgement calls
//
// Where the public documentation does not say what the real intake does, the
// fake picks the answer that surfaces a client bug soonest:
//
//   - More than MaxLogEntries logs is a 400 with detail "too many log entries",
//     not a 413: the docs list the limit without a status, 400 is what every
//     other payload-format error gets, and 413 stays reserved for byte limits
//     so a client can tell "split by bytes" from "split by count".
//   - An empty batch ([] or {"series":[]}) is a 400: a pipeline that sends one
//     is wasting a request.
//   - A log without a string "message" is a 400, although the real intake
//     remaps msg/log and tolerates its absence: gwpipe always sets message.
//   - A truncated log keeps every attribute; only its message is shortened (at
//     a UTF-8 boundary, to at most MaxLogBytes) until the whole log fits in
//     MaxLogBytes, unless the other attributes alone exceed that.
//   - Content-Type is not checked. Content-Encoding "zstd1" (the value in the
//     v2 series client enum) is accepted on /api/v2/series only.
//   - Failure injection runs before the API-key check, as an outage in front
//     of the intake would. A request abandoned while an injected latency runs
//     (client gone or server shutting down) is counted under status 499 and
//     gets no answer.
//   - Stats count only the three intake endpoints; admin, stats and health
//     requests are not counted.
//   - Reset clears recordings and statistics but neither the failure
//     configuration nor the JSONL files, which are an append-only log of the
//     whole session.
package fakeintake
