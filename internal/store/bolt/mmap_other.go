//go:build !linux

package bolt

// mmapFlags: MAP_POPULATE is Linux-only; elsewhere pages fault in on use.
const mmapFlags = 0
