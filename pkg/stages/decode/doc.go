// Package decode is the decode stage: it turns raw source records into one
// record per log event, metric-stream points and dead letters, accounting
// for every byte: each becomes part of an event, a log line, a metric
// point, a control message, or a dead letter with its reason. Nothing is
// emitted twice and nothing is dropped silently.
//
// # A record, step by step
//
//  1. base64 (a Firehose record's "data"; padding optional), at most
//     Config.MaxRecordBytes — unless the record is already bytes (kind
//     Line): what SQS carried decoded, or what an ingest worker decoded
//     before the broker (firehose.Config.DecodeRecords);
//  2. every gzip layer (members one after the other read as one stream),
//     at most Config.MaxDecompressedBytes after, and at most what is left of
//     Config.MaxUnitDecompressedBytes for all the records of its source unit
//     (a Firehose request): a record beyond either is dead-lettered whole;
//  3. a binary metric stream (OpenTelemetry 1.0 output: length-delimited
//     frames, the first a CloudWatch metric stream's), when the stage reads
//     metric streams, is decoded frame by frame; a frame that cannot be read
//     is dead-lettered alone, length prefix included;
//  4. anything else is read item by item.
//
// # Items
//
// The record is cut into items: lines (at '\n', without a trailing '\r';
// blank lines separate) and, on a line that holds nothing but JSON objects
// written back to back ({..}{..}, as CloudWatch Logs and Firehose
// concatenate envelopes), each object. An object that is valid JSON may
// span lines (a pretty-printed document). White space between items
// belongs to none of them; every other byte belongs to exactly one. Each
// item is handled on its own:
//
//   - A CloudWatch Logs subscription envelope (a JSON object with a
//     top-level messageType). DATA_MESSAGE: its events, each one record with
//     the envelope's owner, log group and stream, or the account and Region
//     of its extractedFields (@aws.account, @aws.region). CONTROL_MESSAGE:
//     dropped and counted. Any other messageType: dead-lettered with the
//     reason and counted; its events are not delivered as data (their
//     meaning is unknown) nor dropped (a replay decodes them again once
//     gwpipe knows the type). A malformed envelope (invalid JSON, an event
//     without a message string, logEvents without a messageType) is
//     dead-lettered alone; nothing of it is emitted. An object with a
//     messageType or logEvents key that does not parse is a broken
//     envelope, never a log line: an envelope's JSON is never delivered as
//     a log.
//   - A metric-stream datum (JSON output: an object whose top-level keys
//     name a metric stream), when the stage reads metric streams
//     (WithMetricStreams; metrics.streams.enabled): its points. Datums are
//     recognised one by one, wherever they stand in the record; consecutive
//     ones are decoded together, and one that cannot be read is
//     dead-lettered alone. With metric streams off the pipeline gives the
//     stage RefusedMetricStreams: datums and frames are still recognised,
//     and dead-lettered with MetricStreamsOff, never delivered as logs.
//   - Any other text: one log line, exactly as it came (an API Gateway
//     access log delivered directly to an amazon-apigateway-* stream, a
//     line beside envelopes).
//   - A line that is not text: dead-lettered alone.
//
// # Text and binary
//
// A line is text when it is valid UTF-8 and holds none of the WHATWG MIME
// Sniffing standard's binary data bytes (0x00–0x08, 0x0B, 0x0E–0x1A,
// 0x1C–0x1F): tab, form feed, carriage return and escape (terminal colours)
// are text. The rule is package textrule's, and the envelope's claim
// cwlogs.ClaimsEnvelope: the S3 object reader (package s3obj) applies both
// to the items of an object. No log is built from anything else. A record whose lines that
// are not text hold half its bytes or more is binary: neither gzip nor a
// metric stream, it is unrecognised, and dead-lettered whole. One line
// that is not text in a text record is dead-lettered alone, with its line
// number and the first offending byte ("line 2: not text: invalid UTF-8 at
// byte 55"); its neighbours go on.
//
// # Dead letters
//
// A record that cannot be read (bad base64, over a limit, truncated or
// corrupt gzip, binary), or from which nothing but dead letters come, is
// dead-lettered whole, byte for byte as the source delivered it. A part of
// a record (an envelope, a metric-stream line or frame, a line that is not
// text) is dead-lettered alone as raw data, the base64 of its decoded
// bytes, which a replay (gwpipe replay --dlq-dir) decodes again; its
// reason names it ("line 2: CloudWatch envelope: unknown messageType
// "DATA_MESSAGE_V2" …"). What a dead letter holds was not emitted, so a
// replay duplicates nothing.
//
// # Counters
//
// decode.control_messages (CONTROL_MESSAGE documents dropped),
// decode.unknown_message_types (envelopes dead-lettered for their
// messageType), decode.binary_records (records dead-lettered whole as
// unrecognised binary), decode.non_text_lines (lines dead-lettered alone)
// and decode.empty_records (records with nothing but white space, which
// Firehose permits: dropped, no dead letter), beside the stage's records in, out and dead.
//
// # Memory
//
// Handle emits a raw batch's events in pieces of at most
// Config.MaxEventsPerBatch events and 2 MiB, each as soon as the record that
// completes it is decoded (a record's events are taken back whole when it
// fails), each holding its footprint in the process's memory budget
// (WithMemory, package membudget) until it is delivered; emitting waits
// while the budget is full. A record that decompresses to more than 1 MiB
// is decoded alone, its buffers counted in the budget until its events are
// emitted. See emit.go.
package decode
