package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay lets an editor finish writing (many write a temporary file
// and rename it) before the folder is compiled again.
const reloadDelay = 200 * time.Millisecond

// Watch reloads the engine whenever a policy file in dir changes, until
// ctx is done. report is called after every reload attempt with the new
// revision or the error that kept the old one in force.
func (e *Engine) Watch(ctx context.Context, dir string, report func(revision string, err error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching policy folder %s: %v", dir, err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watching policy folder %s: %v", dir, err)
	}
	go func() {
		defer w.Close()
		timer := time.NewTimer(0)
		<-timer.C
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case ev := <-w.Events:
				if IsPolicyFile(ev.Name) {
					timer.Reset(reloadDelay)
				}
			case err := <-w.Errors:
				report("", fmt.Errorf("watching policy folder %s: %v", dir, err))
			case <-timer.C:
				report(e.Reload())
			}
		}
	}()
	return nil
}
