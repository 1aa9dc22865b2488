package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay lets an editor finish writing (many write a temporary file
// and rename it), or a deployment finish swapping files, before the folder
// is compiled again.
const reloadDelay = 200 * time.Millisecond

// maxWatchDepth bounds how deep the watcher follows sub-folders, so a
// symlink loop cannot keep it walking.
const maxWatchDepth = 32

// Watch reloads the engine whenever a policy or data file under dir
// changes, until ctx is done. report is called after each reload that
// brought a new revision, or failed (the previous revision then stays in
// force).
//
// fsnotify watches single folders, so Watch follows the tree itself: it
// watches every sub-folder (through symlinks, skipping hidden names as the
// loader does) and re-walks the tree whenever its shape changes. It also
// watches dir's parent, so replacing the whole folder (`mv new policies`)
// is seen and followed. A Kubernetes ConfigMap mount updates by swapping
// the ..data symlink to a new hidden folder; any change to a name
// starting with ".." re-walks the tree and reloads.
func (e *Engine) Watch(ctx context.Context, dir string, report func(revision string, err error)) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("watching policy folder %s: %v", dir, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching policy folder %s: %v", dir, err)
	}
	t := &tree{w: w, root: root, dirs: map[string]bool{}}
	if err := w.Add(filepath.Dir(root)); err != nil {
		w.Close()
		return fmt.Errorf("watching the folder of %s: %v", dir, err)
	}
	if err := t.rewatch(); err != nil {
		w.Close()
		return fmt.Errorf("watching policy folder %s: %v", dir, err)
	}
	go func() {
		defer w.Close()
		last := e.Revision()
		timer := time.NewTimer(0)
		<-timer.C
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				switch t.classify(ev) {
				case restructured:
					if err := t.rewatch(); err != nil && !os.IsNotExist(err) {
						report("", fmt.Errorf("watching policy folder %s: %v", dir, err))
					}
					timer.Reset(reloadDelay)
				case changed:
					timer.Reset(reloadDelay)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				report("", fmt.Errorf("watching policy folder %s: %v", dir, err))
			case <-timer.C:
				rev, err := e.Reload()
				if err != nil || rev != last {
					report(rev, err)
				}
				if err == nil {
					last = rev
				}
			}
		}
	}()
	return nil
}

// tree is the set of folders watched under one policy folder.
type tree struct {
	w    *fsnotify.Watcher
	root string
	dirs map[string]bool
}

type change int

const (
	unrelated    change = iota
	changed             // a policy or data file
	restructured        // a folder appeared, went or was swapped
)

func (t *tree) classify(ev fsnotify.Event) change {
	name := filepath.Clean(ev.Name)
	if name == t.root {
		return restructured
	}
	if filepath.Dir(name) == filepath.Dir(t.root) {
		return unrelated // a neighbour of the policy folder
	}
	base := filepath.Base(name)
	switch {
	case strings.HasPrefix(base, ".."):
		return restructured
	case strings.HasPrefix(base, "."):
		return unrelated
	case ev.Has(fsnotify.Create):
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			return restructured
		}
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		if t.dirs[name] {
			return restructured
		}
	}
	if IsPolicyFile(base) || isDataFile(base) {
		return changed
	}
	return unrelated
}

// rewatch watches every folder now in the tree and stops watching the
// ones that are gone. New watches are added before stale ones are removed,
// so no change slips between the two.
func (t *tree) rewatch() error {
	now := map[string]bool{}
	err := t.walk(t.root, 0, now, map[string]bool{})
	for d := range t.dirs {
		if !now[d] {
			// An error only says the watch went with its folder.
			_ = t.w.Remove(d)
		}
	}
	t.dirs = now
	return err
}

func (t *tree) walk(dir string, depth int, found, seen map[string]bool) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	if seen[real] || depth > maxWatchDepth {
		return nil
	}
	seen[real] = true
	if err := t.w.Add(dir); err != nil {
		return err
	}
	found[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if strings.HasPrefix(entry.Name(), ".") {
			continue
		}
		sub := filepath.Join(dir, entry.Name())
		if fi, err := os.Stat(sub); err == nil && fi.IsDir() {
			// A folder removed while the walk runs is seen as its own event.
			if err := t.walk(sub, depth+1, found, seen); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}
