package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/spf13/cobra"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/dryrun"
	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
	"github.com/gwpipe/gwpipe/pkg/redact"
)

// exitError makes the process exit with code after printing err (when
// err is not nil).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e exitError) Unwrap() error { return e.err }

// exitCode is the process's exit code for err: 0 for none, an exitError's
// own, 1 otherwise.
func exitCode(err error) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

// exitNotParsed is the exit code of `gwpipe parse` when a line was not
// parsed, and of `gwpipe test` when a case failed: the command worked,
// the input or the configuration did not.
const exitNotParsed = 2

func parseCmd(cfgPath *string) *cobra.Command {
	var format, logGroup, account, region string
	cmd := &cobra.Command{
		Use:   "parse",
		Short: "Parse log lines from stdin and print the Datadog logs gwpipe would deliver",
		Long: `Parse reads log lines on stdin and prints, for each, the Datadog log exactly
as gwpipe would deliver it: one JSON object per line, after decoding, parsing,
the static enrichment (enrich.tags, DD_TAGS, the account, region, API and
stage the line's origin and enrich.mappings name) and the configuration's
filters. Nothing calls AWS or Datadog: stage tags read from AWS
(enrich.aws_tags) are not added.

A line is an API Gateway log line, or CloudWatch Logs subscription data (a
DATA_MESSAGE envelope on one line, as subscriptions deliver it; stdin may be
gzipped), detected as the pipeline detects it: an envelope gives one log per
event, with its own log group and owner.

--log-group names where plain lines come from: it chooses the parser
(API-Gateway-Execution-Logs_{apiId}/{stage} for execution logs, an access-log
group otherwise) and is the log's hostname. Without it, lines are read as
access logs that API Gateway delivers directly to a Firehose stream
(` + dryrun.DefaultStream + `). --format gives that log group's access-log format
(the stage's $context template), as a parse.formats rule would; without it,
the configuration's rules apply, then detection (JSON, CLF, XML, …).

Each input line prints one JSON line (several for an envelope): the log; or
{"dead_letter":{…}} with the stage and the reason when it was dead-lettered;
or {"dropped":{…}} with the reason when nothing was delivered (a filter, a
sample rule, a control message).
A line that could not be parsed is printed with its gwpipe.parse_error
attribute, as it is delivered. A summary goes to stderr. Exit code: 0 when
every line was parsed, 2 when one was not (parse error or dead letter), 1
when the command failed.

  echo '{"requestId":"r1","status":"200","httpMethod":"GET"}' | gwpipe parse --log-group /aws/api-gateway/shop
  gwpipe parse --format '$context.identity.sourceIp $context.requestId $context.status' < access.log`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(*cfgPath)
			if err != nil {
				return err
			}
			if format != "" {
				key := logGroup
				if key == "" {
					key = dryrun.DefaultStream
				}
				// First: it wins over the configuration's rules.
				c.Parse.Formats = append([]apigw.FormatRule{{LogGroup: globQuote(key), Format: format}}, c.Parse.Formats...)
			}
			return runParse(cmd.Context(), c, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), dryrun.Input{LogGroup: logGroup, Account: account, Region: region})
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "access-log format of the lines ($context template), as a parse.formats rule for --log-group")
	f.StringVar(&logGroup, "log-group", "", "log group the lines come from (default: an amazon-apigateway-* Firehose stream's direct access logs)")
	f.StringVar(&account, "account", "", "AWS account the lines come from (the aws_account tag)")
	f.StringVar(&region, "region", "", "AWS Region the lines come from (the region tag)")
	return cmd
}

// globQuote escapes a log group's glob characters, so that a parse.formats
// rule matches that group alone.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parseCounts are what `gwpipe parse` did, by input line.
type parseCounts struct {
	lines, parsed, parseErrors, dead, dropped, logs int
}

func runParse(ctx context.Context, c config.Config, stdin io.Reader, stdout, stderr io.Writer, like dryrun.Input) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log := slog.New(redact.Handler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	r, err := dryrun.New(ctx, c, log)
	if err != nil {
		return err
	}
	in, err := maybeGunzip(stdin)
	if err != nil {
		_, _ = r.Close(ctx)
		return err
	}
	out := bufio.NewWriter(stdout)
	var n parseCounts
	br := bufio.NewReaderSize(in, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			_, _ = r.Close(ctx)
			return fmt.Errorf("read stdin: %w", rerr)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) > 0 {
			n.lines++
			input := like
			input.Data = line
			res, err := r.Run(ctx, input)
			if err != nil {
				_, _ = r.Close(ctx)
				return fmt.Errorf("line %d: %w", lineNo, err)
			}
			n.add(writeResult(out, lineNo, res))
		}
		if rerr == io.EOF {
			break
		}
	}
	// Request summaries still open (parse.correlation.deliver_summaries).
	res, err := r.Close(ctx)
	n.logs += len(res.Logs)
	for _, l := range res.Logs {
		writeJSONLine(out, l)
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d lines: %d parsed, %d with a parse error, %d dead-lettered, %d dropped; %d logs\n",
		n.lines, n.parsed, n.parseErrors, n.dead, n.dropped, n.logs)
	if n.parseErrors+n.dead > 0 {
		return exitError{code: exitNotParsed}
	}
	return nil
}

// lineOutcome is what one input line became.
type lineOutcome struct {
	logs, parseErrors, dead int
}

func (n *parseCounts) add(o lineOutcome) {
	n.logs += o.logs
	switch {
	case o.dead > 0:
		n.dead++
	case o.parseErrors > 0:
		n.parseErrors++
	case o.logs == 0:
		n.dropped++
	default:
		n.parsed++
	}
}

// writeResult prints what one line became, one JSON object per line.
func writeResult(w *bufio.Writer, lineNo int, res dryrun.Result) lineOutcome {
	var o lineOutcome
	for _, l := range res.Logs {
		o.logs++
		if parseError(l) != "" {
			o.parseErrors++
		}
		writeJSONLine(w, l)
	}
	for _, d := range res.Dead {
		o.dead++
		b, _ := json.Marshal(map[string]any{"dead_letter": map[string]any{"line": lineNo, "stage": d.Stage, "reason": d.Reason}})
		writeJSONLine(w, b)
	}
	if o.logs == 0 && o.dead == 0 {
		reason := "no log delivered (a CloudWatch control message)"
		switch {
		case res.SampledOut > 0:
			reason = "sampled out by filters.sample"
		case res.Dropped > 0:
			reason = "dropped by a filter (filters.drop, include_at_match, exclude_at_match)"
		}
		b, _ := json.Marshal(map[string]any{"dropped": map[string]any{"line": lineNo, "reason": reason}})
		writeJSONLine(w, b)
	}
	return o
}

func writeJSONLine(w *bufio.Writer, b []byte) {
	_, _ = w.Write(b)
	_ = w.WriteByte('\n')
}

// parseError is a delivered log's gwpipe.parse_error, or "".
func parseError(log json.RawMessage) string {
	var l struct {
		Gwpipe struct {
			ParseError string `json:"parse_error"`
		} `json:"gwpipe"`
	}
	_ = json.Unmarshal(log, &l)
	return l.Gwpipe.ParseError
}

// maybeGunzip reads gzipped input (a saved subscription payload) as its
// content.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(2)
	if !cwlogs.IsGzip(head) {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	return zr, nil
}
