package bolt

import "syscall"

// mmapFlags pre-faults the whole file mapping when the store opens (and
// when bbolt remaps it after growing), as etcd does with bbolt. Without
// it, every lookup that lands on a page this process has not touched yet
// takes a page fault: with 1,000,000 tokens that made the uncached path
// 1.49 x the 1,000-token figure; with it, 1.18 x (BENCHMARKS.md, 5a). The
// cost is paid once at open, and the mapped pages are the page cache's,
// shared and reclaimable, not heap.
const mmapFlags = syscall.MAP_POPULATE
