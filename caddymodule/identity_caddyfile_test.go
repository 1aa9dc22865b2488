package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestIdentityCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		input   string
		want    string
		wantErr string
	}{
		{input: "tokengate {\n oidc https://login.example.com/ {\n audience tokengate\n principal_claim email\n groups_claim roles\n max_age 8h\n algorithms RS256 ES256\n }\n}",
			want: `{"oidc":{"issuer":"https://login.example.com/","audience":"tokengate","principal_claim":"email","groups_claim":"roles","max_age":"8h0m0s","algorithms":["RS256","ES256"]}}`},
		{input: "tokengate {\n oidc https://login.example.com {\n audience tokengate\n }\n}",
			want: `{"oidc":{"issuer":"https://login.example.com","audience":"tokengate"}}`},
		{input: "tokengate {\n workload github https://token.actions.githubusercontent.com {\n audience https://gw.example.com\n }\n workload gitlab https://gitlab.com {\n audience gw\n principal_claim project_path\n algorithms RS256\n }\n}",
			want: `{"workloads":[{"name":"github","issuer":"https://token.actions.githubusercontent.com","audience":"https://gw.example.com"},{"name":"gitlab","issuer":"https://gitlab.com","audience":"gw","principal_claim":"project_path","algorithms":["RS256"]}]}`},
		{input: "tokengate {\n oidc https://login.example.com\n}", wantErr: "needs an audience"},
		{input: "tokengate {\n oidc {\n audience x\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n oidc https://a {\n audience x\n }\n oidc https://b {\n audience y\n }\n}", wantErr: "oidc is set twice"},
		{input: "tokengate {\n oidc https://a {\n audience x\n client_secret s\n }\n}", wantErr: `unrecognized oidc subdirective "client_secret"`},
		{input: "tokengate {\n oidc https://a {\n audience x\n max_age forever\n }\n}", wantErr: "not a positive duration"},
		{input: "tokengate {\n oidc https://a {\n audience x\n algorithms\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n workload https://token.actions.githubusercontent.com {\n audience x\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n workload github https://a {\n }\n}", wantErr: "needs an audience"},
		{input: "tokengate {\n workload github https://a {\n audience x\n groups_claim g\n }\n}", wantErr: `unrecognized workload subdirective "groups_claim"`},
		{input: "tokengate {\n workload github https://a {\n audience x\n }\n workload github https://b {\n audience y\n }\n}", wantErr: "defined twice"},
	}
	for _, c := range cases {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err = %v, want %q", c.input, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.input, err)
			continue
		}
		if got, _ := json.Marshal(&a); string(got) != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.input, got, c.want)
		}
	}
}
