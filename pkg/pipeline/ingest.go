package pipeline

import "github.com/gwpipe/gwpipe/pkg/runtime/stage"

// Ingest is where records enter the pipeline as the Firehose endpoint's
// do (the raw topic, counted under ingest), for a caller in the process:
// gwpipe parse and gwpipe test send their lines so (package dryrun).
// Valid once Start returned.
func (p *Pipeline) Ingest() stage.Output { return p.entryOutput(StageIngest) }
