package filter

import (
	"slices"
	"sync"

	"github.com/gwpipe/gwpipe/pkg/record"
)

// Counter slots per rule, counted per batch and added once.
const (
	cMatched = iota
	cRedacted
	cDropped
	cSampledOut
	nCounts
)

// work is one batch's scratch state, pooled.
type work struct {
	buf    [2][]byte // scrubbing's alternating outputs
	arena  []byte    // the changed strings of the output
	attrs  []record.Attr
	counts [][nCounts]int64
	scope  []bool // per scrubber: the record is in its scope
	hits   []int  // per scrubber: replacements in the record
}

var workPool = sync.Pool{New: func() any { return &work{} }}

// keep copies p into the output's arena (never the input batch's: its
// spare capacity may be written by another reader of it).
func (w *work) keep(p []byte) []byte {
	if cap(w.arena)-len(w.arena) < len(p) {
		w.arena = make([]byte, 0, max(16<<10, 2*cap(w.arena), len(p)))
	}
	start := len(w.arena)
	w.arena = append(w.arena, p...)
	return w.arena[start:len(w.arena):len(w.arena)]
}

// attrSlice is a new attribute slice of length n with room for one more.
func (w *work) attrSlice(n int) []record.Attr {
	if cap(w.attrs)-len(w.attrs) < n+1 {
		w.attrs = make([]record.Attr, 0, max(512, n+1))
	}
	start := len(w.attrs)
	w.attrs = w.attrs[:start+n+1]
	return w.attrs[start : start+n : start+n+1]
}

// apply returns the filtered batch and a function that adds what the
// rules did to their counters; with scrubOnly, every log is kept and only
// the scrubbing rules apply.
func (s *set) apply(b *record.Batch, scrubOnly bool) (*record.Batch, func()) {
	w := workPool.Get().(*work)
	nRules := len(s.scrubs) + len(s.drop) + len(s.sample) + 2
	w.counts = append(w.counts[:0], make([][nCounts]int64, nRules)...)
	w.scope = append(w.scope[:0], make([]bool, len(s.scrubs))...)
	w.hits = append(w.hits[:0], make([]int, len(s.scrubs))...)
	w.arena, w.attrs = nil, nil

	var out []record.Record // nil until a record is dropped or changed
	diverge := func(i int) {
		if out == nil {
			out = make([]record.Record, i, len(b.Records))
			copy(out, b.Records[:i])
		}
	}
	for i := range b.Records {
		v := view{r: &b.Records[i]}
		var rate []byte
		keep := true
		if !scrubOnly {
			rate, keep = s.decide(&v, w)
		}
		if !keep {
			diverge(i)
			continue
		}
		rec, changed := s.scrub(&v, rate, w)
		if changed {
			diverge(i)
		}
		if out != nil {
			out = append(out, rec)
		}
	}
	counts := slices.Clone(w.counts)
	w.arena, w.attrs = nil, nil
	for i := range w.buf {
		if cap(w.buf[i]) > 1<<20 {
			w.buf[i] = nil // one huge log does not pin its buffer
		}
	}
	workPool.Put(w)
	count := func() { s.count(counts) }
	if out == nil {
		return b, count
	}
	c := *b
	c.Records, c.Arena = out, nil
	return &c, count
}

// Counter slot indexes: the scrubbers, then exclude, include, drop, sample.
func (s *set) slotExclude() int   { return len(s.scrubs) }
func (s *set) slotInclude() int   { return len(s.scrubs) + 1 }
func (s *set) slotDrop(i int) int { return len(s.scrubs) + 2 + i }
func (s *set) slotSample(i int) int {
	return len(s.scrubs) + 2 + len(s.drop) + i
}

// decide is whether the log is kept, and at which sampling rate (nil: not
// sampled). The expressions read the raw message, as received.
func (s *set) decide(v *view, w *work) (rate []byte, keep bool) {
	msg := v.r.Message
	if s.exclude != nil && s.exclude.match(msg) {
		c := &w.counts[s.slotExclude()]
		c[cMatched]++
		c[cDropped]++
		return nil, false
	}
	if s.include != nil {
		c := &w.counts[s.slotInclude()]
		if !s.include.match(msg) {
			c[cDropped]++
			return nil, false
		}
		c[cMatched]++
	}
	for i, m := range s.drop {
		if m.match(v) {
			c := &w.counts[s.slotDrop(i)]
			c[cMatched]++
			c[cDropped]++
			return nil, false
		}
	}
	for i, m := range s.sample {
		if !m.match(v) {
			continue
		}
		c := &w.counts[s.slotSample(i)]
		c[cMatched]++
		if !m.all && hash64(sampleKey(v.r)) >= m.threshold {
			c[cSampledOut]++
			return nil, false
		}
		return m.rate, true
	}
	return nil, true
}

// scrub returns the record with every scrubbing rule applied to its
// message and string attributes, and rate (when sampled) added; changed
// is false when it is the record as it was.
func (s *set) scrub(v *view, rate []byte, w *work) (rec record.Record, changed bool) {
	rec = *v.r
	if len(s.scrubs) == 0 && rate == nil {
		return rec, false
	}
	for i, sc := range s.scrubs {
		w.scope[i] = sc.scope == nil || sc.scope.contains(v)
	}
	hit := false // some rule changed something in this record
	if m, ok := s.scrubBytes(rec.Message, w); ok {
		rec.Message, hit = m, true
	}
	attrsCopied := false
	copyAttrs := func() {
		if !attrsCopied {
			a := w.attrSlice(len(rec.Attrs))
			copy(a, rec.Attrs)
			rec.Attrs, attrsCopied = a, true
		}
	}
	for j := range rec.Attrs {
		a := &rec.Attrs[j]
		if a.Kind != record.String || len(a.Str) == 0 {
			continue
		}
		if m, ok := s.scrubBytes(a.Str, w); ok {
			copyAttrs()
			rec.Attrs[j].Str, hit = m, true
		}
	}
	for i, n := range w.hits {
		if n > 0 {
			w.counts[i][cMatched]++
			w.counts[i][cRedacted] += int64(n)
			w.hits[i] = 0
		}
	}
	if rate != nil {
		copyAttrs()
		rec.Attrs = append(rec.Attrs, record.NumberAttr(KeySampleRate, rate))
	}
	return rec, hit || rate != nil
}

// scrubBytes applies the scrubbers in the record's scope to p. It returns
// the result, kept in the output's arena, and true when anything changed.
func (s *set) scrubBytes(p []byte, w *work) ([]byte, bool) {
	cur, at := p, -1 // at: which of w.buf holds cur; -1: p itself
	for i, sc := range s.scrubs {
		if !w.scope[i] {
			continue
		}
		for _, fn := range sc.fns {
			dst := 0
			if at == 0 {
				dst = 1
			}
			out, n := fn(w.buf[dst][:0], cur)
			if n == 0 {
				continue
			}
			w.buf[dst] = out
			cur, at = out, dst
			w.hits[i] += n
		}
	}
	if at < 0 {
		return p, false
	}
	return w.keep(cur), true
}

// count adds one batch's counts to the rules' counters.
func (s *set) count(counts [][nCounts]int64) {
	add := func(st *RuleStats, c *[nCounts]int64) {
		if st == nil {
			return
		}
		for k, n := range c {
			if n == 0 {
				continue
			}
			switch k {
			case cMatched:
				st.Matched.Add(n)
			case cRedacted:
				st.Redacted.Add(n)
			case cDropped:
				st.Dropped.Add(n)
			case cSampledOut:
				st.SampledOut.Add(n)
			}
		}
	}
	for i, sc := range s.scrubs {
		add(sc.st, &counts[i])
	}
	add(s.excludeSt, &counts[s.slotExclude()])
	add(s.includeSt, &counts[s.slotInclude()])
	for i, m := range s.drop {
		add(m.st, &counts[s.slotDrop(i)])
	}
	for i, m := range s.sample {
		add(m.st, &counts[s.slotSample(i)])
	}
}
