package audit

import (
	"fmt"
	"os"
)

// FileWatch notices that the file audit lines go to was deleted or moved
// away while the writer keeps it open, so that the lines land in a file
// nobody will read. Writes to such a file succeed, so only looking at the
// path tells.
//
// Each Check stats the path. The file is lost when the path is gone or is
// not a regular file. The same file as before is always fine, whatever
// its size (a copy-and-truncate rotation keeps the file). Another file at
// the path is followed only once it grew between two checks while lines
// were written: that is how a writer that rolls its own files over
// (Caddy's does, by size) looks from outside, and what a copy put back in
// place of a deleted file never does, since the writer still holds the
// deleted one. Until then it is lost if lines were written without
// reaching it, or if the file was lost already.
type FileWatch struct {
	path   string
	health *Health

	file      os.FileInfo // the file lines land in; nil until seen
	candidate os.FileInfo // another file at the path, not yet followed
	written   uint64      // health.Written() at the last check
	lost      bool
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
	replaced := fmt.Sprintf("audit file %s was replaced by a file the lines do not reach", w.path)
	switch {
	case err != nil:
		why = fmt.Sprintf("audit file %s: %v", w.path, err)
		w.candidate = nil
	case !fi.Mode().IsRegular():
		why = fmt.Sprintf("audit file %s is not a regular file (%s)", w.path, fi.Mode().Type())
		w.candidate = nil
	case w.file == nil || os.SameFile(fi, w.file):
		w.file, w.candidate = fi, nil
	case w.candidate != nil && os.SameFile(fi, w.candidate) && wrote && fi.Size() > w.candidate.Size():
		w.file, w.candidate = fi, nil
	case w.candidate != nil && os.SameFile(fi, w.candidate):
		if w.lost || wrote {
			why = replaced
		}
		w.candidate = fi
	default:
		if w.lost || (wrote && fi.Size() == 0) {
			why = replaced
		}
		w.candidate = fi
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
