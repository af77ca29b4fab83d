package metricstream

import (
	"strings"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// StageKey is what the enrichment stage looks a point's stage up by. Values
// are as the point's tags carry them, normalised like awstags.Info.Tags
// (awstags.NormalizeValue: lower case, "$default" → "_default"): match them
// against normalised inventory values. REST metrics name their API by
// ApiName (APIName set, APIID empty), HTTP and WebSocket metrics by ApiId;
// Stage is empty for API-level metrics.
type StageKey struct {
	Account, Region string
	APIID, APIName  string
	Stage           string
}

// Key returns the stage key of an API Gateway point, from its tags, and
// whether it names an API with an account and a region. Points of other
// namespaces have no key.
func Key(m *record.Metric) (StageKey, bool) { return KeyOfTags(m.Tags) }

// KeyOfTags is Key on a tag list. The Mapper shares one tag slice among all
// the points of a series, so a caller may cache keys by &tags[0].
func KeyOfTags(tags []string) (StageKey, bool) {
	var k StageKey
	for _, t := range tags {
		name, v, ok := strings.Cut(t, ":")
		if !ok || v == "" {
			continue
		}
		var dst *string
		switch name {
		case "aws_account":
			dst = &k.Account
		case "region":
			dst = &k.Region
		case "apiid":
			dst = &k.APIID
		case "apiname":
			dst = &k.APIName
		case "stage":
			dst = &k.Stage
		default:
			continue
		}
		if *dst == "" {
			*dst = v
		}
	}
	return k, k.Account != "" && k.Region != "" && (k.APIID != "" || k.APIName != "")
}
