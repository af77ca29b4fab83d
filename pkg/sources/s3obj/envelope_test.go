package s3obj

import (
	"fmt"
	"testing"

	"github.com/gwpipe/gwpipe/pkg/formats/jsonstr"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"

	"github.com/gwpipe/gwpipe/pkg/formats/cwlogs"
)

type parsedEvent struct {
	ID, Msg string
	TS      int64
}

type parsedDoc struct {
	Type, Owner, Group, Stream string
	Events                     []parsedEvent
}

// slowParse is the reference: cwlogs.Parse, as the decode stage reads a
// document.
func slowParse(doc []byte) (parsedDoc, error) {
	var p fastjson.Parser
	var d parsedDoc
	err := cwlogs.Parse(&p, doc, func(e *cwlogs.Envelope) error {
		d.Type, d.Owner, d.Group, d.Stream = e.MessageType, e.Owner, e.LogGroup, e.LogStream
		return nil
	}, func(_ *cwlogs.Envelope, e *cwlogs.Event) error {
		d.Events = append(d.Events, parsedEvent{string(e.ID), string(e.Message), e.Timestamp})
		return nil
	})
	return d, err
}

// fastParse is the single-pass parser, with the unescaping the reader does.
func fastParse(doc []byte) (parsedDoc, bool) {
	env, evs, ok := parseEnvelopeFast(doc, nil)
	if !ok {
		return parsedDoc{}, false
	}
	d := parsedDoc{Type: string(env.messageType), Owner: string(env.owner), Group: string(env.group), Stream: string(env.stream)}
	switch d.Type {
	case cwlogs.Data:
	case cwlogs.Control:
		return d, true
	default:
		return parsedDoc{}, false // the reader leaves other types to cwlogs.Parse
	}
	for _, e := range evs {
		msg, ok := jsonstr.Append(nil, e.message)
		if !ok {
			return parsedDoc{}, false
		}
		d.Events = append(d.Events, parsedEvent{string(e.id), string(msg), e.ts})
	}
	return d, true
}

var envelopeSeeds = []string{
	`{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1,"message":"plain"},{"id":"2","timestamp":2,"message":"{\"requestId\":\"r\",\"path\":\"\\/a\\tb\\u00e9\\n\"}"}]}`,
	`{"logEvents":[{"id":31953106606966983378809025079804211143289615424298221568,"timestamp":1432826855000,"message":"x"}],"logGroup":"g","logStream":"s","messageType":"DATA_MESSAGE","owner":"1","subscriptionFilters":["f"]}`,
	`{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1741312971934,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}`,
	`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[],"policyLevel":"ACCOUNT_LEVEL_POLICY"}`,
	`{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","timestamp":1,"message":"a","extractedFields":{"@aws.account":"9"}}]}`,
	` { "messageType" : "DATA_MESSAGE" , "logEvents" : [ { "message" : "\ud83d\ude00" , "timestamp" : 1.5 } ] } `,
	`{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1}]}`,
	`{"messageType":"DATA_MESSAGE","x":[1,{"y":null},true,false,-0.5e3],"logEvents":[{"id":"1","timestamp":-7,"message":"m","k":{"z":[]}}]}`,
	`{"messageType":"DATA_MESSAGE","logEvents":[{"message":"bad \q escape"}]}`,
}

func TestEnvelopeFastPathMatchesTheParser(t *testing.T) {
	t.Parallel()
	for i, s := range envelopeSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkFastPath(t, []byte(s))
		})
	}
	// The common shapes take the fast path.
	for _, i := range []int{0, 1, 2, 3, 7} {
		_, ok := fastParse([]byte(envelopeSeeds[i]))
		assert.True(t, ok, "seed %d", i)
	}
}

func checkFastPath(t *testing.T, doc []byte) {
	fast, ok := fastParse(doc)
	if !ok {
		return // the general parser reads it
	}
	slow, err := slowParse(doc)
	require.NoError(t, err, "the fast path accepted a document the parser refuses: %q", doc)
	require.Equal(t, slow, fast, "document %q", doc)
}

func FuzzEnvelopeFastPath(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { checkFastPath(t, doc) })
}
