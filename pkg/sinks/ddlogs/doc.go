// Package ddlogs renders gwpipe records as Datadog logs and delivers them to
// the Datadog HTTP logs intake (v2).
//
// # Rendering
//
// AppendLog writes one log as JSON, by hand and without reflection: for each
// attribute layout (the sequence of attribute keys a record format produces)
// a renderer compiles the nested JSON structure once and then only copies
// fragments and escapes values. A log looks like
//
//	{"ddsource":"apigateway","service":"petstore","hostname":"<log group>",
//	 "ddtags":"env:prod,apiid:a1b2c3,stage:prod","timestamp":1732850000000,
//	 "status":"warn","message":"<the original line, unchanged>",
//	 "aws":{"awslogs":{"logGroup":"…","logStream":"…","owner":"123456789012"}},
//	 "http":{"method":"GET","status_code":404},"network":{"client":{"ip":"203.0.113.7"}}}
//
// Attributes follow the top-level fields in key order. An attribute never
// replaces a top-level field: one named ddsource, ddtags, hostname, host,
// service, status, message, timestamp, @timestamp or source (or nested under
// one of these) is moved under "apigateway.", so an access log's own "status"
// becomes "apigateway.status". See AppendLog for every rule, including
// truncation of logs over 1 MB.
//
// # Delivery
//
// A Client takes records from many concurrent Deliver calls, packs them into
// shared payloads (≤ 1000 logs, ≤ 5 MB uncompressed), compresses each payload
// once (gzip, zstd or none), and sends it with bounded concurrency until the
// intake accepts it, splitting it on 400/413 to isolate the logs the intake
// refuses. Deliver returns when every one of its records is accepted or
// permanently rejected, so that the caller can acknowledge its source: the
// acknowledgement is honest. See Client for the status handling and for what
// happens to records whose callers gave up.
package ddlogs
