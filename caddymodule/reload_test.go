package caddymodule

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadWhileServing reloads the config twice while tokened requests
// flow. The bbolt handle is shared through the usage pool; if the new
// config opened the file itself, it would wait on the old config's lock
// and the reload would fail after boltLockTimeout.
//
// Every HTTP answer must be a 200: tokengate never refuses or fails a call
// because of a reload. Connection-level errors (EOF, reset) are counted
// but allowed: Caddy's listener handover produces them for a plain
// reverse_proxy route without tokengate too, as measured while writing
// this test (1-4 of ~60 calls per run in both cases).
func TestReloadWhileServing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000, gracePeriod: "5s"})
	secret, _ := e.issue(billingReader(nil))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, transportErrors atomic.Int64
	var badMu sync.Mutex
	var badStatuses []int
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", e.gateURL+"/billing/reload", nil)
				req.Header.Set("Authorization", "Bearer "+secret)
				resp, err := client.Do(req)
				switch {
				case err != nil:
					transportErrors.Add(1)
				case resp.StatusCode == 200:
					ok.Add(1)
				default:
					badMu.Lock()
					badStatuses = append(badStatuses, resp.StatusCode)
					badMu.Unlock()
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}

	for i, size := range []int{500, 2000} {
		before := ok.Load()
		start := time.Now()
		newEnvReusing(e, envOptions{decisionCache: size, gracePeriod: "5s"})
		if took := time.Since(start); took >= boltLockTimeout {
			t.Errorf("reload %d took %v: it waited on the bolt lock", i, took)
		}
		// Traffic must keep flowing on the new config.
		deadline := time.Now().Add(5 * time.Second)
		for ok.Load() < before+20 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if ok.Load() < before+20 {
			t.Errorf("calls stopped going through after reload %d", i)
		}
	}
	close(stop)
	wg.Wait()
	if len(badStatuses) > 0 {
		t.Fatalf("calls answered with %v during reloads", badStatuses)
	}
	t.Logf("%d calls served across two reloads; %d connection-level errors", ok.Load(), transportErrors.Load())
}
