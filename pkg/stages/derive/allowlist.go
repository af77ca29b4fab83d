package derive

import (
	"cmp"
	"slices"
	"strings"
)

// allowlist is a compiled Config.TagAllowlist; immutable.
//
// The allowlisted tags end a series key as (key, value) pairs, sorted by
// key, for the tags that have a value: a series is named by its tags
// alone, not by the allowlist's order or length. So a reload that changes
// the allowlist while windows are open (SetTagAllowlist) neither merges
// two different series nor splits one into two series of the same tags,
// which would send two points for one series and window.
type allowlist struct {
	keys   []string
	dims   map[string]int // key → dimension (numFixedDims + its index)
	sorted []int          // the dimensions of keys, in key order
	// static are the tags every log is delivered with (SetStaticTags), and
	// staticVals, by dimension − numFixedDims, the value of an allowlisted
	// key among them: a record whose own tags lack the key takes it.
	static     []string
	staticVals []string
}

func newAllowlist(keys []string) *allowlist {
	a := &allowlist{keys: slices.Clone(keys), dims: make(map[string]int, len(keys))}
	for i, k := range a.keys {
		if _, dup := a.dims[k]; !dup { // the first of a key named twice
			a.dims[k] = numFixedDims + i
			a.sorted = append(a.sorted, numFixedDims+i)
		}
	}
	slices.SortFunc(a.sorted, func(x, y int) int { return cmp.Compare(a.keys[x-numFixedDims], a.keys[y-numFixedDims]) })
	return a
}

// withStatic is a with static as its static tags; the first tag of a key
// gives its value, as in rec.Tags.
func (a *allowlist) withStatic(static []string) *allowlist {
	b := *a
	b.static, b.staticVals = slices.Clone(static), nil
	for _, t := range static {
		k, v, ok := strings.Cut(t, ":")
		dim, allowed := b.dims[k]
		if !ok || v == "" || !allowed {
			continue
		}
		if b.staticVals == nil {
			b.staticVals = make([]string, len(b.keys))
		}
		if b.staticVals[dim-numFixedDims] == "" {
			b.staticVals[dim-numFixedDims] = v
		}
	}
	return &b
}

// appendSuffix appends the allowlisted tags of vals to a series key.
//
// A static tag is constant for the process, so the series it completes is
// the one its records would make if their tags carried it: filling it in
// here, where the key is built, equals reading it with rec.Tags.
func (a *allowlist) appendSuffix(k []byte, vals []val) []byte {
	for _, dim := range a.sorted {
		v := vals[dim]
		if v.len() == 0 && a.staticVals != nil {
			v.s = a.staticVals[dim-numFixedDims]
		}
		if v.len() == 0 {
			continue
		}
		k = appendVal(k, val{s: a.keys[dim-numFixedDims]}, false)
		k = appendVal(k, v, false)
	}
	return k
}

// appendAllowedTags appends the tags of the (key, value) pairs that end
// a series key; k starts at the first pair.
func appendAllowedTags(tags []string, k []byte) []string {
	for len(k) > 0 {
		n := int(k[0])
		key := k[1 : 1+n]
		k = k[1+n:]
		n = int(k[0])
		tags = append(tags, string(key)+":"+string(k[1:1+n]))
		k = k[1+n:]
	}
	return tags
}

// useAllowlist makes a the allowlist in use. d.mu is held (or d is new).
func (d *Deriver) useAllowlist(a *allowlist) {
	d.allow = a
	d.nDims = numFixedDims + len(a.keys)
	d.tagVals = make([]val, d.nDims)
	d.tagsP, d.tagsN = nil, 0 // read the tags again: the suffix changes
}

// SetTagAllowlist replaces Config.TagAllowlist (a configuration reload): the
// batches handled from then on copy the new keys into the metric tags; a
// batch under way finishes with the old ones. Series already open keep
// their tags: a window open across the change holds series of both.
// Invalid keys are refused and the current list stays.
func (d *Deriver) SetTagAllowlist(keys []string) error {
	if err := validAllowlist(keys); err != nil {
		return err
	}
	d.swapAllowlist(func(prev *allowlist) *allowlist { return newAllowlist(keys).withStatic(prev.static) })
	return nil
}

// SetStaticTags gives the tags every log is delivered with besides its own
// (enrich.tags and DD_TAGS, which the logs deliverer adds as it renders a
// log, so they are not in rec.Tags): those of an allowlisted key reach the
// metrics of records whose own tags lack the key. The batches handled from
// then on use them, as with SetTagAllowlist.
func (d *Deriver) SetStaticTags(tags []string) {
	d.swapAllowlist(func(prev *allowlist) *allowlist { return prev.withStatic(tags) })
}

// swapAllowlist replaces the allowlist the next Handle takes up by
// next(the last one set), without losing a concurrent change.
func (d *Deriver) swapAllowlist(next func(prev *allowlist) *allowlist) {
	for {
		prev := d.nextAllow.Load()
		cur := prev
		if cur == nil {
			d.mu.Lock()
			cur = d.allow
			d.mu.Unlock()
		}
		if d.nextAllow.CompareAndSwap(prev, next(cur)) {
			return
		}
	}
}
