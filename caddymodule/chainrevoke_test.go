package caddymodule

import (
	"net/http"
	"slices"
	"sync"
	"testing"
)

// An incident responder revokes the id an alert named, which was rotated
// since: every secret of the rotation chain stops, the newest included,
// and the action line names every token revoked.
func TestRevokingAnOldIDStopsTheWholeChain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	first, firstID := e.issue(billingReader(nil))
	rotated := e.rotate(firstID, "10m")
	second, secondID := rotated.Secret, rotated.Token.ID
	rotated = e.rotate(secondID, "10m")
	third, thirdID := rotated.Secret, rotated.Token.ID
	for _, secret := range []string{first, second, third} {
		if r := call(t, "GET", e.gateURL+"/billing/chain", bearer(secret)...); r.status != http.StatusOK {
			t.Fatalf("before the revoke: %d %s", r.status, r.body)
		}
	}

	status, body := e.admin("POST", "/tokengate/tokens/"+firstID+"/revoke", map[string]string{"reason": "alert 7"})
	if status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	for i, secret := range []string{first, second, third} {
		if r := call(t, "GET", e.gateURL+"/billing/chain-revoked", bearer(secret)...); r.status != http.StatusUnauthorized || r.reason != "token_revoked" {
			t.Errorf("secret %d of the chain after revoking the first id: %d %s", i+1, r.status, r.reason)
		}
	}

	var named map[string]any
	revokedLines := map[string]bool{}
	for _, l := range e.auditLines() {
		if l["msg"] == "token.revoked" && l["outcome"] == "success" {
			revokedLines[l["token_id"].(string)] = true
			if l["token_id"] == firstID {
				named = l
			}
		}
	}
	if named == nil {
		t.Fatal("no token.revoked line for the id revoked")
	}
	want := []any{firstID, secondID, thirdID}
	if got, _ := named["revoked_ids"].([]any); !slices.Equal(got, want) {
		t.Errorf("revoked_ids %v, want %v", named["revoked_ids"], want)
	}
	for _, id := range []string{secondID, thirdID} {
		if !revokedLines[id] {
			t.Errorf("no token.revoked line of its own for %s", id)
		}
	}

	// Revoking it again revokes nothing and says so.
	status, body = e.admin("POST", "/tokengate/tokens/"+secondID+"/revoke", map[string]string{"reason": "again"})
	wantRefusal(t, "revoking a revoked chain", status, body, http.StatusConflict, "already_revoked")
}

// Rotate and revoke race over HTTP, many times: whichever wins, no secret
// of the chain works afterwards.
func TestRevokeRacingRotateLeavesNoLiveSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{decisionCache: 1000})
	const runs = 15
	rotatedFirst := 0
	for range runs {
		secret, id := e.issue(billingReader(nil))
		secrets := []string{secret}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			status, body := e.admin("POST", "/tokengate/tokens/"+id+"/rotate", map[string]string{"grace": "10m"})
			if status == http.StatusCreated {
				next := decode[IssuedToken](t, body)
				remember(next.Secret)
				mu.Lock()
				secrets = append(secrets, next.Secret)
				rotatedFirst++
				mu.Unlock()
			}
		})
		wg.Go(func() {
			<-start
			if status, body := e.admin("POST", "/tokengate/tokens/"+id+"/revoke", map[string]string{"reason": "race"}); status != http.StatusOK {
				t.Errorf("revoke: %d %s", status, body)
			}
		})
		close(start)
		wg.Wait()
		for i, s := range secrets {
			if r := call(t, "GET", e.gateURL+"/billing/race", bearer(s)...); r.status != http.StatusUnauthorized {
				t.Fatalf("secret %d works after rotate and revoke raced: %d %s", i+1, r.status, r.body)
			}
		}
	}
	t.Logf("the rotation went first in %d of %d runs", rotatedFirst, runs)
}
