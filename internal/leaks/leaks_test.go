package leaks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// fixture is a real bbolt store behind a real lifecycle service and the
// management service that writes the action lines, seen through a Ledger
// that counts the lookups the intake makes.
type fixture struct {
	store   *bolt.Store
	life    *lifecycle.Service
	manage  *manage.Service
	hasher  *token.Hasher
	lookups atomic.Int64
	logs    *observer.ObservedLogs
	now     time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	core, logs := observer.New(zap.InfoLevel)
	f := &fixture{store: st, hasher: token.NewHasher(""), logs: logs, now: time.Now().UTC().Truncate(time.Microsecond)}
	f.life = &lifecycle.Service{Store: st, Hasher: f.hasher, MaxTTL: 24 * time.Hour, Now: func() time.Time { return f.now }}
	f.manage = &manage.Service{Tokens: f.life, Audit: audit.New(zap.New(core)), Now: func() time.Time { return f.now }}
	return f
}

func (f *fixture) Find(ctx context.Context, secret string) (*store.Token, error) {
	f.lookups.Add(1)
	h := f.hasher.Hash(secret)
	return f.store.GetByHash(ctx, h[:])
}

func (f *fixture) Expose(ctx context.Context, actor, id string, e lifecycle.Exposure) (*store.Token, error) {
	return f.manage.Expose(ctx, actor, id, e)
}

// issue stores a live token and returns its secret and id.
func (f *fixture) issue(t *testing.T) (string, string) {
	t.Helper()
	secret, tok, err := f.life.Issue(context.Background(), "alice", lifecycle.Spec{
		Owner: "alice", Purpose: "leak test", Scopes: []string{"billing:read"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok.ID
}

// badChecksum returns a secret-shaped string whose checksum is wrong.
func badChecksum(t *testing.T) string {
	s := []byte(token.NewSecret())
	last := len(s) - 1
	s[last] = map[bool]byte{true: 'b', false: 'a'}[s[last] == 'a']
	if token.Check(string(s)) == nil {
		t.Fatal("mutated secret still passes the checksum")
	}
	return string(s)
}

func (f *fixture) lines(msg string) []observer.LoggedEntry {
	return f.logs.FilterMessage(msg).All()
}

// A batch of 100 findings, 50 live secrets, 30 with a bad checksum and 20
// unknown, costs 70 lookups: garbage never reaches the store. Every live
// token is revoked as exposed, with one token.exposed line each; the same
// batch again changes nothing and writes no second line.
func TestProcessChecksumFirstAndOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var findings []Finding
	live := map[string]string{}
	for range 50 {
		secret, id := f.issue(t)
		live[secret] = id
		findings = append(findings, Finding{Secret: secret, URL: "https://github.com/octo/app/blob/abc/x.env#L1"})
	}
	for range 30 {
		findings = append(findings, Finding{Secret: badChecksum(t)})
	}
	for range 20 {
		findings = append(findings, Finding{Secret: token.NewSecret()})
	}
	results, tally, err := Process(ctx, f, "github", "github", findings, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.lookups.Load(); got != 70 {
		t.Fatalf("%d store lookups, want 70 (50 live + 20 unknown; none for the 30 malformed)", got)
	}
	if tally[Exposed] != 50 || tally[Malformed] != 30 || tally[Unknown] != 20 {
		t.Fatalf("tally %v", tally)
	}
	for i, r := range results[:50] {
		tok, err := f.store.Get(ctx, r.TokenID)
		if err != nil {
			t.Fatal(err)
		}
		if r.TokenID != live[findings[i].Secret] || store.StateOf(tok, f.now) != store.StateExposed ||
			tok.RevokeReason != "leaked" || tok.ExposureSource != "github" || tok.ExposureURL != findings[i].URL {
			t.Fatalf("finding %d: result %+v, record %+v", i, r, tok)
		}
		if r.Outcome.Label() != "true_positive" {
			t.Fatalf("finding %d labelled %s", i, r.Outcome.Label())
		}
	}
	for i, r := range results[50:] {
		if r.Outcome.Label() != "false_positive" || r.TokenID != "" {
			t.Fatalf("finding %d: %+v", 50+i, r)
		}
	}
	if n := len(f.lines("token.exposed")); n != 50 {
		t.Fatalf("%d token.exposed lines, want 50", n)
	}

	f.lookups.Store(0)
	again, tally, err := Process(ctx, f, "github", "github", findings, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if tally[AlreadyExposed] != 50 || tally[Exposed] != 0 || f.lookups.Load() != 70 {
		t.Fatalf("replay: tally %v, %d lookups", tally, f.lookups.Load())
	}
	if n := len(f.lines("token.exposed")); n != 50 {
		t.Fatalf("replay wrote token.exposed lines: %d in all, want 50", n)
	}
	for i := range results {
		if again[i].Outcome.Label() != results[i].Outcome.Label() {
			t.Fatalf("finding %d labelled %s on replay, %s before", i, again[i].Outcome.Label(), results[i].Outcome.Label())
		}
	}
	for _, line := range f.lines("token.exposed") {
		for _, field := range line.Context {
			for secret := range live {
				if strings.Contains(field.String, secret) {
					t.Fatalf("a token.exposed line carries a secret in %s", field.Key)
				}
			}
		}
	}
}

// A rotated token's secret, still in its grace window, leaks: it and its
// successor are revoked; only it is marked exposed.
func TestExposeRevokesTheChain(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	oldSecret, oldID := f.issue(t)
	rotation, err := f.life.Rotate(ctx, "alice", nil, oldID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	next := rotation.Next
	_, tally, err := Process(ctx, f, "alice", "paste", []Finding{{Secret: oldSecret}}, f.now)
	if err != nil || tally[Exposed] != 1 {
		t.Fatalf("tally %v, %v", tally, err)
	}
	old, _ := f.store.Get(ctx, oldID)
	succ, _ := f.store.Get(ctx, next.ID)
	if store.StateOf(old, f.now) != store.StateExposed || store.StateOf(succ, f.now) != store.StateRevoked {
		t.Fatalf("old %s, successor %s", store.StateOf(old, f.now), store.StateOf(succ, f.now))
	}
	line := f.lines("token.exposed")[0].ContextMap()
	if ids, _ := line["revoked_ids"].([]any); len(ids) != 2 {
		t.Fatalf("token.exposed revoked_ids %v, want both tokens", line["revoked_ids"])
	}
}

// Not ours, expired, already revoked: labelled false_positive and nothing
// else: no change, no line.
func TestInactiveSecretsChangeNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	revokedSecret, revokedID := f.issue(t)
	if _, _, err := f.life.Revoke(ctx, "alice", revokedID, "done"); err != nil {
		t.Fatal(err)
	}
	expiredSecret, expiredID := f.issue(t)
	before, _ := f.store.Get(ctx, expiredID)
	f.now = f.now.Add(2 * time.Hour)
	results, tally, err := Process(ctx, f, "alice", "paste", []Finding{{Secret: revokedSecret}, {Secret: expiredSecret}}, f.now)
	if err != nil || tally[Inactive] != 2 {
		t.Fatalf("tally %v, %v", tally, err)
	}
	if results[0].State != store.StateRevoked || results[1].State != store.StateExpired {
		t.Fatalf("results %+v", results)
	}
	after, _ := f.store.Get(ctx, expiredID)
	if after.Version != before.Version || len(f.lines("token.exposed")) != 0 {
		t.Fatalf("an expired token changed (version %d -> %d) or a line was written", before.Version, after.Version)
	}
}

// signer is a GitHub-like key pair and its public-keys document.
type signer struct {
	key *ecdsa.PrivateKey
	id  string
	doc []byte
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	s := &signer{key: key, id: base64.RawURLEncoding.EncodeToString(sum[:])}
	s.doc, _ = json.Marshal(map[string]any{"public_keys": []map[string]any{{
		"key_identifier": s.id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true}}})
	return s
}

func (s *signer) sign(t *testing.T, body []byte) string {
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func TestKeysVerify(t *testing.T) {
	s := newSigner(t)
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, s.doc, 0o600); err != nil {
		t.Fatal(err)
	}
	k := NewKeys(path, nil, time.Now)
	body := []byte(`[{"token":"x","type":"tokengate","url":"u","source":"content"}]`)
	sig := s.sign(t, body)
	ctx := context.Background()
	if err := k.Verify(ctx, body, s.id, sig); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	tampered := bytes.Replace(body, []byte(`"x"`), []byte(`"y"`), 1)
	if err := k.Verify(ctx, tampered, s.id, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a tampered body: %v", err)
	}
	if err := k.Verify(ctx, body, "other", sig); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("an unknown key id: %v", err)
	}
	if err := k.Verify(ctx, body, s.id, "not base64!"); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("garbage signature: %v", err)
	}
	// The file is reread when it changes: a new key verifies at once.
	s2 := newSigner(t)
	if err := os.WriteFile(path, s2.doc, 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if err := k.Verify(ctx, body, s2.id, s2.sign(t, body)); err != nil {
		t.Fatalf("the rewritten file's key: %v", err)
	}
}

// A URL is fetched once, again on an unknown key id at most once a wait,
// and again when stale.
func TestKeysFromURLRefreshRateLimited(t *testing.T) {
	s := newSigner(t)
	var fetches atomic.Int64
	doc := atomic.Pointer[[]byte]{}
	doc.Store(&s.doc)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(*doc.Load())
	}))
	defer srv.Close()
	now := time.Now()
	k := NewKeys(srv.URL, srv.Client(), func() time.Time { return now })
	body := []byte("[]")
	ctx := context.Background()
	if err := k.Verify(ctx, body, s.id, s.sign(t, body)); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := k.Verify(ctx, body, "made-up", s.sign(t, body)); !errors.Is(err, ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one good and 50 unknown key ids within a minute, want 1", n)
	}
	s2 := newSigner(t)
	doc.Store(&s2.doc)
	now = now.Add(DefaultUnknownKeyWait)
	if err := k.Verify(ctx, body, s2.id, s2.sign(t, body)); err != nil {
		t.Fatalf("GitHub's new key, after the wait: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	now = now.Add(DefaultKeyRefresh)
	if err := k.Verify(ctx, body, s2.id, s2.sign(t, body)); err != nil {
		t.Fatal(err)
	}
	if n := fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after the refresh interval, want 3", n)
	}
}

func TestParseReportShapes(t *testing.T) {
	secret := token.NewSecret()
	plain, err := ParseReport([]byte(`{"source":"trufflehog","url":"https://ci/log/1","secrets":["` + secret + `"]}`))
	if err != nil || plain.Source != "trufflehog" || plain.Findings[0].Secret != secret || plain.Findings[0].URL != "https://ci/log/1" {
		t.Fatalf("plain: %+v %v", plain, err)
	}
	gl, err := ParseReport([]byte(`[{"RuleID":"tokengate","Secret":"` + secret + `","File":"app/.env","StartLine":3,"Commit":"abc123"}]`))
	if err != nil || gl.Source != "gitleaks" || gl.Findings[0].URL != "app/.env:3@abc123" || gl.Findings[0].Type != "tokengate" {
		t.Fatalf("gitleaks: %+v %v", gl, err)
	}
	for _, bad := range []string{``, `"x"`, `{"secrets":[]}`, `{"secrets":["a"],"extra":1}`, `[1,2]`} {
		if _, err := ParseReport([]byte(bad)); !errors.Is(err, ErrInvalidReport) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	many := `{"secrets":[` + strings.Repeat(`"x",`, MaxFindings) + `"x"]}`
	if _, err := ParseReport([]byte(many)); !errors.Is(err, ErrInvalidReport) {
		t.Errorf("%d findings accepted", MaxFindings+1)
	}
}

// The intake refuses unsigned and garbage reports before any lookup, past
// its brake refuses without reading them, and audits every attempt.
func TestIntakeFloodNeverReachesTheStore(t *testing.T) {
	f := newFixture(t)
	s := newSigner(t)
	path := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(path, s.doc, 0o600)
	in := &Intake{Ledger: f, Trail: f.manage, Brake: addrlimit.New(20, time.Minute, func() time.Time { return f.now }),
		Now: func() time.Time { return f.now }, ClientAddr: func(*http.Request) string { return "192.0.2.7" }, GitHubKeys: NewKeys(path, nil, time.Now)}
	secret, _ := f.issue(t)
	body := []byte(`[{"token":"` + secret + `","type":"tokengate","url":"u","source":"content"}]`)
	post := func(keyID, sig string, body []byte) int {
		req := httptest.NewRequest(http.MethodPost, "/v1/leaks/github", bytes.NewReader(body))
		if keyID != "" {
			req.Header.Set("Github-Public-Key-Identifier", keyID)
			req.Header.Set("Github-Public-Key-Signature", sig)
		}
		rec := httptest.NewRecorder()
		in.ServeGitHub(rec, req)
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("the answer carries the secret: %s", rec.Body)
		}
		return rec.Code
	}
	codes := map[int]int{}
	for i := range 30 {
		switch i % 3 {
		case 0:
			codes[post("", "", body)]++
		case 1:
			codes[post(s.id, s.sign(t, []byte("other")), body)]++
		case 2:
			codes[post("unknown", s.sign(t, body), body)]++
		}
	}
	if codes[http.StatusUnauthorized] != 20 || codes[http.StatusTooManyRequests] != 10 {
		t.Fatalf("answers %v, want 20 x 401 then 10 x 429", codes)
	}
	if n := f.lookups.Load(); n != 0 {
		t.Fatalf("%d store lookups for unsigned reports", n)
	}
	refused := f.lines("leak.reported")
	if len(refused) != 21 { // 20 refusals, and the first 429 of the window
		t.Fatalf("%d leak.reported lines, want 21", len(refused))
	}
	tok, _ := f.store.GetByHash(context.Background(), func() []byte { h := f.hasher.Hash(secret); return h[:] }())
	if !tok.RevokedAt.IsZero() {
		t.Fatal("an unsigned report revoked the token")
	}
}

// GitHub's own secret_scanning_alert webhook carries no secret: it is
// acknowledged and audited, and changes nothing; a forwarder's copy with
// alert.secret revokes. Other events (ping) are acknowledged and ignored.
func TestAlertWebhookShapes(t *testing.T) {
	secret := token.NewSecret()
	action, findings, err := AlertWebhook([]byte(`{"action":"created","alert":{"number":1,"secret_type":"tokengate","html_url":"https://github.com/o/r/security/secret-scanning/1"}}`))
	if err != nil || action != "created" || len(findings) != 0 {
		t.Fatalf("GitHub's payload: %q %v %v", action, findings, err)
	}
	_, findings, err = AlertWebhook([]byte(`{"action":"created","alert":{"secret":"` + secret + `","secret_type":"tokengate","html_url":"https://x/1"}}`))
	if err != nil || len(findings) != 1 || findings[0].Secret != secret || findings[0].URL != "https://x/1" {
		t.Fatalf("a forwarded alert: %v %v", findings, err)
	}
	_, findings, _ = AlertWebhook([]byte(`{"action":"resolved","alert":{"secret":"` + secret + `"}}`))
	if len(findings) != 0 {
		t.Fatal("a resolved alert carries findings")
	}

	f := newFixture(t)
	const hookSecret = "org-secret"
	in := &Intake{Ledger: f, Trail: f.manage, Brake: addrlimit.New(100, time.Minute, func() time.Time { return f.now }),
		Now: func() time.Time { return f.now }, ClientAddr: func(*http.Request) string { return "192.0.2.8" }, WebhookSecret: []byte(hookSecret)}
	send := func(event string, body []byte) *httptest.ResponseRecorder {
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		req := httptest.NewRequest(http.MethodPost, "/v1/leaks", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		rec := httptest.NewRecorder()
		in.ServeWebhook(rec, req)
		return rec
	}
	if rec := send("ping", []byte(`{"zen":"hi"}`)); rec.Code != http.StatusAccepted {
		t.Fatalf("ping: %d %s", rec.Code, rec.Body)
	}
	if rec := send("secret_scanning_alert", []byte(`{"action":"created","alert":{"number":1}}`)); rec.Code != http.StatusOK || f.lookups.Load() != 0 {
		t.Fatalf("an alert without its secret: %d %s, %d lookups", rec.Code, rec.Body, f.lookups.Load())
	}
	if n := len(f.lines("leak.reported")); n != 2 {
		t.Fatalf("%d leak.reported lines for a ping and an alert without a secret, want 2", n)
	}
}
