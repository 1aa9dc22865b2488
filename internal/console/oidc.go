package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tokengate/caddy-tokengate/internal/identity"
)

// Verifier checks an ID token as the management API does.
type Verifier interface {
	Verify(ctx context.Context, raw string) (identity.Identity, error)
}

// OIDC is the company's provider for the console: its endpoints from
// discovery, the code exchange with PKCE, and the ID token checked by the
// API's own verifier, so the console lets in exactly whom the API does
// (issuer, audience, keys, algorithms, who may sign in).
type OIDC struct {
	Issuer   string
	ClientID string
	// ClientSecret, when the provider treats the console as a
	// confidential client; empty for the public client the CLI uses.
	ClientSecret string
	Verifier     Verifier
	// HTTPClient reaches the provider; nil is http.DefaultClient.
	HTTPClient *http.Client

	mu       sync.Mutex
	endpoint *oauth2.Endpoint
}

func (o *OIDC) context(ctx context.Context) context.Context {
	if o.HTTPClient == nil {
		return ctx
	}
	return context.WithValue(oidc.ClientContext(ctx, o.HTTPClient), oauth2.HTTPClient, o.HTTPClient)
}

// config discovers the provider's endpoints once; a failed discovery is
// tried again on the next sign-in.
func (o *OIDC) config(ctx context.Context, redirect string) (*oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.endpoint == nil {
		p, err := oidc.NewProvider(o.context(ctx), o.Issuer)
		if err != nil {
			return nil, fmt.Errorf("discovering %s: %w", o.Issuer, err)
		}
		ep := p.Endpoint()
		if o.ClientSecret == "" {
			ep.AuthStyle = oauth2.AuthStyleInParams // a public client: the id in the form, no secret
		}
		o.endpoint = &ep
	}
	return &oauth2.Config{
		ClientID:     o.ClientID,
		ClientSecret: o.ClientSecret,
		Endpoint:     *o.endpoint,
		RedirectURL:  redirect,
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
	}, nil
}

// AuthCodeURL is the authorization request: code flow, S256 PKCE, state
// and nonce. When discovery fails the browser is sent to a page that says
// so rather than to a broken address.
func (o *OIDC) AuthCodeURL(redirect, state, nonce, challenge string) string {
	conf, err := o.config(context.Background(), redirect)
	if err != nil {
		return "/console/callback?error=provider_unreachable&state=" + state
	}
	return conf.AuthCodeURL(state, oidc.Nonce(nonce),
		oauth2.SetAuthURLParam("code_challenge", challenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"))
}

// Exchange redeems the code and verifies the ID token.
func (o *OIDC) Exchange(ctx context.Context, redirect, code, verifier string) (Person, error) {
	if code == "" {
		return Person{}, errors.New("the provider sent no code")
	}
	conf, err := o.config(ctx, redirect)
	if err != nil {
		return Person{}, err
	}
	tok, err := conf.Exchange(o.context(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Person{}, fmt.Errorf("redeeming the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Person{}, errors.New("the provider answered without an ID token")
	}
	id, err := o.Verifier.Verify(ctx, raw)
	if err != nil {
		return Person{}, err
	}
	nonce, _ := id.Claims["nonce"].(string)
	return Person{Principal: id.Principal, Groups: id.Groups, Issuer: id.Issuer, Claims: id.Claims, Nonce: nonce}, nil
}
