// Package oidcop runs a real OpenID provider for tests: zitadel/oidc's
// example OP (exampleop + storage) served over HTTP on a free 127.0.0.1
// port, with users, clients, key rotation and CI-like workload tokens.
// Every token it hands out is signed by the OP and fetched over HTTP, the
// way a gateway meets tokens in production.
package oidcop

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Password is every user's password unless the User says otherwise.
const Password = "verysecure"

// CLIClientID is the default public client: native, PKCE, loopback redirects
// on any port (http://127.0.0.1:<port>/callback, http://localhost:<port>/callback)
// and the device grant. ID tokens it receives have it as audience.
const CLIClientID = "tokengate-cli"

// WorkloadClientID and WorkloadClientSecret are the confidential client
// WorkloadToken uses (client_credentials, JWT access tokens).
const (
	WorkloadClientID     = "ci-workloads"
	WorkloadClientSecret = "ci-workloads-secret"
)

// User is a person who can sign in. ID tokens carry sub = Username.
type User struct {
	Username      string
	Password      string // default Password
	Email         string
	EmailVerified bool
	Groups        []string       // the "groups" claim, left out when empty
	Claims        map[string]any // more claims for the ID token (may override groups)
}

// Client is an OAuth client of the OP. Without a Secret it is a public
// native client (PKCE, loopback redirects on any port, device grant); with
// one it is a confidential web client.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string // default http://127.0.0.1/callback, http://localhost/callback and http://localhost/console/callback (the web console)
	// IDTokenLifetime defaults to one hour. A negative lifetime gives
	// tokens that are already expired when issued.
	IDTokenLifetime time.Duration
	// ClockSkew moves iat (and auth_time) back by this much and exp forward:
	// a way to get genuinely signed tokens that look old.
	ClockSkew time.Duration
}

// Options configure Start. Zero Options give users alice (groups
// developers) and bob (groups approvers), both with verified emails at
// example.com, and the client CLIClientID.
type Options struct {
	Users   []User
	Clients []Client
}

// DefaultUsers are the users of zero Options.
func DefaultUsers() []User {
	return []User{
		{Username: "alice", Email: "alice@example.com", EmailVerified: true, Groups: []string{"developers"}},
		{Username: "bob", Email: "bob@example.com", EmailVerified: true, Groups: []string{"approvers"}},
	}
}

// OP is a running provider.
type OP struct {
	srv     *httptest.Server
	storage *opStorage
	users   map[string]User
	clients map[string]Client
	down    atomic.Bool
	// keysCacheControl is the Cache-Control of the JWKS answer ("" for none).
	keysCacheControl atomic.Pointer[string]

	hitsMu sync.Mutex
	hits   map[string]int
}

// Hits is how many requests the provider got for path (e.g. "/keys", the
// JWKS), answered or not.
func (p *OP) Hits(path string) int {
	p.hitsMu.Lock()
	defer p.hitsMu.Unlock()
	return p.hits[path]
}

func (p *OP) count(path string) {
	p.hitsMu.Lock()
	defer p.hitsMu.Unlock()
	if p.hits == nil {
		p.hits = map[string]int{}
	}
	p.hits[path]++
}

// SetGroups changes the groups claim of user's next ID tokens, as an
// identity provider does when someone joins or leaves a team.
func (p *OP) SetGroups(user string, groups []string) {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	u := p.users[user]
	u.Groups = groups
	p.users[user] = u
}

// SetDown makes every endpoint (discovery, keys, login, token) answer 503
// while down is true: the provider is unreachable for what depends on it.
func (p *OP) SetDown(down bool) { p.down.Store(down) }

// Start runs a provider until t ends. Users and clients add to the defaults
// CLIClientID and WorkloadClientID; users replace DefaultUsers when given.
func Start(t testing.TB, o Options) *OP {
	t.Helper()
	users := o.Users
	if len(users) == 0 {
		users = DefaultUsers()
	}
	clients := append([]Client{{ID: CLIClientID}}, o.Clients...)

	p := &OP{users: map[string]User{}, clients: map[string]Client{}}
	us := userStore{users: map[string]*storage.User{}}
	for _, u := range users {
		if u.Password == "" {
			u.Password = Password
		}
		p.users[u.Username] = u
		us.users[u.Username] = &storage.User{
			ID: u.Username, Username: u.Username, Password: u.Password,
			FirstName: u.Username, Email: u.Email, EmailVerified: u.EmailVerified,
			PreferredLanguage: language.English,
		}
	}
	base := map[string]*storage.Client{}
	wrapped := map[string]op.Client{}
	for _, c := range clients {
		if len(c.RedirectURIs) == 0 {
			c.RedirectURIs = []string{"http://127.0.0.1/callback", "http://localhost/callback", "http://localhost/console/callback"}
		}
		if c.IDTokenLifetime == 0 {
			c.IDTokenLifetime = time.Hour
		}
		p.clients[c.ID] = c
		var sc *storage.Client
		if c.Secret == "" {
			sc = storage.NativeClient(c.ID, c.RedirectURIs...)
		} else {
			sc = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
		}
		base[c.ID] = sc
		wrapped[c.ID] = personClient{Client: sc, conf: c}
	}
	wc := storage.WebClient(WorkloadClientID, WorkloadClientSecret)
	base[WorkloadClientID] = wc

	key, err := newSigningKey()
	if err != nil {
		t.Fatalf("oidcop: signing key: %v", err)
	}
	p.storage = &opStorage{
		Storage:   storage.NewStorageWithClients(us, base),
		users:     p.users,
		clients:   wrapped,
		workload:  workloadClient{Client: wc},
		workloads: map[string]workloadGrant{},
		key:       key,
	}

	// The issuer is the server's own URL, known only once it listens, so
	// the handler is set after the listener is up.
	var handler http.Handler
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.count(r.URL.Path)
		if p.down.Load() {
			http.Error(w, "provider down for the test", http.StatusServiceUnavailable)
			return
		}
		if cc := p.keysCacheControl.Load(); cc != nil && r.URL.Path == "/keys" {
			w.Header().Set("Cache-Control", *cc)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	quietOnce.Do(func() {
		// The example OP logs every request through slog's default logger;
		// SetupServer can only replace that default, so it is done once per
		// test process, keeping warnings.
		handler = exampleop.SetupServer(p.srv.URL, p.storage,
			slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), false)
	})
	if handler == nil {
		handler = exampleop.SetupServer(p.srv.URL, p.storage, nil, false)
	}
	return p
}

var quietOnce sync.Once

// Issuer is the provider's issuer URL (http://127.0.0.1:<port>, no trailing slash).
func (p *OP) Issuer() string { return p.srv.URL }

// SignIn drives the authorization code flow with PKCE over HTTP as a
// browser would (authorize, the login form, the callback) and redeems the
// code at the token endpoint; it returns the ID token issued to clientID
// for user. Scopes openid, email and profile are asked for.
func (p *OP) SignIn(t testing.TB, clientID, user string) string {
	t.Helper()
	tok, err := p.signIn(clientID, user)
	if err != nil {
		t.Fatalf("oidcop: sign in %s to %s: %v", user, clientID, err)
	}
	return tok
}

func (p *OP) signIn(clientID, username string) (string, error) {
	c, ok := p.clients[clientID]
	if !ok {
		return "", fmt.Errorf("unknown client")
	}
	u, ok := p.users[username]
	if !ok {
		return "", fmt.Errorf("unknown user")
	}
	redirect := strings.Replace(c.RedirectURIs[0], "127.0.0.1/", "127.0.0.1:9/", 1)
	verifier := randomString()
	challenge := sha256.Sum256([]byte(verifier))
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	q := url.Values{
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"response_type":         {"code"},
		"scope":                 {"openid email profile"},
		"state":                 {randomString()},
		"nonce":                 {randomString()},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	loc, err := expectRedirect(browser.Get(p.Issuer() + "/auth?" + q.Encode()))
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	authRequestID := loc.Query().Get("authRequestID")
	if authRequestID == "" {
		return "", fmt.Errorf("authorize redirected to %s, not the login form", loc.Path)
	}
	loc, err = expectRedirect(browser.PostForm(p.Issuer()+"/login/username", url.Values{
		"id": {authRequestID}, "username": {u.Username}, "password": {u.Password},
	}))
	if err != nil {
		return "", fmt.Errorf("login form: %w", err)
	}
	loc, err = expectRedirect(browser.Get(p.resolve(loc)))
	if err != nil {
		return "", fmt.Errorf("authorize callback: %w", err)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", fmt.Errorf("no code in the redirect: %s", loc.Query().Get("error"))
	}
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"client_id": {clientID}, "code_verifier": {verifier},
	}
	var resp struct {
		IDToken string `json:"id_token"`
	}
	if err := p.token(form, clientID, c.Secret, &resp); err != nil {
		return "", err
	}
	if resp.IDToken == "" {
		return "", fmt.Errorf("token response without id_token")
	}
	return resp.IDToken, nil
}

// ApproveDevice completes the device grant for userCode as user, through
// the OP's device pages (user code, login, confirm), the way the person
// would in a browser.
func (p *OP) ApproveDevice(t testing.TB, userCode, user string) {
	t.Helper()
	u, ok := p.users[user]
	if !ok {
		t.Fatalf("oidcop: unknown user %q", user)
	}
	resp, err := http.PostForm(p.Issuer()+"/device/login", url.Values{
		"user_code": {userCode}, "username": {u.Username}, "password": {u.Password},
	})
	if err != nil {
		t.Fatalf("oidcop: device login: %v", err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "user_code" {
			cookie = c
		}
	}
	if resp.StatusCode != http.StatusOK || cookie == nil {
		t.Fatalf("oidcop: device login for %s refused (%d)", user, resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, p.Issuer()+"/device/confirm", strings.NewReader(url.Values{"action": {"allowed"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookie)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("oidcop: device confirm: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Device authorization allowed") {
		t.Fatalf("oidcop: device confirm: %d %s", resp.StatusCode, body)
	}
}

// Authorize plays the browser for a sign-in some client started: it opens
// authorizeURL (the authorization request as the client printed it), fills
// in the login form as user and returns where the OP sends the browser in
// the end, the client's redirect_uri with code and state. The caller
// follows it, as the browser would.
func (p *OP) Authorize(t testing.TB, authorizeURL, user string) *url.URL {
	t.Helper()
	u, ok := p.users[user]
	if !ok {
		t.Fatalf("oidcop: unknown user %q", user)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	loc, err := expectRedirect(browser.Get(authorizeURL))
	if err != nil {
		t.Fatalf("oidcop: authorize: %v", err)
	}
	authRequestID := loc.Query().Get("authRequestID")
	if authRequestID == "" {
		return loc // an error redirect straight back to the client
	}
	loc, err = expectRedirect(browser.PostForm(p.Issuer()+"/login/username", url.Values{
		"id": {authRequestID}, "username": {u.Username}, "password": {u.Password},
	}))
	if err != nil {
		t.Fatalf("oidcop: login form: %v", err)
	}
	loc, err = expectRedirect(browser.Get(p.resolve(loc)))
	if err != nil {
		t.Fatalf("oidcop: authorize callback: %v", err)
	}
	return loc
}

// WorkloadToken returns a JWT the OP signs for a CI-like workload, fetched
// with the client_credentials grant: iss is the OP, aud is audience, sub is
// claims["sub"] (default "repo:example/app:ref:refs/heads/main"), and the
// other claims (repository, ref, environment, workflow...) are added as
// they are. The token lives five minutes.
func (p *OP) WorkloadToken(t testing.TB, audience string, claims map[string]any) string {
	t.Helper()
	sub, _ := claims["sub"].(string)
	if sub == "" {
		sub = "repo:example/app:ref:refs/heads/main"
	}
	extra := map[string]any{}
	for k, v := range claims {
		if k != "sub" {
			extra[k] = v
		}
	}
	grant := "workload:" + randomString()
	p.storage.addWorkload(grant, workloadGrant{subject: sub, audience: audience, claims: extra})
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {grant}}
	if err := p.token(form, WorkloadClientID, WorkloadClientSecret, &resp); err != nil {
		t.Fatalf("oidcop: workload token: %v", err)
	}
	if strings.Count(resp.AccessToken, ".") != 2 {
		t.Fatalf("oidcop: workload token is not a JWT")
	}
	return resp.AccessToken
}

// RotateKey replaces the signing key: tokens issued from now on carry a
// new kid, and the JWKS no longer lists the old key.
func (p *OP) RotateKey(t testing.TB) {
	t.Helper()
	key, err := newSigningKey()
	if err != nil {
		t.Fatalf("oidcop: signing key: %v", err)
	}
	p.storage.mu.Lock()
	p.storage.key = key
	p.storage.mu.Unlock()
}

// SetKeysCacheControl makes the JWKS answer carry Cache-Control cc (as
// providers send max-age); "" sends none.
func (p *OP) SetKeysCacheControl(cc string) { p.keysCacheControl.Store(&cc) }

// Sign returns a JWT with exactly claims, signed (RS256) with the OP's
// current key and naming its kid: what the provider would issue if its
// configuration or a user's attributes put these claims in an ID token
// (an azp of another client, a subject full of control characters). The
// claims are the test's; the signature is the OP's, verifiable through
// its JWKS.
func (p *OP) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	p.storage.mu.Lock()
	key := p.storage.key
	p.storage.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.key, KeyID: key.id}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("oidcop: signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("oidcop: claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("oidcop: sign: %v", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("oidcop: serialize: %v", err)
	}
	return raw
}

// KeyID is the kid of the current signing key.
func (p *OP) KeyID() string {
	p.storage.mu.Lock()
	defer p.storage.mu.Unlock()
	return p.storage.key.id
}

func (p *OP) token(form url.Values, clientID, secret string, into any) error {
	req, _ := http.NewRequest(http.MethodPost, p.Issuer()+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token endpoint: %d %s", resp.StatusCode, body)
	}
	return json.Unmarshal(body, into)
}

func (p *OP) resolve(loc *url.URL) string {
	base, _ := url.Parse(p.Issuer())
	return base.ResolveReference(loc).String()
}

func expectRedirect(resp *http.Response, err error) (*url.URL, error) {
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, fmt.Errorf("status %d, want a redirect: %s", resp.StatusCode, body)
	}
	return resp.Location()
}

func randomString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// opStorage is the example storage with what tests need on top: per-OP
// clients (the example's package-level client list is shared by every OP
// in the process), a groups claim and email in the ID token, a rotatable
// signing key and workload grants.
type opStorage struct {
	*storage.Storage
	users    map[string]User
	clients  map[string]op.Client
	workload workloadClient

	mu        sync.Mutex
	key       *signingKey
	workloads map[string]workloadGrant
}

type workloadGrant struct {
	subject, audience string
	claims            map[string]any
}

func (s *opStorage) addWorkload(scope string, g workloadGrant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workloads[scope] = g
}

func (s *opStorage) grant(scopes []string) (workloadGrant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range scopes {
		if g, ok := s.workloads[sc]; ok {
			return g, true
		}
	}
	return workloadGrant{}, false
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	if id == WorkloadClientID {
		return s.workload, nil
	}
	return nil, fmt.Errorf("client not found")
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.mu.Lock()
	u := s.users[req.GetSubject()]
	s.mu.Unlock()
	if len(u.Groups) > 0 {
		info.AppendClaims("groups", u.Groups)
	}
	for k, v := range u.Claims {
		info.AppendClaims(k, v)
	}
	return nil
}

func (s *opStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if id == WorkloadClientID && secret == WorkloadClientSecret {
		return s.workload, nil
	}
	return s.Storage.ClientCredentials(ctx, id, secret)
}

func (s *opStorage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	if g, ok := s.grant(scopes); ok && id == WorkloadClientID {
		return &oidc.JWTTokenRequest{Subject: g.subject, Audience: []string{g.audience}, Scopes: scopes}, nil
	}
	return s.Storage.ClientCredentialsTokenRequest(ctx, id, scopes)
}

func (s *opStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	if g, ok := s.grant(scopes); ok && clientID == WorkloadClientID {
		return g.claims, nil
	}
	return s.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
}

func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, nil
}

func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet lists only the current key: after RotateKey, a verifier that
// cached the old key must refetch, and tokens signed with the old key no
// longer verify.
func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []op.Key{publicKey{s.key}}, nil
}

// personClient puts userinfo claims (email, email_verified, profile) in the
// ID token, as most IdPs do, and applies the test's lifetime and skew.
type personClient struct {
	*storage.Client
	conf Client
}

func (c personClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c personClient) IDTokenLifetime() time.Duration       { return c.conf.IDTokenLifetime }
func (c personClient) ClockSkew() time.Duration             { return c.conf.ClockSkew }
func (c personClient) IsScopeAllowed(string) bool           { return false }
func (c personClient) GrantTypes() []oidc.GrantType {
	if c.conf.Secret == "" {
		return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
	}
	return c.Client.GrantTypes()
}

// workloadClient gets JWT access tokens by client_credentials, with any
// scope (the scope names the claims WorkloadToken registered).
type workloadClient struct{ *storage.Client }

func (workloadClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (workloadClient) IsScopeAllowed(string) bool          { return true }
func (workloadClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func newSigningKey() (*signingKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &signingKey{id: randomString(), key: k}, nil
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

type userStore struct{ users map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User { return u.users[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	return u.users[name]
}
func (u userStore) ExampleClientID() string { return storage.ServiceUserID }
