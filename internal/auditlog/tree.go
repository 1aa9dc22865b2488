// Package auditlog keeps an audit file tamper-evident: every line is a leaf
// of an RFC 6962 Merkle tree, signed checkpoints of that tree go to a file
// beside it, and Verify checks a set of files against them offline.
//
// Writer is the file writer (reopening, rolling, checkpointing); it knows
// nothing of Caddy, which reaches it through caddymodule.
package auditlog

import (
	"crypto/sha256"
	"hash"

	"golang.org/x/mod/sumdb/tlog"
)

// tree is the right edge of a Merkle tree: the roots of its complete
// subtrees, largest (leftmost) first, one per bit set in its size. That is
// all it takes to add a leaf or to compute the root, so neither the writer
// nor the verifier keeps the leaves.
type tree struct {
	size     int64
	frontier []tlog.Hash
}

// add appends the leaf with this hash (tlog.RecordHash of the line).
func (t *tree) add(leaf tlog.Hash) {
	h := leaf
	// Each trailing one bit of the size is a complete subtree of the same
	// height as h's, which h completes into one twice as large.
	for n := t.size; n&1 == 1; n >>= 1 {
		last := len(t.frontier) - 1
		h = tlog.NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
	}
	t.frontier = append(t.frontier, h)
	t.size++
}

// root is the RFC 6962 tree hash (MTH) of the leaves added so far. An empty
// tree has none: no checkpoint is signed before the first line.
func (t *tree) root() tlog.Hash {
	if len(t.frontier) == 0 {
		return tlog.Hash{}
	}
	h := t.frontier[len(t.frontier)-1]
	for i := len(t.frontier) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.frontier[i], h)
	}
	return h
}

// validFrontier tells whether hashes can be the right edge of a tree of
// this size: one hash per bit set.
func validFrontier(size int64, hashes []tlog.Hash) bool {
	bits := 0
	for n := size; n > 0; n &= n - 1 {
		bits++
	}
	return size >= 0 && bits == len(hashes)
}

// leafHasher computes tlog.RecordHash (RFC 6962: SHA-256 of 0x00 and the
// line) with one reused hash state, since RecordHash allocates one per
// line. The prefix byte and the sum live in the hasher, so that handing
// them to the hash.Hash interface costs no allocation per line either.
// TestTreeMatchesTlog holds it to RecordHash.
type leafHasher struct {
	h      hash.Hash
	prefix [1]byte // always 0x00, the RFC 6962 leaf prefix
	sum    [sha256.Size]byte
}

func newLeafHasher() *leafHasher { return &leafHasher{h: sha256.New()} }

func (l *leafHasher) hash(line []byte) tlog.Hash {
	l.h.Reset()
	l.h.Write(l.prefix[:])
	l.h.Write(line)
	return tlog.Hash(l.h.Sum(l.sum[:0]))
}
