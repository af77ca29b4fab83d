package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gwpipe/gwpipe/pkg/config"
	"github.com/gwpipe/gwpipe/pkg/runtime/stage"
	"github.com/gwpipe/gwpipe/pkg/sinks/ddlogs"
	"github.com/gwpipe/gwpipe/pkg/sinks/dlq"
	"github.com/gwpipe/gwpipe/pkg/stages/derive"
	"github.com/gwpipe/gwpipe/pkg/stages/parse"
)

// The pipeline's graph, declared once as data: its stages (name, input
// and output topic, constructor) and its entry points (what publishes
// into a topic from outside a stage: the sources, the timers). From it
// derive the --stages names (StageNames, ParseStages), the consumer
// groups the broker transports create (Topology), the stages New mounts
// and their order, the order of the stages in /status, and the README's
// diagram (TestREADMEShowsTheGraph).

// Stage names, as `gwpipe run --stages` takes them.
const (
	StageIngest         = "ingest" // the entry points a source runs
	StageDecode         = "decode"
	StageParse          = parse.Name
	StageEnrich         = "enrich"
	StageDerive         = derive.Name
	StageDeliverLogs    = ddlogs.StageName
	StageDeliverMetrics = "deliver-metrics"
	StageDLQ            = dlq.StageName
)

// topic is a topic of the graph, by its key under pipeline.topics (the
// configuration names the topics).
type topic string

const (
	topicRaw      topic = "raw"
	topicDecoded  topic = "decoded"
	topicParsed   topic = "parsed"
	topicEnriched topic = "enriched"
	topicMetrics  topic = "metrics"
	topicDLQ      topic = "dlq"
)

// name is the topic's name under the configuration.
func (t topic) name(ts config.Topics) string {
	switch t {
	case topicRaw:
		return ts.Raw
	case topicDecoded:
		return ts.Decoded
	case topicParsed:
		return ts.Parsed
	case topicEnriched:
		return ts.Enriched
	case topicMetrics:
		return ts.Metrics
	case topicDLQ:
		return ts.DLQ
	}
	panic("pipeline: topic " + string(t) + " is not in the graph")
}

// stageNode is one stage of the graph. Every stage may also dead-letter
// to the dlq topic.
type stageNode struct {
	name string
	in   topic
	out  topic  // "": the stage delivers out of the pipeline, to
	to   string // where a stage without output topic delivers
	// on reports whether the configuration has the stage; nil: always.
	on func(config.Config) bool
	// everywhere: every process runs the stage, whatever its --stages.
	everywhere bool
	// maxInFlight bounds the batches the stage handles at once; nil:
	// pipeline.runtime.max_in_flight.
	maxInFlight func(config.Config) int
	// build makes the stage's handler when the pipeline starts, in graph
	// order (a stage may use what an earlier one built).
	build func(p *Pipeline, ctx context.Context) (stage.Handler, error)
}

// entryNode is an entry point of the graph: it publishes into a topic
// from outside a stage.
type entryNode struct {
	// name is the entry point's figures' name in /status.
	name   string
	what   string // what enters (for the diagram)
	enters topic
	// runBy is the --stages name of the processes that run it.
	runBy string
	// on reports whether the configuration has the entry point; nil:
	// it is added by a command (replay).
	on func(config.Config) bool
	// source builds the entry point's source when the pipeline starts;
	// nil: it is built elsewhere (the Firehose endpoint, a timer of its
	// stage, a source added by a command, another entry's source).
	source func(p *Pipeline, ctx context.Context) (Source, error)
}

func metricsOn(c config.Config) bool { return c.Metrics.Enabled }

// theGraph is gwpipe's graph: a function rather than a variable, for its
// constructors refer back to the graph.
func theGraph() graph {
	return graph{
		entries: []entryNode{
			{name: StageIngest, what: "Firehose HTTP endpoint (CloudWatch Logs, metric streams)", enters: topicRaw, runBy: StageIngest,
				on: func(c config.Config) bool { return c.Sources.Firehose.Enabled }},
			{name: SourceSQS, what: "SQS: CloudWatch Logs payloads", enters: topicRaw, runBy: StageIngest,
				on: func(c config.Config) bool { return len(c.Sources.SQS.QueueURLs) > 0 }, source: (*Pipeline).newSQSSource},
			{name: SourceSQSS3, what: "SQS: S3 objects the messages announce", enters: topicDecoded, runBy: StageIngest,
				on: func(c config.Config) bool { return len(c.Sources.SQS.QueueURLs) > 0 }},
			{name: SourceReplay, what: "gwpipe replay: S3 archives, dead letters", enters: topicDecoded, runBy: StageIngest},
			{name: SourcePoller, what: "CloudWatch GetMetricData poller", enters: topicParsed, runBy: StageIngest,
				on: func(c config.Config) bool { return c.Metrics.Enabled && len(c.Metrics.Poller.Accounts) > 0 }, source: (*Pipeline).newPollerSource},
			{name: StageParse, what: "timer: summaries of requests timed out", enters: topicParsed, runBy: StageParse},
			{name: StageDerive, what: "timer: metric windows closed", enters: topicMetrics, runBy: StageDerive, on: metricsOn},
		},
		stages: []stageNode{
			{name: StageDecode, in: topicRaw, out: topicDecoded, build: (*Pipeline).newDecode},
			{name: StageParse, in: topicDecoded, out: topicParsed, build: (*Pipeline).newParse},
			{name: StageEnrich, in: topicParsed, out: topicEnriched, build: (*Pipeline).newEnrich},
			{name: StageDerive, in: topicEnriched, out: topicMetrics, on: metricsOn, build: (*Pipeline).newDerive},
			{name: StageDeliverLogs, in: topicEnriched, to: "Datadog logs intake", build: (*Pipeline).newDeliverLogs,
				// Requests wait in the client until their payload is
				// accepted; allow enough of them to fill every payload
				// the client keeps in flight.
				maxInFlight: func(c config.Config) int { return max(64, c.Pipeline.Runtime.MaxInFlight) }},
			{name: StageDeliverMetrics, in: topicMetrics, to: "Datadog metrics API", on: metricsOn, build: (*Pipeline).newDeliverMetrics},
			{name: StageDLQ, in: topicDLQ, to: "dead-letter archive (gwpipe replay --dlq-dir)", everywhere: true, build: (*Pipeline).newDLQ},
		},
	}
}

type graph struct {
	entries []entryNode
	stages  []stageNode
}

// names are the --stages names, in pipeline order: ingest (the sources)
// then every stage a process may be asked to run.
func (g graph) names() []string {
	out := []string{StageIngest}
	for _, s := range g.stages {
		if !s.everywhere {
			out = append(out, s.name)
		}
	}
	return out
}

// entry returns the entry point named name.
func (g graph) entry(name string) entryNode {
	for _, e := range g.entries {
		if e.name == name {
			return e
		}
	}
	panic("pipeline: entry point " + name + " is not in the graph")
}

// topology lists, per topic, the stages of cfg's graph that consume it.
func (g graph) topology(cfg config.Config) map[string][]string {
	m := map[string][]string{}
	for _, s := range g.stages {
		if s.on == nil || s.on(cfg) {
			t := s.in.name(cfg.Pipeline.Topics)
			m[t] = append(m[t], s.name)
		}
	}
	return m
}

// besideDerive names the stages that read the derive stage's input beside
// it: a record they dead-letter was counted by derive already.
func (g graph) besideDerive() []string {
	var in topic
	for _, s := range g.stages {
		if s.name == StageDerive {
			in = s.in
		}
	}
	var out []string
	for _, s := range g.stages {
		if s.in == in && s.name != StageDerive {
			out = append(out, s.name)
		}
	}
	return out
}

// StageNames are the names `gwpipe run --stages` takes, in pipeline
// order; every one of them is the default.
func StageNames() []string { return theGraph().names() }

// ParseStages checks a --stages value.
func ParseStages(s string) ([]string, error) {
	all := StageNames()
	if s == "all" {
		return all, nil
	}
	// Empty is not "all": a worker started with `--stages "$STAGES"` and
	// the variable unset would run every stage of a fleet's tiers.
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("no stage named: give a comma-separated subset of %s, or all (the default)", strings.Join(all, ", "))
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(all, name) {
			return nil, fmt.Errorf("unknown stage %q (stages: %s)", name, strings.Join(all, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Topology lists, per topic, the stages that consume it. Broker transports
// create every consumer group up front, whichever stages this process runs,
// so that nothing published before a group's workers start is lost.
func Topology(cfg config.Config) map[string][]string { return theGraph().topology(cfg) }
