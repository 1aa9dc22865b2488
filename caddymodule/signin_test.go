package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/testutil/oidcop"
)

// The CLI's login asks the management API, before it holds any
// credential, which issuer and client id people sign in with.
func TestSignInConfigIsServedWithoutACredential(t *testing.T) {
	t.Parallel()
	oa := loadOpenAPI(t)
	e := newEnv(t, envOptions{})

	// Without an oidc issuer there is no sign-in, and the answer says so.
	r := call(t, "GET", e.mgmtURL+"/v1/auth/oidc")
	if r.status != http.StatusNotFound || r.reason != "signin_not_configured" || r.header.Get("Content-Type") != api.ProblemType {
		t.Fatalf("without oidc: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	oa.check("GET", "/v1/auth/oidc", r)
	_, err := api.NewRemote(e.mgmtURL, "").SignInConfig(context.Background())
	if api.Reason(err) != "signin_not_configured" {
		t.Fatalf("client without oidc: %v", err)
	}

	op := oidcop.Start(t, oidcop.Options{})
	newEnvReusing(e, envOptions{appOptions: "oidc " + op.Issuer() + " {\n\t\t\taudience " + oidcop.CLIClientID + "\n\t\t}"})
	r = call(t, "GET", e.mgmtURL+"/v1/auth/oidc")
	if r.status != http.StatusOK {
		t.Fatalf("with oidc: %d %s", r.status, r.body)
	}
	oa.check("GET", "/v1/auth/oidc", r)
	var got api.SignInConfig
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Issuer != op.Issuer() || got.ClientID != oidcop.CLIClientID || !slices.Contains(got.Scopes, "openid") || !slices.Contains(got.Scopes, "offline_access") {
		t.Fatalf("sign-in config %+v", got)
	}
	viaClient, err := api.NewRemote(e.mgmtURL, "").SignInConfig(context.Background())
	if err != nil || viaClient.Issuer != got.Issuer || viaClient.ClientID != got.ClientID {
		t.Fatalf("client: %+v %v", viaClient, err)
	}

	// Only reading is served; anything else is refused before any
	// credential is looked at, with the methods that are served.
	r = call(t, "POST", e.mgmtURL+"/v1/auth/oidc")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" || r.reason != "method_not_allowed" {
		t.Fatalf("POST: %d %v %s", r.status, r.header, r.body)
	}
	oa.check("POST", "/v1/auth/oidc", r)

	// The rest of the API still wants a credential.
	if r := call(t, "GET", e.mgmtURL+"/v1/tokens"); r.status != http.StatusUnauthorized {
		t.Fatalf("GET /v1/tokens without a credential: %d", r.status)
	}
}
