package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ruleCache is the memo OPA's evaluator keeps of rule values within one
// evaluation (topdown.VirtualCache), so a rule used twice is evaluated
// once. OPA's own builds a trie of hash maps per evaluation; with the
// dozen rules of a gateway policy that was about 30 allocations per call,
// a tenth of the uncached path. A flat list searched linearly holds the
// same entries, and a pool lets calls reuse its backing arrays.
//
// Semantics follow topdown's cache exactly: Get reports an exact ref only
// (a prefix or an extension of a cached ref is "not cached"), a nil value
// records "undefined", and Push/Pop open and drop a frame of entries (the
// evaluator does so around `with`).
type ruleCache struct {
	frames [][]ruleCacheEntry
}

type ruleCacheEntry struct {
	ref   ast.Ref
	value *ast.Term // nil: the ref is undefined
}

var _ topdown.VirtualCache = (*ruleCache)(nil)

var ruleCaches = sync.Pool{New: func() any { return &ruleCache{} }}

// getRuleCache returns an empty cache with one frame open.
func getRuleCache() *ruleCache {
	c := ruleCaches.Get().(*ruleCache)
	c.Push()
	return c
}

// release empties c, so that it holds on to no term of this evaluation,
// and returns it to the pool.
func (c *ruleCache) release() {
	for len(c.frames) > 0 {
		c.Pop()
	}
	ruleCaches.Put(c)
}

func (c *ruleCache) Push() {
	if n := len(c.frames); n < cap(c.frames) {
		// Reuse the frame's backing array from an earlier evaluation.
		c.frames = c.frames[:n+1]
		c.frames[n] = c.frames[n][:0]
		return
	}
	c.frames = append(c.frames, nil)
}

func (c *ruleCache) Pop() {
	top := c.frames[len(c.frames)-1]
	for i := range top {
		// Drop the terms, keep the ref's backing array for the next use.
		clear(top[i].ref)
		top[i].ref, top[i].value = top[i].ref[:0], nil
	}
	c.frames = c.frames[:len(c.frames)-1]
}

func (c *ruleCache) Get(ref ast.Ref) (*ast.Term, bool) {
	for _, e := range c.frames[len(c.frames)-1] {
		if e.ref.Equal(ref) {
			return e.value, e.value == nil
		}
	}
	return nil, false
}

func (c *ruleCache) Put(ref ast.Ref, value *ast.Term) {
	top := &c.frames[len(c.frames)-1]
	for i := range *top {
		if (*top)[i].ref.Equal(ref) {
			(*top)[i].value = value
			return
		}
	}
	// The evaluator reuses ref's backing array for its next lookup (it
	// builds function-call keys in place), so the entry keeps a copy.
	n := len(*top)
	if n < cap(*top) {
		*top = (*top)[:n+1]
	} else {
		*top = append(*top, ruleCacheEntry{})
	}
	e := &(*top)[n]
	e.ref, e.value = append(e.ref[:0], ref...), value
}

func (c *ruleCache) Keys() []ast.Ref {
	top := c.frames[len(c.frames)-1]
	keys := make([]ast.Ref, len(top))
	for i, e := range top {
		keys[i] = e.ref
	}
	return keys
}

// noBaseCache stands in for OPA's per-evaluation cache of documents read
// from storage. The engine's store is empty (policies get everything
// through input), so there is nothing to cache, and OPA's would cost
// allocations on every call. A miss just reads the store again.
type noBaseCache struct{}

var _ topdown.BaseCache = noBaseCache{}

func (noBaseCache) Get(ast.Ref) ast.Value  { return nil }
func (noBaseCache) Put(ast.Ref, ast.Value) {}
