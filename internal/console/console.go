// Package console is the web console of the management API, for the
// people in the loop: requesters, approvers, auditors and the on-call who
// revokes. It renders pages on the server (html/template, no inline
// script), signs people in with the company's identity provider, and
// carries out every action through the same management actions, admin
// policy and action lines as the API, with the person as the actor.
//
// JavaScript is needed only for what browsers offer to scripts alone:
// WebAuthn (security keys, for step-up) and copying a secret to the
// clipboard. Both live in static files; the Content-Security-Policy
// allows no other script.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/report"
	"github.com/tokengate/caddy-tokengate/internal/stepup"
	"github.com/tokengate/caddy-tokengate/internal/websession"
	"github.com/tokengate/caddy-tokengate/store"
)

// Actions are the management actions the console offers. The management
// API's service implements them; every one asks the admin policy and
// writes its action line.
type Actions interface {
	Request(ctx context.Context, p manage.Principal, spec lifecycle.Spec) (*store.Request, string, *store.Token, error)
	Approve(ctx context.Context, p manage.Principal, id, reason string) (*store.Request, error)
	Deny(ctx context.Context, p manage.Principal, id, reason string) (*store.Request, error)
	Claim(ctx context.Context, p manage.Principal, id string) (*store.Request, string, *store.Token, error)
	ListRequests(ctx context.Context, p manage.Principal, state string) ([]*store.Request, error)
	GetRequest(ctx context.Context, p manage.Principal, id string) (*store.Request, error)
	Revoke(ctx context.Context, p manage.Principal, id, reason string) (*store.Token, error)
	RotateBecause(ctx context.Context, p manage.Principal, id string, grace time.Duration, reason string) (string, *store.Token, error)
	ListTokens(ctx context.Context, p manage.Principal, f store.Filter, state string) ([]*store.Token, error)
	GetToken(ctx context.Context, p manage.Principal, id string) (*store.Token, error)
	Report(ctx context.Context, p manage.Principal, unusedFor time.Duration) (report.Report, error)
	// StepUpNeeded asks the admin policy whether approving r needs a
	// security key (step_up_required).
	StepUpNeeded(ctx context.Context, p manage.Principal, r *store.Request) (bool, error)
	// MayDecide asks the admin policy whether p may approve r.
	MayDecide(ctx context.Context, p manage.Principal, r *store.Request) (bool, error)
	// ExplainApproval asks why r needs a person and who may decide it.
	ExplainApproval(ctx context.Context, p manage.Principal, r *store.Request) (manage.Approval, error)
}

// Person is who the identity provider says signed in.
type Person struct {
	Principal string
	Groups    []string
	Issuer    string
	Claims    map[string]any
	// Nonce is the ID token's nonce claim, checked against the sign-in.
	Nonce string
}

// Identity is the company's identity provider, as the console uses it:
// the authorization code flow with PKCE.
type Identity interface {
	// AuthCodeURL is where the browser goes to sign in.
	AuthCodeURL(redirect, state, nonce, challenge string) string
	// Exchange swaps the code for a verified person (the ID token checked
	// as for the API: issuer, audience, keys, who may sign in).
	Exchange(ctx context.Context, redirect, code, verifier string) (Person, error)
}

// Config is what the console needs.
type Config struct {
	Actions  Actions
	Sessions *websession.Manager
	Identity Identity
	// StepUp runs WebAuthn for the console's one address. When nil,
	// StepUpStore (if set) makes one per host the console is reached at:
	// a security key belongs to the host name it was registered on. With
	// neither, security keys are off (and with them approvals that need a
	// step-up).
	StepUp      *stepup.Service
	StepUpStore stepup.Store
	Now         func() time.Time
}

// Console serves /console/.
type Console struct {
	cfg   Config
	mux   *http.ServeMux
	pages map[string]*template.Template

	mu     sync.Mutex
	byHost map[string]*stepup.Service
}

// maxRelyingParties bounds the per-host step-up services, so that made-up
// Host headers cannot grow the map without end.
const maxRelyingParties = 16

// stepUp is the WebAuthn relying party for r: the configured one, or one
// for the host r came to (its name the relying party id, its origin the
// only one accepted).
func (c *Console) stepUp(r *http.Request) *stepup.Service {
	if c.cfg.StepUp != nil || c.cfg.StepUpStore == nil {
		return c.cfg.StepUp
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil // WebAuthn refuses IP addresses as relying parties
	}
	scheme := "https"
	if !websession.Secure(r) {
		scheme = "http"
	}
	origin := scheme + "://" + r.Host
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.byHost[origin]; ok {
		return s
	}
	if len(c.byHost) >= maxRelyingParties {
		return nil
	}
	s, err := stepup.New(stepup.Config{RPID: host, Origins: []string{origin}, Now: c.cfg.Now}, c.cfg.StepUpStore)
	if err != nil {
		return nil
	}
	if c.byHost == nil {
		c.byHost = map[string]*stepup.Service{}
	}
	c.byHost[origin] = s
	return s
}

// layoutName is the template every page is rendered in.
const layoutName = "layout.html"

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(layoutName).Funcs(funcs).ParseFS(templateFiles, "templates/"+layoutName, name)
		if err != nil {
			return nil, err
		}
		c.pages[base] = t
	}
	static, _ := fs.Sub(staticFiles, "static")
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console/login", c.login)
	c.mux.HandleFunc("GET "+websession.CallbackPath, c.callback)
	c.mux.HandleFunc("POST /console/logout", c.signedIn(c.logout))
	c.mux.HandleFunc("GET /console/{$}", c.signedIn(c.inbox))
	c.mux.HandleFunc("GET /console/requests/{id}", c.signedIn(c.requestPage))
	c.mux.HandleFunc("POST /console/requests/{id}/decide", c.signedIn(c.decide))
	c.mux.HandleFunc("POST /console/requests/{id}/step-up", c.signedIn(c.beginApprovalStepUp))
	c.mux.HandleFunc("POST /console/requests/{id}/claim", c.signedIn(c.claim))
	c.mux.HandleFunc("GET /console/mine", c.signedIn(c.mine))
	c.mux.HandleFunc("POST /console/mine", c.signedIn(c.ask))
	c.mux.HandleFunc("GET /console/tokens", c.signedIn(c.tokens))
	c.mux.HandleFunc("GET /console/tokens/{id}", c.signedIn(c.tokenPage))
	c.mux.HandleFunc("POST /console/tokens/{id}/revoke", c.signedIn(c.revoke))
	c.mux.HandleFunc("POST /console/tokens/{id}/rotate", c.signedIn(c.rotate))
	c.mux.HandleFunc("GET /console/report", c.signedIn(c.reportPage))
	c.mux.HandleFunc("GET /console/keys", c.signedIn(c.keys))
	c.mux.HandleFunc("POST /console/keys/begin", c.signedIn(c.beginKey))
	c.mux.HandleFunc("POST /console/keys/finish", c.signedIn(c.finishKey))
	c.mux.HandleFunc("POST /console/keys/delete", c.signedIn(c.deleteKey))
	return c, nil
}

// contentSecurityPolicy allows the console's own static script and style
// and nothing else: no inline script, no framing, forms only to itself.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves every console path with the security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/console/static/") {
		// Pages show who holds what; none belongs in a cache.
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// visit is one signed-in request: the person and their session.
type visit struct {
	session *websession.Session
	actor   manage.Principal
}

// signedIn runs h for a person with a live session; others go to sign
// in (pages) or get 401 (anything but a GET). Every POST must carry the
// session's CSRF token for its purpose, on top of the SameSite cookie.
func (c *Console) signedIn(h func(v *visit, w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.cfg.Sessions.Load(r.Context(), r)
		switch {
		case errors.Is(err, websession.ErrNoSession), errors.Is(err, websession.ErrExpired):
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, http.StatusUnauthorized, reason.SigninRequired, "Your session has ended. Sign in again; nothing was done.")
			return
		case err != nil:
			c.fail(w, r, nil, http.StatusServiceUnavailable, reason.StoreUnavailable, "The console cannot reach its store right now; nothing was done.")
			return
		}
		v := &visit{session: s, actor: manage.Principal{Name: s.Principal, Kind: manage.PersonKind, Groups: s.Groups}}
		if r.Method == http.MethodPost && !s.CheckCSRF(csrfPurpose(r), csrfToken(r)) {
			c.fail(w, r, v, http.StatusForbidden, reason.CSRFInvalid, "This form did not come from your console session (or the page is stale). Reload the page and try again; nothing was done.")
			return
		}
		h(v, w, r)
	}
}

// csrfToken is the token a POST carries: in a header from the console's
// script (its JSON calls), else in the form.
func csrfToken(r *http.Request) string {
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		return t
	}
	return r.PostFormValue("csrf")
}

// csrfPurpose ties a CSRF token to the form's own path, so a token taken
// from one form does not post another.
func csrfPurpose(r *http.Request) string { return r.Method + " " + r.URL.Path }

// fail renders an error page with status.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *visit, status int, code, msg string) {
	w.WriteHeader(status)
	c.renderBody(w, r, v, "error", map[string]any{"Status": status, "Code": code, "Message": msg})
}

// refused renders a management action's error: a refusal with its code,
// anything else as the store being unavailable (never its text).
func (c *Console) refused(w http.ResponseWriter, r *http.Request, v *visit, err error) {
	var le *lifecycle.Error
	if errors.As(err, &le) {
		c.fail(w, r, v, le.Class.Status(), le.Code, refusalText(le))
		return
	}
	c.fail(w, r, v, http.StatusServiceUnavailable, reason.StoreUnavailable, "The action could not be carried out right now; nothing was changed. Try again in a moment.")
}

// refusalText is a refusal in words: its message, and every reason.
func refusalText(e *lifecycle.Error) string {
	if len(e.Reasons) > 1 {
		return e.Detail + " (reasons: " + strings.Join(e.Reasons, ", ") + ")"
	}
	return e.Detail
}

// personNeededText says in words why a rule of just-in-time approval did
// not cover a request (the admin policy's person_needed codes).
var personNeededText = map[string]string{
	"write_scope":        "it asks to change data (a scope other than :read)",
	"ttl_over_jit":       "it lives longer than just-in-time access may (1 hour)",
	"unbound":            "it is bound to no address range and no use limit",
	"management_token":   "it is a management token",
	"production_service": "it reaches a production service",
	"requester_unknown":  "the directory does not know who asked",
}

// render writes page with the layout, or a plain 500 when a template
// fails (a programming error, never the data's text).
func (c *Console) render(w http.ResponseWriter, r *http.Request, v *visit, page string, data map[string]any) {
	c.renderBody(w, r, v, page, data)
}

func (c *Console) renderBody(w http.ResponseWriter, r *http.Request, v *visit, page string, data map[string]any) {
	t, ok := c.pages[page]
	if !ok {
		http.Error(w, "console: no page "+page, http.StatusInternalServerError)
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["Page"] = page
	if v != nil {
		data["Viewer"] = v.actor.Name
		data["LogoutCSRF"] = v.session.CSRFToken("POST /console/logout")
		data["csrf"] = func(path string) string { return v.session.CSRFToken("POST " + path) }
	} else {
		data["csrf"] = func(string) string { return "" }
	}
	data["StepUpEnabled"] = c.stepUp(r) != nil
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = t.Execute(w, data)
}

var funcs = template.FuncMap{
	"join": strings.Join,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"duration": func(d time.Duration) string { return d.String() },
	"state":    func(t *store.Token, now time.Time) string { return store.StateOf(t, now) },
	"keyID":    stepup.KeyID,
	"whyPerson": func(code string) string {
		if text, ok := personNeededText[code]; ok {
			return text
		}
		return "the policy's rule " + code
	},
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}
