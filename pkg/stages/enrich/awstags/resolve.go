package awstags

import (
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gwpipe/gwpipe/pkg/formats/apigw"
	"github.com/gwpipe/gwpipe/pkg/record"
)

// StageKey names what a record's tags are looked up by.
type StageKey struct {
	Account string
	Region  string
	APIID   string
	Stage   string // empty: the API's own tags
	// LogGroup is set only when APIID is unknown: the log group (or Firehose
	// delivery stream) the record came from, which the inventory's reverse
	// index of access-log destinations maps to a stage.
	LogGroup string
}

// Named reports whether the key names a stage, directly or by log group.
func (k StageKey) Named() bool { return k.APIID != "" || k.LogGroup != "" }

// Attribute keys the parser gives access-log fields.
const (
	attrAPIID   = "apigateway.apiId"
	attrStage   = "apigateway.stage"
	attrAccount = "apigateway.accountId"
)

const (
	canarySuffix = "/Canary"
)

// Resolve works out which stage a record belongs to, without calling AWS
// and without allocating:
//
//   - account: Origin.Account (CloudWatch owner, Firehose source, or
//     @aws.account, as the decode stage found it), else the account of
//     Origin.SourceARN, else the access log's accountId field;
//   - region: Origin.Region, else the region of Origin.SourceARN, else
//     Config.SourceRegions, else Config.DefaultRegion;
//   - API and stage: the execution log group name
//     (API-Gateway-Execution-Logs_{apiId}/{stage}, /aws/apigateway/{apiId}/{stage}),
//     else the access log's apiId and stage fields, else a configured
//     Mapping, else the log group (or delivery stream) itself, for Lookup
//     to map through the stages' access-log destinations.
//
// The key's strings may alias the record's bytes: they are valid as long as
// the record's batch is. Tagger never keeps them without copying. ok reports
// whether the key names a stage (see StageKey.Named) with an account and a
// region.
func (t *Tagger) Resolve(rec *record.Record) (key StageKey, ok bool) {
	return t.res.Load().resolve(rec)
}

// resolver is Resolve's state: the configuration it needs and the memo of
// mapping decisions. The Tagger and Offline share it, so that a record names
// the same stage whether or not AWS is asked for its tags.
type resolver struct {
	mappings      []Mapping
	sourceRegions map[string]string
	defaultRegion string

	mapMu   sync.Mutex
	mapMemo atomic.Pointer[map[string]int]
}

func newResolver(cfg Config) *resolver {
	r := &resolver{mappings: append([]Mapping(nil), cfg.Mappings...), sourceRegions: cfg.SourceRegions, defaultRegion: cfg.DefaultRegion}
	empty := map[string]int{}
	r.mapMemo.Store(&empty)
	return r
}

func (t *resolver) resolve(rec *record.Record) (key StageKey, ok bool) {
	o := rec.Origin
	var group string
	if o != nil {
		key.Account, key.Region = o.Account, o.Region
		if (key.Account == "" || key.Region == "") && o.SourceARN != "" {
			r, a := ARNRegionAccount(o.SourceARN)
			if key.Region == "" {
				key.Region = r
			}
			if key.Account == "" {
				key.Account = a
			}
		}
		group = o.LogGroup
		if group == "" {
			group = o.Stream
		}
		key.APIID, key.Stage, _, _ = apigw.ExecutionGroup(o.LogGroup)
	}
	if key.APIID == "" || key.Account == "" {
		for i := range rec.Attrs {
			a := &rec.Attrs[i]
			var dst *string
			switch a.Key {
			case attrAPIID:
				dst = &key.APIID
			case attrStage:
				dst = &key.Stage
			case attrAccount:
				dst = &key.Account
			default:
				continue
			}
			// "-" is how access logs render an unset $context variable.
			if *dst == "" && len(a.Str) > 0 && !(len(a.Str) == 1 && a.Str[0] == '-') {
				*dst = aliasString(a.Str)
				if key.APIID != "" && key.Stage != "" && key.Account != "" {
					break
				}
			}
		}
	}
	if key.APIID == "" {
		key.Stage = ""
		if group != "" {
			if m := t.mappingFor(group); m != nil {
				key.APIID, key.Stage = m.APIID, m.Stage
				if m.Account != "" {
					key.Account = m.Account
				}
				if m.Region != "" {
					key.Region = m.Region
				}
			} else {
				key.LogGroup = group
			}
		}
	}
	if key.Region == "" && o != nil {
		key.Region = t.sourceRegion(o)
	}
	if key.Region == "" {
		key.Region = t.defaultRegion
	}
	return key, key.Account != "" && key.Region != "" && key.Named()
}

func (t *resolver) sourceRegion(o *record.Origin) string {
	if len(t.sourceRegions) == 0 {
		return ""
	}
	if o.SourceARN != "" {
		if r, ok := t.sourceRegions[o.SourceARN]; ok {
			return r
		}
	}
	return t.sourceRegions[o.Source]
}

// maxMappingMemo bounds the memo of log group → mapping decisions.
const maxMappingMemo = 10_000

// mappingFor returns the first Mapping whose glob matches group. Decisions
// are memoised in a copy-on-write map so the hot path is a map read.
func (t *resolver) mappingFor(group string) *Mapping {
	if len(t.mappings) == 0 {
		return nil
	}
	memo := *t.mapMemo.Load()
	if i, ok := memo[group]; ok {
		if i < 0 {
			return nil
		}
		return &t.mappings[i]
	}
	idx := -1
	for i := range t.mappings {
		if ok, _ := path.Match(t.mappings[i].LogGroup, group); ok {
			idx = i
			break
		}
	}
	t.mapMu.Lock()
	cur := *t.mapMemo.Load()
	if len(cur) < maxMappingMemo {
		next := make(map[string]int, len(cur)+1)
		for k, v := range cur {
			next[k] = v
		}
		next[strings.Clone(group)] = idx
		t.mapMemo.Store(&next)
	}
	t.mapMu.Unlock()
	if idx < 0 {
		return nil
	}
	return &t.mappings[idx]
}

// aliasString views b as a string without copying. Record bytes are never
// written after parsing (see package record), and keys made from them are
// copied before the Tagger keeps them.
func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
