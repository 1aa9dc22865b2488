package mgmtapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/internal/token"
)

// People on the management API: when the node has an oidc issuer, a
// bearer credential that is not a tokengate secret is taken for a
// person's ID token and verified against that issuer. The two kinds never
// overlap: every tokengate secret starts with token.Prefix, which no JWT
// does.

// ByCredential picks the Authenticator by the kind of credential: a
// person's ID token (Person) or, for anything else, Token, which refuses
// what it cannot use. Header is the management token's header; ID tokens
// come only in Authorization.
type ByCredential struct {
	Header string
	Person Authenticator
	Token  Authenticator
}

// Authenticate hands the call to the authenticator of its credential.
func (b ByCredential) Authenticate(w http.ResponseWriter, r *http.Request, a *Attempt) (manage.Principal, bool, error) {
	if a.Node.People != nil && b.Header == "Authorization" && idTokenIn(r) {
		return b.Person.Authenticate(w, r, a)
	}
	return b.Token.Authenticate(w, r, a)
}

// idTokenIn reports whether r's credential is to be verified as an ID
// token: Authorization carries exactly one Bearer credential, and it is
// not a tokengate secret.
func idTokenIn(r *http.Request) bool {
	_, ok := bearerIDToken(r)
	return ok
}

func bearerIDToken(r *http.Request) (string, bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, credential, _ := strings.Cut(values[0], " ")
	credential = strings.TrimSpace(credential)
	if !strings.EqualFold(scheme, "Bearer") || credential == "" || strings.HasPrefix(credential, token.Prefix) {
		return "", false
	}
	return credential, true
}

// maxIDTokenLen bounds a bearer ID token; real ones are one to a few KiB.
const maxIDTokenLen = 16 << 10

// idTokenChallenge is the WWW-Authenticate of a refused ID token (RFC 6750).
const idTokenChallenge = `Bearer realm="tokengate", error="invalid_token"`

// Person authenticates people by their ID tokens. A refused ID token gets
// 401 problem details with the identity reason and a WWW-Authenticate
// challenge; an unreachable issuer 503 (fail closed). The token is never
// logged or echoed.
type Person struct{}

// Authenticate verifies the bearer ID token and returns its person.
func (Person) Authenticate(w http.ResponseWriter, r *http.Request, a *Attempt) (manage.Principal, bool, error) {
	node, line := a.Node, a.Line
	unavailable := func(code string) (manage.Principal, bool, error) {
		// Whatever the code (an audit hold's too), we failed closed: 503.
		rf := &reason.Refusal{Code: code, Class: reason.Unavailable}
		line.Decision, line.Reasons, line.Status = gateway.Error, []string{code}, rf.Class.Status()
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, rf)
		return manage.Principal{}, false, nil
	}
	deny := func(rf *reason.Refusal) (manage.Principal, bool, error) {
		line.Decision, line.Reasons, line.Status = gateway.Deny, []string{rf.Code}, rf.Class.Status()
		if line.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", idTokenChallenge)
		}
		WriteProblem(w, rf)
		return manage.Principal{}, false, nil
	}
	raw, _ := bearerIDToken(r)
	if len(raw) > maxIDTokenLen {
		return deny(reason.New(identity.ReasonMalformed, "the bearer credential is too long for an ID token"))
	}
	id, err := node.People.Verify(r.Context(), raw)
	if err != nil {
		var refusal *identity.Refusal
		if !errors.As(err, &refusal) || refusal.Unavailable() {
			// The issuer's discovery or keys could not be fetched: the
			// token may be fine, so this is ours to retry, not a 401.
			if node.unreachable.allow(node.Now()) {
				node.Logger.Warn("ID tokens not verified: identity provider unreachable (warned once a minute; every refused call has its audit line)",
					zap.String("issuer", node.People.Issuer()), zap.String("request_id", line.RequestID), zap.Error(err))
			}
			return unavailable(identity.ReasonIssuerUnavailable)
		}
		return deny(refusal)
	}
	// Audit fails closed for people as for tokens.
	if hold := node.AuditHold(); hold != "" {
		return unavailable(hold)
	}
	person := manage.Principal{Name: id.Principal, Kind: manage.PersonKind, Groups: id.Groups, Claims: id.Claims, Issuer: id.Issuer}
	// A sign-in with other groups than before refreshes the groups
	// recorded on the management tokens the person holds; if that fails,
	// nothing is served (a token would keep groups the IdP took away).
	if node.groups.changed(person.Name, person.Groups) {
		if _, err := node.Manage.RefreshGroups(r.Context(), person); err != nil {
			node.groups.forget(person.Name)
			node.Logger.Error("refreshing the groups on a person's management tokens", zap.String("request_id", line.RequestID), zap.Error(err))
			return unavailable(reason.StoreUnavailable)
		}
	}
	line.Actor = id.Principal
	r.Header.Del("Authorization")
	return person, true, nil
}

// warnLimiter lets one warning a minute through: while an identity
// provider is down every ID token call fails, and one warning a minute
// says so without drowning the log.
type warnLimiter struct {
	mu   sync.Mutex
	last time.Time
}

func (l *warnLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < time.Minute {
		return false
	}
	l.last = now
	return true
}

// groupsSeen remembers, per person, the groups their last ID token on this
// node carried, so that their management tokens' recorded groups are
// refreshed (manage.RefreshGroups, a look through the management tokens)
// only when a sign-in brings groups that differ, not on every call.
type groupsSeen struct {
	mu     sync.Mutex
	groups map[string]string
}

// maxPeopleSeen bounds the memory; past it the memory starts over, which
// costs one more refresh per person, never a missed one.
const maxPeopleSeen = 10000

// changed reports whether principal's groups differ from those last seen,
// and remembers them. A refresh that fails must call forget, so the next
// call tries again.
func (g *groupsSeen) changed(principal string, groups []string) bool {
	key := groupsKey(groups)
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.groups[principal]; ok && last == key {
		return false
	}
	if g.groups == nil || len(g.groups) >= maxPeopleSeen {
		g.groups = map[string]string{}
	}
	g.groups[principal] = key
	return true
}

func (g *groupsSeen) forget(principal string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.groups, principal)
}

// groupsKey is groups as a set, case-insensitively, as the policy reads it.
func groupsKey(groups []string) string {
	lower := make([]string, len(groups))
	for i, g := range groups {
		lower[i] = strings.ToLower(g)
	}
	slices.Sort(lower)
	return strings.Join(slices.Compact(lower), "\x00")
}
