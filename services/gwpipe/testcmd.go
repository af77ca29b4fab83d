package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/dryrun"
)

// testFile is a `gwpipe test` file.
type testFile struct {
	// Config is every case's configuration unless the case has its own:
	// a file path (relative to the test file) or the configuration inline.
	Config yaml.Node  `yaml:"config"`
	Tests  []testCase `yaml:"tests"`
}

// testCase is one unit test of a configuration.
type testCase struct {
	Name   string    `yaml:"name"`
	Config yaml.Node `yaml:"config"`
	// Where the lines come from, as `gwpipe parse` takes it.
	LogGroup string `yaml:"log_group"`
	Account  string `yaml:"account"`
	Region   string `yaml:"region"`
	// The inputs: each line of Input, each of Lines, and each envelope
	// (written as JSON, one input each).
	Input     string      `yaml:"input"`
	Lines     []string    `yaml:"lines"`
	Envelopes []yaml.Node `yaml:"envelopes"`
	Expect    expectation `yaml:"expect"`
}

// expectation is what a case's inputs must become: "dropped" (no log, no
// dead letter: a filter, sampling, a control message), "sampled_out" (no
// log, and a sample rule left them out), "dead_letter", or, for
// every log delivered, attributes (dotted keys, the log's own fields such
// as status or hostname included), tags (in ddtags) and keys absent; how
// many logs; and, in Outputs, what each log in turn must hold.
type expectation struct {
	Outcome        string `yaml:"-"` // "", "dropped", "sampled_out" or "dead_letter"
	Logs           *int   `yaml:"logs"`
	logExpectation `yaml:",inline"`
	Outputs        []logExpectation `yaml:"outputs"`
	line           int              // where it was written; 0: it was not
}

// asserts reports whether e checks anything: a case whose expectation is
// empty, or misspelt, would pass whatever its inputs became.
func (e expectation) asserts() bool {
	return e.Outcome != "" || e.Logs != nil || len(e.Outputs) > 0 || e.logExpectation.asserts()
}

// logExpectation is what one delivered log must hold.
type logExpectation struct {
	Attributes map[string]any `yaml:"attributes"`
	Tags       []string       `yaml:"tags"`
	Absent     []string       `yaml:"absent"`
}

func (e logExpectation) asserts() bool {
	return len(e.Attributes)+len(e.Tags)+len(e.Absent) > 0
}

func (e *expectation) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "dropped", "sampled_out", "dead_letter":
			*e = expectation{Outcome: n.Value, line: n.Line}
			return nil
		}
		return fmt.Errorf("%q is neither dropped, sampled_out, dead_letter nor a mapping (logs, attributes, tags, absent, outputs)", n.Value)
	}
	type plain expectation
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*e = expectation(p)
	e.line = n.Line
	return nil
}

func testCmd(cfgPath *string) *cobra.Command {
	var run string
	cmd := &cobra.Command{
		Use:   "test FILE.yaml...",
		Short: "Run a configuration's unit tests: inputs and the logs they must become",
		Long: `Test runs unit tests of a configuration, as vector test does: each case sends
its inputs through the pipeline built from its configuration, offline (as
gwpipe parse does: nothing calls AWS or Datadog), and compares what would be
delivered with what it expects. It prints a PASS or FAIL line per case, with
every difference, and exits 2 when a case failed (1 when the command did).

  config: gwpipe.yaml          # every case's configuration: a file (relative to
                               # this one) or inline; else --config; else the defaults
  tests:
    - name: access logs are tagged and parsed
      config:                  # this case's own configuration, inline or a file
        enrich: {tags: [env:prod]}
      log_group: /aws/api-gateway/shop    # where lines come from (gwpipe parse --log-group)
      account: "123456789012"
      region: eu-west-1
      input: |                 # one input per line; or lines: [...]
        {"requestId":"r1","httpMethod":"GET","status":"404"}
      envelopes: []            # CloudWatch subscription envelopes, one input each
      expect:
        logs: 1                # how many logs are delivered
        attributes:            # dotted keys every delivered log has, with these values
          http.status_code: 404
          status: warn
        tags: [env:prod, aws_account:123456789012]   # in every log's ddtags
        absent: [gwpipe.parse_error]                 # keys no log has
        outputs:               # what each log in turn holds (attributes, tags, absent)
          - attributes: {http.method: GET}
    - name: health checks are dropped
      input: '{"requestId":"r2","resourcePath":"/health","status":"200"}'
      expect: dropped          # no log delivered (a filter, sampling, a control
                               # message); or sampled_out (a sample rule), dead_letter

The file is strict, as the configuration is: an unknown key is an error
with its line and the closest key, and so is a case whose expect is missing
or asserts nothing. Configurations load as run loads them: the defaults,
the file, then the environment (GWPIPE_…, DD_TAGS).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed, total := 0, 0
			for _, path := range args {
				f, p, err := runTestFile(cmd.Context(), path, *cfgPath, run, cmd.OutOrStdout())
				if err != nil {
					return err
				}
				failed += f
				total += p + f
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d passed, %d failed\n", total-failed, failed)
			if total == 0 {
				return fmt.Errorf("no test case ran")
			}
			if failed > 0 {
				return exitError{code: exitNotParsed}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "run only the cases whose name contains this text")
	return cmd
}

// runTestFile runs one file's cases and returns how many failed and
// passed.
func runTestFile(ctx context.Context, path, cfgPath, only string, w io.Writer) (failed, passed int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	var tf testFile
	if err := config.DecodeStrict(data, &tf); err != nil {
		return 0, 0, fmt.Errorf("%s:\n%w", path, err)
	}
	if len(tf.Tests) == 0 {
		return 0, 0, fmt.Errorf("%s: no tests", path)
	}
	var errs []error
	for i, tc := range tf.Tests {
		switch e := tc.Expect; {
		case e.line == 0:
			errs = append(errs, fmt.Errorf("tests[%d] %q has no expect: %s", i, tc.Name, whatToExpect))
		case !e.asserts():
			errs = append(errs, fmt.Errorf("line %d: tests[%d].expect asserts nothing: %s", e.line, i, whatToExpect))
		}
	}
	if len(errs) > 0 {
		return 0, 0, fmt.Errorf("%s:\n%w", path, errors.Join(errs...))
	}
	dir := filepath.Dir(path)
	for i, tc := range tf.Tests {
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("%s#%d", filepath.Base(path), i+1)
		}
		if only != "" && !strings.Contains(tc.Name, only) {
			continue
		}
		node := &tc.Config
		if node.Kind == 0 {
			node = &tf.Config
		}
		c, err := caseConfig(node, dir, cfgPath)
		var diffs []string
		if err == nil {
			diffs, err = runCase(ctx, c, tc)
		}
		if err != nil {
			diffs = append(diffs, err.Error())
		}
		if len(diffs) == 0 {
			passed++
			fmt.Fprintf(w, "PASS  %s\n", tc.Name)
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %s\n", tc.Name)
		for _, d := range diffs {
			fmt.Fprintf(w, "      %s\n", strings.ReplaceAll(d, "\n", "\n      "))
		}
	}
	return failed, passed, nil
}

const whatToExpect = "give logs, attributes, tags, absent or outputs, or dropped, sampled_out or dead_letter"

// caseConfig loads a case's configuration: inline, a file relative to the
// test file, else --config, else the defaults; then the environment.
func caseConfig(n *yaml.Node, dir, cfgPath string) (config.Config, error) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Value != "":
		p := n.Value
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return config.Load(p, os.Environ())
	case n.Kind == yaml.MappingNode:
		data, err := yaml.Marshal(n)
		if err != nil {
			return config.Config{}, err
		}
		return config.LoadData(fmt.Sprintf("inline (line %d)", n.Line), data, os.Environ())
	}
	return config.Load(cfgPath, os.Environ())
}

// caseInputs lists a case's inputs.
func caseInputs(tc testCase) ([]dryrun.Input, error) {
	like := dryrun.Input{LogGroup: tc.LogGroup, Account: tc.Account, Region: tc.Region}
	var ins []dryrun.Input
	add := func(data []byte) {
		in := like
		in.Data = data
		ins = append(ins, in)
	}
	for _, l := range strings.Split(tc.Input, "\n") {
		if strings.TrimSpace(l) != "" {
			add([]byte(strings.TrimRight(l, "\r")))
		}
	}
	for _, l := range tc.Lines {
		add([]byte(l))
	}
	for i := range tc.Envelopes {
		var v any
		if err := tc.Envelopes[i].Decode(&v); err != nil {
			return nil, fmt.Errorf("envelopes[%d]: %w", i, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("envelopes[%d]: %w", i, err)
		}
		add(b)
	}
	if len(ins) == 0 {
		return nil, errors.New("no input: give input, lines or envelopes")
	}
	return ins, nil
}

// runCase sends a case's inputs through its configuration and returns the
// differences from its expectation.
func runCase(ctx context.Context, c config.Config, tc testCase) ([]string, error) {
	ins, err := caseInputs(tc)
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	r, err := dryrun.New(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	var all dryrun.Result
	for _, in := range ins {
		res, err := r.Run(ctx, in)
		if err != nil {
			_, _ = r.Close(ctx)
			return nil, err
		}
		all.Add(res)
	}
	res, err := r.Close(ctx)
	all.Add(res)
	if err != nil {
		return nil, err
	}
	return tc.Expect.check(all), nil
}

// check compares what the inputs became with e.
func (e expectation) check(res dryrun.Result) []string {
	var diffs []string
	deadLines := func() {
		for _, d := range res.Dead {
			diffs = append(diffs, fmt.Sprintf("dead-lettered by %s: %s", d.Stage, d.Reason))
		}
	}
	logLines := func(what string) {
		for _, l := range res.Logs {
			diffs = append(diffs, what+string(l))
		}
	}
	switch e.Outcome {
	case "dropped", "sampled_out":
		if len(res.Logs) > 0 || len(res.Dead) > 0 {
			diffs = append(diffs, fmt.Sprintf("want %s, got %d logs and %d dead letters", strings.ReplaceAll(e.Outcome, "_", " "), len(res.Logs), len(res.Dead)))
			logLines("delivered: ")
			deadLines()
		} else if e.Outcome == "sampled_out" && res.SampledOut == 0 {
			diffs = append(diffs, fmt.Sprintf("want sampled out, got dropped otherwise (%d by a filter rule, none by a sample rule)", res.Dropped))
		}
		return diffs
	case "dead_letter":
		if len(res.Dead) == 0 || len(res.Logs) > 0 {
			diffs = append(diffs, fmt.Sprintf("want dead-lettered, got %d logs and %d dead letters", len(res.Logs), len(res.Dead)))
			logLines("delivered: ")
		}
		return diffs
	}
	deadLines()
	switch {
	case e.Logs != nil && len(res.Logs) != *e.Logs:
		diffs = append(diffs, fmt.Sprintf("want %d logs, got %d", *e.Logs, len(res.Logs)))
	case len(e.Outputs) > 0 && len(res.Logs) != len(e.Outputs):
		diffs = append(diffs, fmt.Sprintf("want %d logs (outputs), got %d", len(e.Outputs), len(res.Logs)))
	case e.Logs == nil && len(res.Logs) == 0:
		diffs = append(diffs, "want logs, got none (dropped)")
	}
	for i, raw := range res.Logs {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			diffs = append(diffs, fmt.Sprintf("log %d: not JSON: %v", i+1, err))
			continue
		}
		flat := map[string]any{}
		flatten("", m, flat)
		d := e.logExpectation.check(flat)
		if i < len(e.Outputs) {
			d = append(d, e.Outputs[i].check(flat)...)
		}
		if len(d) > 0 {
			diffs = append(diffs, fmt.Sprintf("log %d: %s", i+1, raw))
			for _, x := range d {
				diffs = append(diffs, "  "+x)
			}
		}
	}
	return diffs
}

// check compares one delivered log, flattened, with e.
func (e logExpectation) check(flat map[string]any) []string {
	var d []string
	keys := make([]string, 0, len(e.Attributes))
	for k := range e.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		want := jsonValue(e.Attributes[k])
		got, ok := flat[k]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("attribute %s: want %s, missing", k, show(want)))
		case !reflect.DeepEqual(got, want):
			d = append(d, fmt.Sprintf("attribute %s: want %s, got %s", k, show(want), show(got)))
		}
	}
	ddtags, _ := flat["ddtags"].(string)
	tags := strings.Split(ddtags, ",")
	for _, t := range e.Tags {
		if !slices.Contains(tags, t) {
			d = append(d, fmt.Sprintf("tag %s: missing from ddtags %q", t, ddtags))
		}
	}
	for _, k := range e.Absent {
		if v, ok := lookup(flat, k); ok {
			d = append(d, fmt.Sprintf("attribute %s: want absent, got %s", k, show(v)))
		}
	}
	return d
}

// flatten turns a log's nested objects into dotted keys.
func flatten(prefix string, v any, into map[string]any) {
	m, ok := v.(map[string]any)
	if !ok || (len(m) == 0 && prefix != "") {
		into[prefix] = v
		return
	}
	for k, sub := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatten(k, sub, into)
	}
}

// lookup finds key, or any key under it (an object), in a flattened log.
func lookup(flat map[string]any, key string) (any, bool) {
	if v, ok := flat[key]; ok {
		return v, true
	}
	for k, v := range flat {
		if strings.HasPrefix(k, key+".") {
			return map[string]any{strings.TrimPrefix(k, key+"."): v}, true
		}
	}
	return nil, false
}

// jsonValue is v as it reads back from JSON (a YAML 404 and a JSON 404
// compare equal).
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
