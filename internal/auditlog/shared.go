package auditlog

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Files hands out one Shared per audit file, so that every loaded
// configuration writing a file writes through one Writer, one tree. The
// zero value is ready to use.
type Files struct {
	mu    sync.Mutex
	files map[string]*Shared
}

// For returns the Shared of the file at path, the same one every time.
func (fs *Files) For(path string) *Shared {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.files == nil {
		fs.files = map[string]*Shared{}
	}
	f := fs.files[path]
	if f == nil {
		f = new(Shared)
		fs.files[path] = f
	}
	return f
}

// Shared is one audit file held by any number of holders (loaded
// configurations): its Writer is opened by the first Acquire and closed,
// a last checkpoint signed, by the Release of the last holder. Shared is
// itself the file's io.WriteCloser whatever Writer is open behind it, so
// a host that keeps the first handle it was given (Caddy's logging does)
// writes through the Writer a later holder opened.
type Shared struct {
	mu   sync.Mutex // taken to open or close, not to write
	refs int
	w    atomic.Pointer[Writer]
}

// Acquire takes a hold on the file, opening it with open when nobody
// holds it.
func (f *Shared) Acquire(open func() (*Writer, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs == 0 {
		w, err := open()
		if err != nil {
			return err
		}
		f.w.Store(w)
	}
	f.refs++
	return nil
}

// Release gives back a hold; the last one closes the Writer.
func (f *Shared) Release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refs--; f.refs > 0 {
		return nil
	}
	return f.w.Swap(nil).Close()
}

// ErrReleased fails a line written through a Shared nobody holds (a
// configuration already cleaned up), so that it counts as unrecorded.
var ErrReleased = errors.New("tokengate_audit: the audit file was closed with the last config writing it")

// Write writes p through the open Writer.
func (f *Shared) Write(p []byte) (int, error) {
	w := f.w.Load()
	if w == nil {
		return 0, ErrReleased
	}
	return w.Write(p)
}

// Close does nothing: the file is closed by the last Release.
func (f *Shared) Close() error { return nil }
