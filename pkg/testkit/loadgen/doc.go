// Package loadgen generates realistic Amazon API Gateway log traffic and
// delivers it the way Amazon Kinesis Data Firehose delivers to an HTTP
// endpoint destination (docs/wire-formats.md#firehose-http-delivery). It is used in-process by integration
// tests and benchmarks, and by the loadgen command.
//
// # Traffic
//
// A Generator draws from a universe that depends only on Seed, Accounts, APIs
// and Stages: accounts (12-digit ids, one home region each), REST APIs (ids of
// 10 lowercase alphanumerics, names like "petstore", two thirds of them
// requiring API keys), stages ("prod", "dev", "staging", ...), routes
// ("GET /pets/{petId}", ...) and 512 clients (IPv4, some IPv6, user agents).
// Popularity of APIs, stages and routes is Zipf-like. Each API request gets a
// status (mostly 2xx; 3xx; 4xx incl. 403, 404, 429; 5xx incl. 502, 504), a
// long-tailed latency with the integration latency below it, and a response
// length that is sometimes missing.
//
// Event kinds, mixed by Config.Mix (weights in events):
//
//   - AccessJSON: Datadog's recommended format with unquoted numbers; a
//     missing response length renders as a bare "-" ("responseLength":-),
//     which is not valid JSON.
//   - AccessCLF: the console's REST CLF format.
//   - Execution: the REST execution-log lines of a request
//     (docs/wire-formats.md#execution-logs), each
//     prefixed "(requestId) ", including throttling (429), quota (429),
//     integration timeouts (504), malformed Lambda proxy responses (502) and
//     " [TRUNCATED]" lines.
//
// # Log groups and streams
//
//   - execution logs: API-Gateway-Execution-Logs_{apiId}/{stage}
//   - access logs (JSON and CLF alike): /aws/api-gateway/{apiId}/{stage}
//   - streams: 32 lowercase hex digits (three per stage for execution logs,
//     two for access logs).
//
// Execution lines of one request go to one stream; when they do not fit the
// envelope being built, the rest arrives in a later envelope of that stream
// (possibly in a later request), as CloudWatch Logs may split them.
//
// # Packing
//
// CloudWatch mode: every record is base64(gzip(envelope)) where the envelope
// is a DATA_MESSAGE of one log group/stream, owner = the account, subscription
// filter Config.FilterName, with between half and all of EventsPerRecord
// events. Accounts with an odd index are subscribed through an account-level
// policy and carry "policyLevel":"ACCOUNT_LEVEL_POLICY". A request carries the
// records of one account and comes from its delivery stream
// arn:aws:firehose:{region}:{account}:deliverystream/{StreamName}. With
// ControlRate, a request sometimes carries one CONTROL_MESSAGE record.
//
// Direct mode (API Gateway writing access logs to Firehose): every record is
// base64 of one access-log line ending in "\n", and a request comes from
// the stream amazon-apigateway-{apiName}-{stage} of one API stage.
//
// Event ids are 56 decimal digits: 13 of the event timestamp, 20 of the seed,
// 5 of Config.Instance and 18 of a per-generator counter, so they are unique
// within a run and across generators that differ in seed or instance.
//
// # Delivery
//
// Sender emulates Firehose: a request is acknowledged only by a 200 whose JSON
// body echoes the requestId (and has an integer timestamp); 413 is permanent;
// anything else, network errors included, is retried with the same request id
// and body after 1 s (Config.InitialBackoff), doubling, ±15 % jitter, capped at
// MaxBackoff, until RetryDuration of backoff is spent. Run drives a Generator
// and a Sender with bounded concurrency and an optional events/s limit.
package loadgen
