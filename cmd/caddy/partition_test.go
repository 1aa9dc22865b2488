package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/tcprelay"
)

// maxStaleness is the default max_staleness the nodes run with.
const maxStaleness = 2 * time.Second

// partitionSlack is what these tests allow past maxStaleness for timing
// on a machine shared with other test runs.
const partitionSlack = 750 * time.Millisecond

// TestPartitionedNodeRefusesRevokedTokens runs two real nodes on one
// PostgreSQL, node B behind a TCP relay that carries all of its
// connections (pool and change feed). In each way B can be cut off, a
// token B holds in its caches and that A then revokes is refused by B
// (401 token_revoked, or 503 store_unavailable while B cannot read the
// store) within max_staleness of the cut plus one request; once the relay
// heals, B serves again by itself, refuses the revoked token, and answers
// from its caches again once its feed has caught up. (That the feed
// catches up instead of dropping the caches is shown in
// internal/store/postgres: here a stale node's reads refill its caches
// either way.)
//
// The database restart is simulated: every backend of the test's role is
// terminated (the nodes' pools and feeds, as a restart ends them) while
// the relay refuses B's reconnection attempts; the machine's PostgreSQL is
// shared and is not restarted.
//
// Not parallel: B's refusals are timed against max_staleness.
func TestPartitionedNodeRefusesRevokedTokens(t *testing.T) {
	db := newTestDB(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(upstream.Close)
	u, err := url.Parse(db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	relay := tcprelay.Start(t, u.Host)
	u.Host = relay.Addr()
	a := startNode(t, "node-a", db.dsn, upstream.URL)
	b := startNode(t, "node-b", u.String(), upstream.URL)

	for _, cut := range []struct {
		name string
		cut  func()
	}{
		{"silent relay", relay.Silence},
		{"relay killed", relay.Break},
		{"database restart", func() {
			relay.Break()
			db.exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", db.role)
		}},
	} {
		t.Run(cut.name, func(t *testing.T) {
			defer relay.Heal()
			revoked, kept := a.issue(t, "revoked"), a.issue(t, "kept")
			b.warm(t, revoked)
			b.warm(t, kept)

			cut.cut()
			cutAt := time.Now()
			// The revoke goes through A, which the cut does not touch (a
			// restart ends A's connections too: its pool reconnects).
			eventually(t, 10*time.Second, "revoke on A", func() (bool, string) {
				_, stderr, err := a.tryTokengate(t, "revoke", revoked.Token.ID, "--reason", "partition test")
				return err == nil, stderr
			})
			// Calls until the first refusal: it must be a request sent
			// no later than max_staleness after the cut (the request in
			// flight at the bound may still pass), and the refusal must
			// come within the store's deadline (max_staleness) of it.
			var sent, answered time.Time
			var status int
			var reason string
			for {
				sent = time.Now()
				status, reason, _ = b.call(t, revoked.Secret)
				answered = time.Now()
				if status != http.StatusOK || answered.Sub(cutAt) > 10*time.Second {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("%s: B answered %d %s to a request sent %s after the cut, in %s", cut.name, status, reason,
				sent.Sub(cutAt).Round(time.Millisecond), answered.Sub(sent).Round(time.Millisecond))
			if !(status == http.StatusUnauthorized && reason == "token_revoked") &&
				!(status == http.StatusServiceUnavailable && reason == "store_unavailable") {
				t.Fatalf("B answered the revoked token %d %s, want 401 token_revoked or 503 store_unavailable", status, reason)
			}
			if late := sent.Sub(cutAt); late > maxStaleness+partitionSlack {
				t.Errorf("B allowed the revoked token on a request sent %s after the cut, bound %s", late, maxStaleness)
			}
			if slow := answered.Sub(sent); slow > maxStaleness+partitionSlack {
				t.Errorf("B took %s to refuse, want at most the store deadline %s", slow, maxStaleness)
			}

			relay.Heal()
			healed := time.Now()
			eventually(t, 15*time.Second, "B serves the kept token again", func() (bool, string) {
				status, reason, _ := b.call(t, kept.Secret)
				return status == http.StatusOK, fmt.Sprintf("%d %s", status, reason)
			})
			t.Logf("%s: B served again %s after healing", cut.name, time.Since(healed).Round(time.Millisecond))
			if status, reason, _ := b.call(t, revoked.Secret); status != http.StatusUnauthorized || reason != "token_revoked" {
				t.Errorf("after healing B answered the revoked token %d %s, want 401 token_revoked", status, reason)
			}
			// Until its feed has caught up, B reads every token from the
			// store; then it answers from its caches again.
			eventually(t, 10*time.Second, "B answers from its caches again", func() (bool, string) {
				status, reason, l := b.callAudited(t, kept)
				return status == http.StatusOK && l.Cache == "hit", fmt.Sprintf("%d %s cache %s", status, reason, l.Cache)
			})
			t.Logf("%s: B answered from its caches again %s after healing", cut.name, time.Since(healed).Round(time.Millisecond))
		})
	}
}
