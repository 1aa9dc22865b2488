package console_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/testutil/softkey"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/internal/websession"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// The console runs here over the real management service: a bolt file,
// the shipped policies with a directory, a real audit logger, a real HTTP
// server. Sign-in through the identity provider is tested end to end with
// Caddy and the real provider; here sessions are started directly.

const directory = `{"groups": {"approvers": ["alice@example.com"], "developers": ["bob@example.com"]},
	"services": {"billing": {"environment": "production"}, "search": {"environment": "staging"}}}`

type fixture struct {
	srv      *httptest.Server
	store    *bolt.Store
	manage   *manage.Service
	sessions *websession.Manager
	logs     *observer.ObservedLogs
	origin   string
}

func newFixture(t testing.TB, options ...func(*console.Config)) *fixture {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fsys := fstest.MapFS{}
	if err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(policies.FS, name)
		fsys[name] = &fstest.MapFile{Data: src}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fsys["tokengate/directory/data.json"] = &fstest.MapFile{Data: []byte(directory)}
	engine, err := policy.NewEngine(fsys)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	al := audit.New(zap.New(core))
	svc := &manage.Service{
		Tokens:   &lifecycle.Service{Store: db, Hasher: token.NewHasher(""), MaxTTL: 48 * time.Hour, Now: time.Now},
		Requests: db,
		Policy:   engine,
		Audit:    al,
		Now:      time.Now,
	}
	f := &fixture{store: db, manage: svc, logs: logs, sessions: websession.New(db, websession.Config{})}
	f.srv = httptest.NewUnstartedServer(nil)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	// WebAuthn wants a host name, not an address.
	_, port, _ := strings.Cut(f.srv.Listener.Addr().String(), ":")
	f.origin = "http://localhost:" + port
	// The relying party is the host the browser reached: localhost.
	cfg := console.Config{Actions: svc, Sessions: f.sessions, StepUpStore: db}
	for _, o := range options {
		o(&cfg)
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Config.Handler = c
	return f
}

// browser is a person's browser: a cookie jar holding their session.
type browser struct {
	t      testing.TB
	f      *fixture
	client *http.Client
	name   string
}

func (f *fixture) signIn(t testing.TB, principal string, groups ...string) *browser {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", f.origin+"/console/callback", nil)
	if _, err := f.sessions.Start(context.Background(), w, r, principal, groups); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(f.origin)
	jar.SetCookies(u, w.Result().Cookies())
	return &browser{t: t, f: f, name: principal, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.client.Get(b.f.origin + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (b *browser) post(path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	resp, err := b.client.PostForm(b.f.origin+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

var csrfField = regexp.MustCompile(`<form[^>]*action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"`)

// form returns the CSRF token of the page's form posting to action.
func (b *browser) form(page, action string) url.Values {
	b.t.Helper()
	_, body, _ := b.get(page)
	for _, m := range csrfField.FindAllStringSubmatch(body, -1) {
		if m[1] == action {
			return url.Values{"csrf": {m[2]}}
		}
	}
	b.t.Fatalf("no form posting to %s on %s", action, page)
	return nil
}

func (f *fixture) ask(t *testing.T, by string, groups []string, spec lifecycle.Spec) *store.Request {
	t.Helper()
	r, _, _, err := f.manage.Request(context.Background(), manage.Principal{Name: by, Kind: manage.PersonKind, Groups: groups}, spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeSpec(service string) lifecycle.Spec {
	return lifecycle.Spec{Owner: "billing-team", Purpose: "month-end export", Scopes: []string{service + ":write"},
		Services: []string{service}, CIDRs: []string{"10.1.0.0/16"}, TTL: "2h", Ticket: "CHG-1234"}
}

func TestInboxListsOthersRequestsOnly(t *testing.T) {
	f := newFixture(t)
	bobs := f.ask(t, "bob@example.com", nil, writeSpec("search"))
	alices := f.ask(t, "alice@example.com", nil, writeSpec("search"))
	alice := f.signIn(t, "alice@example.com")
	status, body, h := alice.get("/console/")
	if status != 200 {
		t.Fatalf("inbox: %d\n%s", status, body)
	}
	if !strings.Contains(body, bobs.ID) || strings.Contains(body, alices.ID) {
		t.Fatalf("alice's inbox must show bob's request %s and not her own %s:\n%s", bobs.ID, alices.ID, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", h.Get("Cache-Control"))
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") {
		t.Fatal("a page carries inline script")
	}
}

func TestSignedOutVisitorGoesToSignIn(t *testing.T) {
	f := newFixture(t)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(f.srv.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("signed out: %d to %q, want 303 to /console/login", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestOwnRequestOffersNoDecisionAndAForgedOneIsRefused(t *testing.T) {
	f := newFixture(t)
	own := f.ask(t, "alice@example.com", nil, writeSpec("search"))
	alice := f.signIn(t, "alice@example.com")
	_, body, _ := alice.get("/console/requests/" + own.ID)
	if strings.Contains(body, "/decide") {
		t.Fatal("the requester is offered a decision on her own request")
	}
	// A forged post, with a valid CSRF token of another form of hers.
	bobs := f.ask(t, "bob@example.com", nil, writeSpec("search"))
	form := alice.form("/console/requests/"+bobs.ID, "/console/requests/"+bobs.ID+"/decide")
	form.Set("reason", "looks fine")
	form.Set("decision", "approve")
	status, _, _ := alice.post("/console/requests/"+own.ID+"/decide", form)
	if status != http.StatusForbidden {
		t.Fatalf("a decide post for her own request with another form's token: %d, want 403", status)
	}
	got, _ := f.store.GetRequest(context.Background(), own.ID)
	if got.Status != store.RequestPending {
		t.Fatalf("own request is %s after forged approvals", got.Status)
	}
}

func TestSelfApprovalIsRefusedByThePolicy(t *testing.T) {
	f := newFixture(t)
	own := f.ask(t, "alice@example.com", nil, writeSpec("search"))
	alice := f.signIn(t, "alice@example.com")
	// A form whose CSRF token is right for the path: the console leaves
	// the judgement to the admin policy, which refuses self-approval.
	s, _ := websessionFor(t, f, alice)
	form := url.Values{"csrf": {s.CSRFToken("POST /console/requests/" + own.ID + "/decide")}, "reason": {"mine"}, "decision": {"approve"}}
	status, body, _ := alice.post("/console/requests/"+own.ID+"/decide", form)
	if status != http.StatusForbidden || !strings.Contains(body, "self_approval") {
		t.Fatalf("self-approval: %d\n%s", status, body)
	}
	refusedLine(t, f, "token.approved", "self_approval")
}

// websessionFor loads b's session as the console sees it.
func websessionFor(t *testing.T, f *fixture, b *browser) (*websession.Session, error) {
	t.Helper()
	u, _ := url.Parse(f.origin)
	r := httptest.NewRequest("GET", f.origin+"/console/", nil)
	for _, c := range b.client.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	return f.sessions.Load(context.Background(), r)
}

func refusedLine(t *testing.T, f *fixture, msg, reason string) {
	t.Helper()
	for _, e := range f.logs.TakeAll() {
		m := e.ContextMap()
		if e.Message == msg && m["outcome"] == "refused" && strings.Contains(fmt.Sprint(m["reasons"]), reason) {
			if m["actor"] != "alice@example.com" {
				t.Fatalf("refused line names actor %v, want alice@example.com", m["actor"])
			}
			return
		}
	}
	t.Fatalf("no refused %s line with %s", msg, reason)
}

func TestDecisionNeedsAReasonAndACSRFToken(t *testing.T) {
	f := newFixture(t)
	bobs := f.ask(t, "bob@example.com", nil, writeSpec("search"))
	alice := f.signIn(t, "alice@example.com")
	page, action := "/console/requests/"+bobs.ID, "/console/requests/"+bobs.ID+"/decide"

	form := alice.form(page, action)
	form.Set("decision", "approve")
	if status, body, _ := alice.post(action, form); status != http.StatusBadRequest || !strings.Contains(body, "reason_required") {
		t.Fatalf("approval without a reason: %d\n%s", status, body)
	}
	crossSite := url.Values{"decision": {"approve"}, "reason": {"from evil.example"}}
	if status, body, _ := alice.post(action, crossSite); status != http.StatusForbidden || !strings.Contains(body, "csrf_invalid") {
		t.Fatalf("a post without the CSRF token: %d\n%s", status, body)
	}
	if got, _ := f.store.GetRequest(context.Background(), bobs.ID); got.Status != store.RequestPending {
		t.Fatalf("request is %s after refused posts", got.Status)
	}
	form.Set("reason", "matches CHG-1234")
	if status, body, _ := alice.post(action, form); status != http.StatusSeeOther {
		t.Fatalf("approval with a reason: %d\n%s", status, body)
	}
	if got, _ := f.store.GetRequest(context.Background(), bobs.ID); got.Status != store.RequestApproved || got.DecidedBy != "alice@example.com" || got.Reason != "matches CHG-1234" {
		t.Fatalf("after approval: %+v", got)
	}
}

func TestProductionWriteNeedsAStepUpBoundToTheRequest(t *testing.T) {
	f := newFixture(t)
	// carol is no developer: the directory's rule keeps developers from
	// production writes altogether.
	first := f.ask(t, "carol@example.com", nil, writeSpec("billing"))
	second := f.ask(t, "carol@example.com", nil, writeSpec("billing"))
	alice := f.signIn(t, "alice@example.com")
	key := softkey.New("localhost", f.origin)
	registerKey(t, alice, key)

	action := "/console/requests/" + first.ID + "/decide"
	form := alice.form("/console/requests/"+first.ID, action)
	form.Set("decision", "approve")
	form.Set("reason", "CHG-1234 is approved")
	if status, body, _ := alice.post(action, form); status != http.StatusForbidden || !strings.Contains(body, "step_up_required") {
		t.Fatalf("approval without an assertion: %d\n%s", status, body)
	}
	forSecond := assertionFor(t, alice, second.ID, key)
	form.Set("assertion", forSecond)
	if status, body, _ := alice.post(action, form); status != http.StatusForbidden || !strings.Contains(body, "step_up_mismatch") {
		t.Fatalf("an assertion made for another request: %d\n%s", status, body)
	}
	forFirst := assertionFor(t, alice, first.ID, key)
	form.Set("assertion", forFirst)
	if status, body, _ := alice.post(action, form); status != http.StatusSeeOther {
		t.Fatalf("approval with the right assertion: %d\n%s", status, body)
	}
	// The same assertion again, on the second request (now with its own
	// CSRF token): replayed or mismatched, never accepted.
	action2 := "/console/requests/" + second.ID + "/decide"
	form2 := alice.form("/console/requests/"+second.ID, action2)
	form2.Set("decision", "approve")
	form2.Set("reason", "again")
	form2.Set("assertion", forFirst)
	if status, _, _ := alice.post(action2, form2); status != http.StatusForbidden {
		t.Fatalf("a used assertion on another request: %d, want 403", status)
	}
	if got, _ := f.store.GetRequest(context.Background(), second.ID); got.Status != store.RequestPending {
		t.Fatalf("second request is %s", got.Status)
	}
}

// registerKey adds key to b's account through the key pages.
func registerKey(t *testing.T, b *browser, key *softkey.Key) {
	t.Helper()
	s, err := websessionFor(t, b.f, b)
	if err != nil {
		t.Fatal(err)
	}
	opts := b.jsonPost("/console/keys/begin", s.CSRFToken("POST /console/keys/begin"), "{}")
	resp, err := key.Register([]byte(opts))
	if err != nil {
		t.Fatal(err)
	}
	if out := b.jsonPost("/console/keys/finish?name=yubikey", s.CSRFToken("POST /console/keys/finish"), string(resp)); !strings.Contains(out, "registered") {
		t.Fatalf("registration: %s", out)
	}
}

func assertionFor(t *testing.T, b *browser, requestID string, key *softkey.Key) string {
	t.Helper()
	s, err := websessionFor(t, b.f, b)
	if err != nil {
		t.Fatal(err)
	}
	path := "/console/requests/" + requestID + "/step-up"
	opts := b.jsonPost(path, s.CSRFToken("POST "+path), "{}")
	resp, err := key.Assert([]byte(opts))
	if err != nil {
		t.Fatal(err)
	}
	return string(resp)
}

func (b *browser) jsonPost(path, csrf, body string) string {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.f.origin+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
	}
	return string(out)
}

func TestClaimShowsTheSecretOnce(t *testing.T) {
	f := newFixture(t)
	bobs := f.ask(t, "bob@example.com", nil, writeSpec("search"))
	if _, err := f.manage.Approve(context.Background(), manage.Principal{Name: "alice@example.com", Kind: manage.PersonKind}, bobs.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	bob := f.signIn(t, "bob@example.com")
	page, action := "/console/requests/"+bobs.ID, "/console/requests/"+bobs.ID+"/claim"
	form := bob.form(page, action)
	status, body, h := bob.post(action, form)
	secret := regexp.MustCompile(`value="(tg_[^"]+)"`).FindStringSubmatch(body)
	if status != 200 || secret == nil || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("claim: %d, Cache-Control %q\n%s", status, h.Get("Cache-Control"), body)
	}
	if status, body, _ := bob.post(action, form); status == 200 || strings.Contains(body, secret[1]) {
		t.Fatalf("second claim: %d, and the secret shown again: %v", status, strings.Contains(body, secret[1]))
	}
	hash := token.NewHasher("").Hash(secret[1])
	tok, err := f.store.GetByHash(context.Background(), hash[:])
	if err != nil || tok.HeldBy != "bob@example.com" {
		t.Fatalf("the claimed secret's token: %+v, %v", tok, err)
	}
	_, tokenPage, _ := bob.get("/console/tokens/" + tok.ID)
	if strings.Contains(tokenPage, secret[1]) {
		t.Fatal("the token's page shows the secret")
	}
}

func TestRevokeNeedsAReason(t *testing.T) {
	f := newFixture(t)
	bobs := f.ask(t, "bob@example.com", nil, writeSpec("search"))
	if _, err := f.manage.Approve(context.Background(), manage.Principal{Name: "alice@example.com", Kind: manage.PersonKind}, bobs.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, _, tok, err := f.manage.Claim(context.Background(), manage.Principal{Name: "bob@example.com", Kind: manage.PersonKind}, bobs.ID)
	if err != nil {
		t.Fatal(err)
	}
	bob := f.signIn(t, "bob@example.com")
	action := "/console/tokens/" + tok.ID + "/revoke"
	form := bob.form("/console/tokens/"+tok.ID, action)
	if status, _, _ := bob.post(action, form); status != http.StatusBadRequest {
		t.Fatalf("revoke without a reason: %d", status)
	}
	form.Set("reason", "no longer needed")
	if status, body, _ := bob.post(action, form); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d\n%s", status, body)
	}
	got, _ := f.store.Get(context.Background(), tok.ID)
	if got.RevokedAt.IsZero() || got.RevokeReason != "no longer needed" || got.RevokedBy != "bob@example.com" {
		t.Fatalf("after revoke: %+v", got)
	}
}

// BenchmarkInboxOf10000 renders the first inbox page with 10,000 pending
// requests in the store: store read, filtering, paging and template.
func BenchmarkInboxOf10000(b *testing.B) {
	f := newFixture(b)
	now := time.Now().UTC()
	rs := make([]*store.Request, 10000)
	for i := range rs {
		rs[i] = &store.Request{ID: fmt.Sprintf("req_%05d", i), Owner: "team", Purpose: "load", Scopes: []string{"search:write"},
			Services: []string{"search"}, TTL: time.Hour, Status: store.RequestPending, RequestedBy: fmt.Sprintf("user%d@example.com", i%50),
			CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}
	}
	if err := f.store.CreateRequestsMany(context.Background(), rs); err != nil {
		b.Fatal(err)
	}
	alice := f.signIn(b, "alice@example.com")
	b.ResetTimer()
	for b.Loop() {
		status, body, _ := alice.get("/console/")
		if status != 200 || !strings.Contains(body, "10000 pending requests") {
			b.Fatalf("inbox: %d %.300s", status, body)
		}
	}
}

// TestScreenshots renders every page in Chromium, for a person to look
// at, when TOKENGATE_CONSOLE_SCREENSHOTS names a folder (and NODE_PATH
// finds playwright-core). Console errors in the browser (a CSP violation,
// say) fail it.
func TestScreenshots(t *testing.T) {
	out := os.Getenv("TOKENGATE_CONSOLE_SCREENSHOTS")
	if out == "" {
		t.Skip("set TOKENGATE_CONSOLE_SCREENSHOTS to a folder to take screenshots")
	}
	f := newFixture(t)
	bobs := f.ask(t, "bob@example.com", []string{"developers"}, writeSpec("search"))
	carols := f.ask(t, "carol@example.com", nil, writeSpec("billing"))
	f.ask(t, "alice@example.com", nil, writeSpec("search"))
	older := f.ask(t, "carol@example.com", nil, lifecycle.Spec{Owner: "reports", Purpose: "weekly report", Scopes: []string{"search:read"}, Services: []string{"search"}, CIDRs: []string{"10.2.0.0/16"}, TTL: "1h", MaxUses: 100})
	approver := manage.Principal{Name: "alice@example.com", Kind: manage.PersonKind}
	if _, err := f.manage.Approve(context.Background(), approver, older.ID, "weekly report, as every week"); err != nil {
		t.Fatal(err)
	}
	_, _, held, err := f.manage.Claim(context.Background(), manage.Principal{Name: "carol@example.com", Kind: manage.PersonKind}, older.ID)
	if err != nil {
		t.Fatal(err)
	}
	alice := f.signIn(t, "alice@example.com", "approvers")
	registerKey(t, alice, softkey.New("localhost", f.origin))
	u, _ := url.Parse(f.origin)
	cookie := alice.client.Jar.Cookies(u)[0]
	cmd := exec.Command("node", "testdata/shots.js", f.origin, cookie.Name, cookie.Value, out,
		"/console/", "/console/requests/"+carols.ID, "/console/requests/"+bobs.ID, "/console/mine",
		"/console/tokens", "/console/tokens/"+held.ID, "/console/report", "/console/keys", "/console/requests/nope")
	cmd.Stderr = os.Stderr
	shots, err := cmd.Output()
	if err != nil {
		t.Fatalf("screenshots: %v", err)
	}
	t.Logf("screenshots:\n%s", shots)
}

func TestAssemble(t *testing.T) {
	f := newFixture(t)
	if _, err := console.Assemble(console.Parts{Store: f.store, Actions: f.manage, URL: "https://127.0.0.1:8443"}); err == nil {
		t.Fatal("an IP address as the console's address is accepted; browsers refuse WebAuthn there")
	}
	if _, err := console.Assemble(console.Parts{Store: f.store, Actions: f.manage, URL: "ftp://gateway.example.com"}); err == nil {
		t.Fatal("an ftp address is accepted")
	}
	c, err := console.Assemble(console.Parts{Store: f.store, Actions: f.manage})
	if err != nil || c == nil {
		t.Fatalf("assembling on a bolt store: %v", err)
	}
}

// TestInboxShowsOnlyWhatThePolicyLetsTheViewerDecide: bob is no approver,
// so carol's write request waits for someone else and is not in his
// inbox; alice, an approver, sees it.
func TestInboxShowsOnlyWhatThePolicyLetsTheViewerDecide(t *testing.T) {
	f := newFixture(t)
	carols := f.ask(t, "carol@example.com", nil, writeSpec("search"))
	_, body, _ := f.signIn(t, "bob@example.com").get("/console/")
	if strings.Contains(body, carols.ID) {
		t.Fatalf("bob, no approver, is offered carol's write request:\n%s", body)
	}
	_, body, _ = f.signIn(t, "alice@example.com").get("/console/")
	if !strings.Contains(body, carols.ID) {
		t.Fatalf("alice, an approver, is not offered carol's request:\n%s", body)
	}
}

// TestRequestPageSaysWhyAPersonIsAskedAndWhoMayDecide.
func TestRequestPageSaysWhyAPersonIsAskedAndWhoMayDecide(t *testing.T) {
	f := newFixture(t)
	carols := f.ask(t, "carol@example.com", nil, writeSpec("billing"))
	_, body, _ := f.signIn(t, "alice@example.com").get("/console/requests/" + carols.ID)
	for _, want := range []string{"it asks to change data", "it reaches a production service", "it lives longer than just-in-time access may", "Who may decide: alice@example.com"} {
		if !strings.Contains(body, want) {
			t.Errorf("the request page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

func TestRotateNeedsAReasonAndRecordsIt(t *testing.T) {
	f := newFixture(t)
	bobs := f.ask(t, "bob@example.com", nil, writeSpec("search"))
	if _, err := f.manage.Approve(context.Background(), manage.Principal{Name: "alice@example.com", Kind: manage.PersonKind}, bobs.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, _, tok, err := f.manage.Claim(context.Background(), manage.Principal{Name: "bob@example.com", Kind: manage.PersonKind}, bobs.ID)
	if err != nil {
		t.Fatal(err)
	}
	bob := f.signIn(t, "bob@example.com")
	action := "/console/tokens/" + tok.ID + "/rotate"
	form := bob.form("/console/tokens/"+tok.ID, action)
	form.Set("grace", "1m")
	if status, _, _ := bob.post(action, form); status != http.StatusBadRequest {
		t.Fatalf("rotate without a reason: %d", status)
	}
	f.logs.TakeAll()
	form.Set("reason", "laptop lost")
	status, body, h := bob.post(action, form)
	if status != http.StatusOK || !strings.Contains(body, `value="tg_`) || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate: %d %s", status, h.Get("Cache-Control"))
	}
	for _, e := range f.logs.TakeAll() {
		if e.Message == "token.rotated" && strings.HasPrefix(fmt.Sprint(e.ContextMap()["reason"]), "laptop lost (successor ") {
			return
		}
	}
	t.Fatal("no token.rotated line with the stated reason")
}
