package policy

import (
	"context"
	"time"

	"github.com/open-policy-agent/opa/v1/util"
)

// Default polling intervals: OPA's own lower bound for a bundle service,
// and a quick one for a file, whose read costs nothing.
const (
	DefaultBundlePoll     = 60 * time.Second
	DefaultBundleFilePoll = 10 * time.Second
)

// minRetryDelay is the first wait after a failed fetch, as OPA's
// downloader waits.
const minRetryDelay = 100 * time.Millisecond

// PollBundle fetches b again every interval until ctx is done, and puts
// each new bundle in force once it is verified and compiles. A bundle that
// fails to download, verify or compile is refused and the policy in force
// stays. After a failure the next attempt comes sooner and then backs off
// exponentially up to interval, with jitter, as OPA's downloader does.
//
// report is called after each new revision is in force, and after a
// failure unless it repeats the previous one, so a server that stays down
// logs once, not once per retry.
//
// It returns when ctx is done, so the caller runs it in the goroutine it
// waits for on shutdown.
func (e *Engine) PollBundle(ctx context.Context, b *Bundle, interval time.Duration, report func(revision string, err error)) {
	var retry int
	var lastErr string
	delay := interval
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		rev, err := e.refresh(ctx, b)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if err.Error() != lastErr {
				report("", err)
				lastErr = err.Error()
			}
			delay = util.DefaultBackoff(float64(minRetryDelay), float64(interval), retry)
			retry++
			continue
		}
		if rev != "" {
			report(rev, nil)
		}
		retry, lastErr, delay = 0, "", interval
	}
}

// refresh fetches b and installs what changed; it returns the new
// revision, or "" when nothing did.
func (e *Engine) refresh(ctx context.Context, b *Bundle) (string, error) {
	src, err := b.fetch(ctx)
	if err != nil || src == nil {
		return "", err
	}
	if src.revision == e.Revision() {
		return "", nil
	}
	return e.install(src)
}
