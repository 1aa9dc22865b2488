package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ruleCache is the memo OPA's evaluator keeps of rule values within one
// evaluation (topdown.VirtualCache), so a rule used twice is evaluated
// once. OPA's own builds a trie of hash maps per evaluation; with the
// dozen rules of a gateway policy that was about 30 allocations per call,
// a tenth of the uncached path. A flat list holds the same entries, and
// Decide's pooled evaluations (engine.go) reuse its backing arrays. A
// list searched linearly would make a policy calling a function 20,000
// times quadratic, so past indexFrom entries a frame also gets a hash
// index.
//
// Semantics follow topdown's cache exactly: Get reports an exact ref only
// (a prefix or an extension of a cached ref is "not cached"), a nil value
// records "undefined", and Push/Pop open and drop a frame of entries (the
// evaluator does so around `with`).
type ruleCache struct {
	frames []ruleFrame
}

type ruleFrame struct {
	entries []ruleCacheEntry
	// index maps a ref's hash to 1 + the position of the last entry with
	// that hash; entries with the same hash chain through prev. nil while
	// the frame is small.
	index map[int]int32
}

type ruleCacheEntry struct {
	ref   ast.Ref
	value *ast.Term // nil: the ref is undefined
	prev  int32     // 1 + position of the previous entry with the same hash
}

// indexFrom is the frame size from which lookups go through the index:
// below it, comparing refs one by one is cheaper than hashing one.
const indexFrom = 16

// maxPooledEntries bounds what a pooled cache keeps from a large
// evaluation: a rare one must not pin its memory for the life of the pool.
const maxPooledEntries = 1024

var _ topdown.VirtualCache = (*ruleCache)(nil)

// reset empties c, so that it holds on to no term of this evaluation, and
// leaves no frame open.
func (c *ruleCache) reset() {
	for len(c.frames) > 0 {
		c.Pop()
	}
}

func (c *ruleCache) Push() {
	if n := len(c.frames); n < cap(c.frames) {
		// Reuse the frame's backing arrays from an earlier evaluation.
		c.frames = c.frames[:n+1]
		c.frames[n].entries = c.frames[n].entries[:0]
		return
	}
	c.frames = append(c.frames, ruleFrame{})
}

func (c *ruleCache) Pop() {
	f := &c.frames[len(c.frames)-1]
	if cap(f.entries) > maxPooledEntries {
		f.entries, f.index = nil, nil
	} else {
		for i := range f.entries {
			// Drop the terms, keep the ref's backing array for the next use.
			e := &f.entries[i]
			clear(e.ref)
			e.ref, e.value = e.ref[:0], nil
		}
		f.entries = f.entries[:0]
		clear(f.index)
	}
	c.frames = c.frames[:len(c.frames)-1]
}

// find returns the position of ref in the top frame, or -1, and the
// ref's hash when the frame is indexed.
func (c *ruleCache) find(ref ast.Ref) (int, int) {
	return c.frames[len(c.frames)-1].find(ref)
}

// base returns what the outermost frame holds for ref, and whether it
// holds anything (a nil value records "undefined").
func (c *ruleCache) base(ref ast.Ref) (*ast.Term, bool) {
	if len(c.frames) == 0 {
		return nil, false
	}
	f := &c.frames[0]
	if i, _ := f.find(ref); i >= 0 {
		return f.entries[i].value, true
	}
	return nil, false
}

func (f *ruleFrame) find(ref ast.Ref) (int, int) {
	if len(f.entries) < indexFrom {
		for i := range f.entries {
			if f.entries[i].ref.Equal(ref) {
				return i, 0
			}
		}
		return -1, 0
	}
	h := ref.Hash()
	for at := f.index[h]; at != 0; at = f.entries[at-1].prev {
		if f.entries[at-1].ref.Equal(ref) {
			return int(at - 1), h
		}
	}
	return -1, h
}

func (c *ruleCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if i, _ := c.find(ref); i >= 0 {
		v := c.frames[len(c.frames)-1].entries[i].value
		return v, v == nil
	}
	return nil, false
}

func (c *ruleCache) Put(ref ast.Ref, value *ast.Term) {
	i, h := c.find(ref)
	if i >= 0 {
		c.frames[len(c.frames)-1].entries[i].value = value
		return
	}
	f := &c.frames[len(c.frames)-1]
	// The evaluator reuses ref's backing array for its next lookup (it
	// builds function-call keys in place), so the entry keeps a copy.
	n := len(f.entries)
	if n < cap(f.entries) {
		f.entries = f.entries[:n+1]
	} else {
		f.entries = append(f.entries, ruleCacheEntry{})
	}
	e := &f.entries[n]
	e.ref, e.value, e.prev = append(e.ref[:0], ref...), value, 0
	switch {
	case n+1 == indexFrom:
		// The frame just became large: index every entry.
		if f.index == nil {
			f.index = make(map[int]int32, 2*indexFrom)
		}
		for i := range f.entries {
			f.indexEntry(i, f.entries[i].ref.Hash())
		}
	case n+1 > indexFrom:
		f.indexEntry(n, h)
	}
}

func (f *ruleFrame) indexEntry(i, h int) {
	f.entries[i].prev = f.index[h]
	f.index[h] = int32(i + 1)
}

func (c *ruleCache) Keys() []ast.Ref {
	top := c.frames[len(c.frames)-1].entries
	keys := make([]ast.Ref, len(top))
	for i, e := range top {
		keys[i] = e.ref
	}
	return keys
}

// noBaseCache stands in for OPA's per-evaluation cache of documents read
// from storage. OPA caches them because its stores return Go values that
// take a conversion to read; the engine's store holds OPA values already
// (inmem.OptReturnASTValuesOnRead), so a read is a lookup in a tree, and
// OPA's cache would only cost allocations on every call.
type noBaseCache struct{}

var _ topdown.BaseCache = noBaseCache{}

func (noBaseCache) Get(ast.Ref) ast.Value  { return nil }
func (noBaseCache) Put(ast.Ref, ast.Value) {}
