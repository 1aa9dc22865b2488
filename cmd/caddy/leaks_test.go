package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/postgres"
	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// leakNodeCaddyfile is nodeCaddyfile with a management site and GitHub's
// keys for the leak intake.
const leakNodeCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	tokengate {
		store postgres "{DSN}"
		leaks {
			github_keys {KEYS}
		}
	}
	log default {
		exclude tokengate.audit
	}
	log audit {
		include tokengate.audit
		output file {DIR}/audit.log
		format json
	}
}

http://127.0.0.1:{PORT} {
	bind 127.0.0.1
	route /svc/* {
		tokengate svc
		reverse_proxy {UPSTREAM}
	}
}

http://127.0.0.1:{MGMT} {
	bind 127.0.0.1
	tokengate_admin
}
`

type leakNode struct {
	*node
	mgmt string
}

func startLeakNode(t *testing.T, name, dsn, upstream, keys string) *leakNode {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	admin := fmt.Sprintf("127.0.0.1:%d", caddyproc.FreePort(t))
	port, mgmt := fmt.Sprint(caddyproc.FreePort(t)), fmt.Sprint(caddyproc.FreePort(t))
	caddyfile := strings.NewReplacer("{ADMIN}", strings.TrimPrefix(admin, "127.0.0.1:"), "{DSN}", dsn, "{DIR}", dir,
		"{PORT}", port, "{MGMT}", mgmt, "{UPSTREAM}", upstream, "{KEYS}", keys).Replace(leakNodeCaddyfile)
	p := caddyproc.Start(t, dir, admin, caddyfile)
	n := &leakNode{node: &node{Process: p, name: name, url: "http://127.0.0.1:" + port, audit: filepath.Join(dir, "audit.log")}, mgmt: "http://127.0.0.1:" + mgmt}
	eventually(t, 10*time.Second, name+" serves HTTP", func() (bool, string) {
		status, reason, _ := n.call(t, "")
		return status == http.StatusUnauthorized && reason == "token_missing", fmt.Sprintf("%d %s", status, reason)
	})
	return n
}

// gitHubKey is a stand-in for GitHub's alert-signing key: the same
// algorithm, and its public half in GitHub's document shape.
type gitHubKey struct {
	key *ecdsa.PrivateKey
	id  string
}

func newGitHubKey(t *testing.T, dir string) (*gitHubKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(der)
	k := &gitHubKey{key: key, id: hex.EncodeToString(sum[:])}
	doc, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{{
		"key_identifier": k.id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true}}})
	path := filepath.Join(dir, "github-keys.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return k, path
}

func (k *gitHubKey) sign(body []byte) string {
	digest := sha256.Sum256(body)
	sig, _ := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	return base64.StdEncoding.EncodeToString(sig)
}

type gitHubLabel struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// alert POSTs a partner alert as GitHub does and returns the status and
// body.
func (n *leakNode) alert(t *testing.T, body []byte, keyID, sig string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.mgmt+"/v1/leaks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Github-Public-Key-Identifier", keyID)
	req.Header.Set("Github-Public-Key-Signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// actionLines reads the node's audit lines with msg.
func (n *leakNode) actionLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(n.audit)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// hashIndexScans is how often PostgreSQL used the index GetByHash reads,
// in the test's schema: the store lookups by hash.
func (db *testDB) hashIndexScans(t *testing.T) int {
	return db.count(t, `SELECT coalesce(sum(idx_scan), 0)::int FROM pg_stat_user_indexes
		WHERE schemaname = $1 AND indexrelname = 'tokengate_tokens_hash_key'`, db.role)
}

// Two nodes share PostgreSQL. GitHub (a key of its shape) reports 100
// findings to node a: 50 live secrets, 30 with a bad checksum, 20 unknown.
// Every live one is refused on both nodes within a second, the answer
// labels each, a tampered body and an unknown key id change nothing, and a
// replay changes nothing and announces nothing again; the lookups by hash
// are counted in PostgreSQL's own statistics.
//
// Not parallel: "within a second" is timed, without this package's other
// tests competing for the CPU.
func TestGitHubAlertRevokesOnEveryNode(t *testing.T) {
	db := newTestDB(t)
	keyDir := t.TempDir()
	ghKey, keysPath := newGitHubKey(t, keyDir)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(upstream.Close)
	a := startLeakNode(t, "node-a", db.dsn, upstream.URL, keysPath)
	b := startLeakNode(t, "node-b", db.dsn, upstream.URL, keysPath)

	ctx := context.Background()
	st, err := postgres.Open(ctx, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	hasher := token.NewHasher("")
	var live []string
	ids := map[string]string{}
	for range 50 {
		secret := token.NewSecret()
		h := hasher.Hash(secret)
		tok := &store.Token{ID: token.NewID(), Hash: h[:], Owner: "alice", Purpose: "leak test", Scopes: []string{"svc:read"},
			Services: []string{"svc"}, NotBefore: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour), CreatedAt: now, CreatedBy: "test", HeldBy: "alice"}
		if err := st.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
		live = append(live, secret)
		ids[secret] = tok.ID
	}
	// Both nodes have every live token in their caches.
	for _, s := range live {
		a.mustCall(t, s, http.StatusOK)
		b.mustCall(t, s, http.StatusOK)
	}

	type finding struct {
		Token  string `json:"token"`
		Type   string `json:"type"`
		URL    string `json:"url"`
		Source string `json:"source"`
	}
	var batch []finding
	for _, s := range live {
		batch = append(batch, finding{s, "tokengate_secret", "https://github.com/octo/app/blob/abc/.env", "content"})
	}
	for range 30 {
		bad := []byte(token.NewSecret())
		bad[len(bad)-1] ^= 1 // base62 digits and letters stay base62; the checksum breaks
		if token.Check(string(bad)) == nil {
			t.Fatal("the broken checksum passes")
		}
		batch = append(batch, finding{string(bad), "tokengate_secret", "https://github.com/octo/app/blob/abc/x", "content"})
	}
	for range 20 {
		batch = append(batch, finding{token.NewSecret(), "tokengate_secret", "https://gist.github.com/x", "gist"})
	}
	mrand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	body, _ := json.Marshal(batch)
	sig := ghKey.sign(body)

	// A tampered body and an unknown key id: 401, nothing changes.
	tampered := bytes.Replace(body, []byte("octo/app"), []byte("octo/apq"), 1)
	if status, out := a.alert(t, tampered, ghKey.id, sig); status != http.StatusUnauthorized || !bytes.Contains(out, []byte("signature_invalid")) {
		t.Fatalf("tampered body: %d %s", status, out)
	}
	if status, out := a.alert(t, body, strings.Repeat("0", 64), sig); status != http.StatusUnauthorized || !bytes.Contains(out, []byte("key_unknown")) {
		t.Fatalf("unknown key id: %d %s", status, out)
	}
	for _, s := range live[:5] {
		a.mustCall(t, s, http.StatusOK)
		b.mustCall(t, s, http.StatusOK)
	}

	// The signed batch.
	sent := time.Now()
	status, out := a.alert(t, body, ghKey.id, sig)
	answered := time.Now()
	if status != http.StatusOK {
		t.Fatalf("signed batch: %d %s", status, out)
	}
	var labels []gitHubLabel
	if err := json.Unmarshal(out, &labels); err != nil || len(labels) != len(batch) {
		t.Fatalf("answer %s: %v", out, err)
	}
	for i, f := range batch {
		sum := sha256.Sum256([]byte(f.Token))
		want := "false_positive"
		if _, ok := ids[f.Token]; ok {
			want = "true_positive"
		}
		if labels[i].TokenHash != hex.EncodeToString(sum[:]) || labels[i].Label != want || labels[i].TokenType != "tokengate_secret" {
			t.Fatalf("finding %d: label %+v, want %s", i, labels[i], want)
		}
		if strings.Contains(string(out), f.Token) {
			t.Fatal("the answer carries a reported secret")
		}
	}

	// Every live secret refused on both nodes; how long after the report
	// was sent.
	var mu sync.Mutex
	var waits, afterAnswer []time.Duration
	var wg sync.WaitGroup
	for _, n := range []*leakNode{a, b} {
		for _, s := range live {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at, err := pollDeny(n.node, s, 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				waits = append(waits, at.Sub(sent))
				afterAnswer = append(afterAnswer, max(0, at.Sub(answered)))
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// The report is answered once every live token is revoked in the
	// store; from then on, each node has a second to refuse them.
	p99 := func(d []time.Duration) time.Duration { slices.Sort(d); return d[(len(d)*99+99)/100-1] }
	t.Logf("refused on both nodes (%d secret-node pairs): p99 %s after the report was sent (answered after %s), p99 %s and max %s after its answer",
		len(waits), p99(waits), answered.Sub(sent), p99(afterAnswer), afterAnswer[len(afterAnswer)-1])
	if worst := afterAnswer[len(afterAnswer)-1]; worst > maxPropagation {
		t.Errorf("a leaked secret still worked %s after the report was answered (bound %s)", worst, maxPropagation)
	}
	view := b.show(t, ids[live[0]])
	if view.State != store.StateExposed {
		t.Fatalf("node b shows state %q, want exposed", view.State)
	}

	// A replay: same labels, nothing changes, no second announcement; its
	// lookups by hash are the 70 well-formed findings, never the 30
	// malformed ones.
	before := settledIndexScans(t, db)
	status, again := a.alert(t, body, ghKey.id, sig)
	if status != http.StatusOK || !bytes.Equal(again, out) {
		t.Fatalf("replay: %d, labels changed: %s", status, again)
	}
	lookups := settledIndexScans(t, db) - before
	t.Logf("store lookups by hash for the replayed batch of 100: %d", lookups)
	if lookups != 70 {
		t.Errorf("%d lookups by hash for 70 well-formed and 30 malformed findings, want 70", lookups)
	}
	exposed := len(a.actionLines(t, "token.exposed")) + len(b.actionLines(t, "token.exposed"))
	if exposed != 50 {
		t.Errorf("%d token.exposed lines on the two nodes, want 50 (one per live secret, none for the replay)", exposed)
	}
	reports := a.actionLines(t, "leak.reported")
	var outcomes []string
	for _, l := range reports {
		outcomes = append(outcomes, fmt.Sprint(l["outcome"], " ", l["reasons"], " ", l["reason"]))
	}
	if len(reports) != 4 {
		t.Fatalf("leak.reported lines: %q, want tampered, unknown key, batch, replay", outcomes)
	}
	for i, want := range []string{"signature_invalid", "key_unknown", "50 exposed", "50 already exposed"} {
		if !strings.Contains(outcomes[i], want) {
			t.Errorf("leak.reported line %d: %q, want %s", i, outcomes[i], want)
		}
	}
	data, _ := os.ReadFile(a.audit)
	for _, s := range batch {
		if bytes.Contains(data, []byte(s.Token)) {
			t.Fatal("the audit log carries a reported string")
		}
	}
}

// pollDeny calls n with secret until it answers 401 token_revoked, and
// returns when; it runs in goroutines of its own, so it returns errors
// rather than failing the test.
func pollDeny(n *node, secret string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequest(http.MethodGet, n.url+"/svc/x", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		at := time.Now()
		if err != nil {
			return at, fmt.Errorf("%s: %v", n.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusUnauthorized && bytes.Contains(body, []byte(`"token_revoked"`)):
			return at, nil
		case resp.StatusCode != http.StatusOK:
			return at, fmt.Errorf("%s answered %d %s while waiting for token_revoked", n.name, resp.StatusCode, body)
		case at.After(deadline):
			return at, fmt.Errorf("%s still allows a leaked secret %s after the report", n.name, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settledIndexScans waits until PostgreSQL's index statistics stop moving
// (a backend reports its counts within about ten seconds of going idle)
// and returns them.
func settledIndexScans(t *testing.T, db *testDB) int {
	t.Helper()
	last, stableSince := db.hashIndexScans(t), time.Now()
	for time.Since(stableSince) < 11*time.Second {
		time.Sleep(500 * time.Millisecond)
		if n := db.hashIndexScans(t); n != last {
			last, stableSince = n, time.Now()
		}
	}
	return last
}
