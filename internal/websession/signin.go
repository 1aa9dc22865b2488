package websession

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"time"
)

// The sign-in ceremony (authorization code flow with PKCE) needs three
// values to survive the trip to the identity provider and back: state,
// nonce and the PKCE verifier. The return is a cross-site navigation, so a
// SameSite=Strict cookie would not come back with it; and it may land on
// another node, so node memory will not do either. One random value in a
// short-lived SameSite=Lax cookie, limited to the callback's path, carries
// all three: the verifier is the value itself, state and nonce are hashes
// of it. Nothing is stored, no key is shared between nodes, and someone
// who sees the state or the nonce (both pass through the browser's
// address bar and the provider) learns nothing that finishes the flow.
const (
	signinCookie = "tokengate_console_signin"
	// CallbackPath is where the provider sends the browser back.
	CallbackPath = "/console/callback"
	signinMaxAge = 10 * time.Minute
)

// SignIn is one sign-in attempt's values.
type SignIn struct {
	State, Nonce string
	// Verifier is the PKCE code verifier, sent with the code exchange;
	// Challenge (S256 of it) goes in the authorization request.
	Verifier, Challenge string
}

func derive(v string) SignIn {
	b64 := base64.RawURLEncoding
	state := sha256.Sum256([]byte("tokengate console state\x00" + v))
	nonce := sha256.Sum256([]byte("tokengate console nonce\x00" + v))
	challenge := sha256.Sum256([]byte(v))
	return SignIn{
		State:     b64.EncodeToString(state[:]),
		Nonce:     b64.EncodeToString(nonce[:]),
		Verifier:  v,
		Challenge: b64.EncodeToString(challenge[:]),
	}
}

// BeginSignIn sets the attempt's cookie and returns its values for the
// authorization request.
func BeginSignIn(w http.ResponseWriter, r *http.Request) SignIn {
	// 32 random bytes, base64url: 43 characters, within PKCE's 43-128.
	raw := make([]byte, 32)
	rand.Read(raw)
	v := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{
		Name:     signinCookie,
		Value:    v,
		Path:     CallbackPath,
		MaxAge:   int(signinMaxAge / time.Second),
		HttpOnly: true,
		Secure:   Secure(r),
		SameSite: http.SameSiteLaxMode,
	})
	return derive(v)
}

// ErrSignInState: the callback's state is not the one this browser's
// attempt made (a forged or stale callback, or cookies lost on the way).
var ErrSignInState = errors.New("this sign-in was not started in this browser, or it took longer than 10 minutes; start again")

// FinishSignIn checks the callback's state against the browser's attempt
// and returns the attempt's values, clearing its cookie. A callback that
// does not match leaves the attempt alone: a forged link someone else
// sends the browser to cannot cancel a sign-in under way.
func FinishSignIn(w http.ResponseWriter, r *http.Request) (SignIn, error) {
	c, err := r.Cookie(signinCookie)
	if err != nil || len(c.Value) != 43 {
		return SignIn{}, ErrSignInState
	}
	s := derive(c.Value)
	if subtle.ConstantTimeCompare([]byte(s.State), []byte(r.URL.Query().Get("state"))) != 1 {
		return SignIn{}, ErrSignInState
	}
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: "", Path: CallbackPath, MaxAge: -1, HttpOnly: true, Secure: Secure(r), SameSite: http.SameSiteLaxMode})
	return s, nil
}
