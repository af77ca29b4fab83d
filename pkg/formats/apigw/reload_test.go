package apigw

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gwpipe/gwpipe/pkg/record"
	"github.com/gwpipe/gwpipe/pkg/testkit/churn"
)

// TestSetConfigReplacesFormatsPrefixesAndSource: a reload's formats,
// access-log prefixes and other source apply to the next records, the
// routing decisions cached before are forgotten, and the formats learned
// from AWS stay; an invalid configuration is refused and the current one
// stays.
func TestSetConfigReplacesFormatsPrefixesAndSource(t *testing.T) {
	line := []byte(`{"a":"r-1","b":"404"}`)
	parse := func(p *Parser, group string) record.Record {
		rec := record.Record{Origin: &record.Origin{LogGroup: group}, Message: line}
		p.Parse(nil, &rec)
		return rec
	}
	p := mustParser(t, Config{Formats: []FormatRule{{LogGroup: "gw-*", Format: `{"a":"$context.requestId","b":"$context.status"}`}}})
	require.NoError(t, p.SetFormat("learned", `{"a":"$context.requestId","b":"$context.status"}`))
	require.Equal(t, int64(404), attrMap(new(parse(p, "gw-1")))[KeyStatusCode])
	require.Equal(t, record.KindOther, parse(p, "/mine/x").Kind)
	require.Equal(t, "cloudwatch", parse(p, "/mine/x").Source)

	require.NoError(t, p.SetConfig(Config{
		Formats:                []FormatRule{{LogGroup: "gw-*", Format: `{"a":"$context.requestId","b":"$context.integrationStatus"}`}},
		AccessLogGroupPrefixes: []string{"/mine/"},
		OtherSource:            "aws",
	}))
	got := attrMap(new(parse(p, "gw-1")))
	require.Equal(t, int64(404), got[KeyIntegStatus], "the new format, though the group's route was cached")
	require.Nil(t, got[KeyStatusCode])
	require.Equal(t, record.KindAccess, parse(p, "/mine/x").Kind, "the new prefix routes the group to access logs")
	require.Equal(t, "aws", parse(p, "/other/y").Source)
	require.Equal(t, int64(404), attrMap(new(parse(p, "learned")))[KeyStatusCode], "SetFormat's formats survive a reload")

	err := p.SetConfig(Config{Formats: []FormatRule{{LogGroup: "gw-*", Format: "no variables"}}})
	require.ErrorContains(t, err, "formats[0].format")
	require.Equal(t, int64(404), attrMap(new(parse(p, "gw-1")))[KeyIntegStatus], "the current configuration stays")
}

// TestSetConfigUnderParsing: reloads racing with parsing (go test -race)
// parse every record with one configuration or the other, whole.
func TestSetConfigUnderParsing(t *testing.T) {
	a := Config{Formats: []FormatRule{{LogGroup: "gw-*", Format: `{"a":"$context.requestId","b":"$context.status"}`}}}
	b := Config{Formats: []FormatRule{{LogGroup: "gw-*", Format: `{"a":"$context.requestId","b":"$context.integrationStatus"}`}}}
	p := mustParser(t, a)
	stop := churn.Start(func(i int) {
		if err := p.SetConfig([]Config{a, b}[i%2]); err != nil {
			t.Error(err)
		}
	})
	defer stop()
	for range 2000 {
		rec := record.Record{Origin: &record.Origin{LogGroup: "gw-1"}, Message: []byte(`{"a":"r-1","b":"404"}`)}
		p.Parse(nil, &rec)
		m := attrMap(&rec)
		require.True(t, (m[KeyStatusCode] == int64(404)) != (m[KeyIntegStatus] == int64(404)), "one format or the other: %v", m)
	}
}
