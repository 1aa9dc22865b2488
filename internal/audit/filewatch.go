package audit

import (
	"context"
	"fmt"
	"os"
	"time"
)

// FileWatch notices that the file audit lines go to was deleted or moved
// away while the writer keeps it open, so that the lines land in a file
// nobody will read. Writes to such a file succeed, so only looking at the
// path tells.
//
// Each Check stats the path. The file is lost when the path is gone or is
// not a regular file, or when it is another file than the one lines were
// landing in and lines were written since the last check without reaching
// it (it is still empty). A new file that already holds something is
// followed: that is how a writer that rolls its own files (Caddy's does,
// by size) looks from outside. The same file as before is always fine,
// whatever its size: a copy-and-truncate rotation keeps the file.
type FileWatch struct {
	path   string
	health *Health

	file    os.FileInfo // the file lines are landing in; nil until seen
	written uint64      // health.Written() at the last check
	lost    bool
}

// NewFileWatch watches path on behalf of h. The file is looked at once
// now, so that a later check can tell whether it changed.
func NewFileWatch(path string, h *Health) *FileWatch {
	w := &FileWatch{path: path, health: h, written: h.Written()}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		w.file = fi
	}
	return w
}

// Path is the watched path.
func (w *FileWatch) Path() string { return w.path }

// Check looks at the path once and updates the health. It returns whether
// the file is lost and, when it is, why.
func (w *FileWatch) Check() (lost bool, why string) {
	written := w.health.Written()
	wrote := written != w.written
	w.written = written

	fi, err := os.Stat(w.path)
	switch {
	case err != nil:
		why = fmt.Sprintf("audit file %s: %v", w.path, err)
	case !fi.Mode().IsRegular():
		why = fmt.Sprintf("audit file %s is not a regular file (%s)", w.path, fi.Mode().Type())
	case w.file == nil || os.SameFile(fi, w.file):
		w.file = fi
	case fi.Size() > 0:
		// A writer that rolls its own files over (Caddy's does, by
		// size) has put its first line in the new one already.
		w.file = fi
	case wrote || w.lost:
		why = fmt.Sprintf("audit file %s was replaced and lines do not reach the new file", w.path)
	}
	w.set(why != "", why)
	return w.lost, why
}

func (w *FileWatch) set(lost bool, why string) {
	if lost == w.lost {
		if lost {
			w.health.lastErr.Store(&why)
		}
		return
	}
	w.lost = lost
	w.health.setLost(lost, why)
}

// Run checks every interval until ctx ends, calling report on each change
// between lost and found. A lost file is noticed within one interval:
// lines written in that window go where the writer had them go (the moved
// file, or the deleted one). Stopping clears what this watch reported, so
// a stopped watch never holds the health down.
func (w *FileWatch) Run(ctx context.Context, interval time.Duration, report func(lost bool, why string)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	defer w.set(false, "")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			before := w.lost
			lost, why := w.Check()
			if lost != before && report != nil {
				report(lost, why)
			}
		}
	}
}
