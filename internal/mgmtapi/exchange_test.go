package mgmtapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
)

// goodExchange is a well-formed exchange request; cases change one thing.
func goodExchange() url.Values {
	return url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {"eyJ.SUBJECT-TOKEN.sig"},
		"subject_token_type": {tokenTypeJWT},
		"scope":              {"billing:read"},
		"audience":           {"billing"},
	}
}

func TestParseExchange(t *testing.T) {
	with := func(change func(url.Values)) string {
		f := goodExchange()
		change(f)
		return f.Encode()
	}
	cases := []struct {
		name, contentType, query, body string
		code, reason                   string
	}{
		{"json body", "application/json", "", `{"grant_type":"x"}`, "invalid_request", "content_type_invalid"},
		{"no content type", "", "", goodExchange().Encode(), "invalid_request", "content_type_invalid"},
		{"latin-1 form", formMediaType + "; charset=iso-8859-1", "", goodExchange().Encode(), "invalid_request", "content_type_invalid"},
		{"parameters in the URL", formMediaType, "subject_token=eyJ.SUBJECT-TOKEN.sig", goodExchange().Encode(), "invalid_request", "query_not_allowed"},
		{"body too large", formMediaType, "", goodExchange().Encode() + "&pad=" + strings.Repeat("a", maxExchangeBodySize), "invalid_request", "body_too_large"},
		{"bad escape", formMediaType, "", goodExchange().Encode() + "&x=%zz", "invalid_request", "body_invalid"},
		{"not UTF-8", formMediaType, "", goodExchange().Encode() + "&x=%ff", "invalid_request", "body_invalid"},
		{"scope twice", formMediaType, "", goodExchange().Encode() + "&scope=billing%3Awrite", "invalid_request", "parameter_repeated"},
		{"subject token twice", formMediaType, "", goodExchange().Encode() + "&subject_token=other", "invalid_request", "parameter_repeated"},
		{"no grant_type", formMediaType, "", with(func(f url.Values) { f.Del("grant_type") }), "invalid_request", "grant_type_missing"},
		{"other grant", formMediaType, "", with(func(f url.Values) { f.Set("grant_type", "client_credentials") }), "unsupported_grant_type", "grant_type_unsupported"},
		{"delegation", formMediaType, "", with(func(f url.Values) { f.Set("actor_token", "eyJ.ACTOR.sig") }), "invalid_request", "actor_token_unsupported"},
		{"no subject token", formMediaType, "", with(func(f url.Values) { f.Del("subject_token") }), "invalid_request", "subject_token_missing"},
		{"empty subject token", formMediaType, "", with(func(f url.Values) { f.Set("subject_token", "") }), "invalid_request", "subject_token_missing"},
		{"no subject token type", formMediaType, "", with(func(f url.Values) { f.Del("subject_token_type") }), "invalid_request", "subject_token_type_missing"},
		{"SAML subject token", formMediaType, "", with(func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2") }), "invalid_request", "subject_token_type_unsupported"},
		{"refresh token asked for", formMediaType, "", with(func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }), "invalid_request", "requested_token_type_unsupported"},
		{"resource URI", formMediaType, "", with(func(f url.Values) { f.Set("resource", "https://billing.example.com/") }), "invalid_target", "resource_unsupported"},
		{"no audience", formMediaType, "", with(func(f url.Values) { f.Del("audience") }), "invalid_request", "audience_missing"},
		{"two audiences", formMediaType, "", with(func(f url.Values) { f.Add("audience", "search") }), "invalid_target", "audience_multiple"},
		{"no scope", formMediaType, "", with(func(f url.Values) { f.Del("scope") }), "invalid_request", "scope_missing"},
		{"double space in scope", formMediaType, "", with(func(f url.Values) { f.Set("scope", "billing:read  billing:write") }), "invalid_scope", "scope_invalid"},
		{"trailing space in scope", formMediaType, "", with(func(f url.Values) { f.Set("scope", "billing:read ") }), "invalid_scope", "scope_invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, ExchangePath+"?"+c.query, strings.NewReader(c.body))
			if c.query == "" {
				r.URL.RawQuery = ""
			}
			if c.contentType != "" {
				r.Header.Set("Content-Type", c.contentType)
			}
			_, bad := parseExchange(r)
			if bad == nil || bad.status != http.StatusBadRequest || bad.code != c.code || bad.reason != c.reason {
				t.Fatalf("got %+v, want 400 %s %s", bad, c.code, c.reason)
			}
			if bad.desc == "" || strings.Contains(bad.desc, "SUBJECT-TOKEN") || strings.Contains(bad.desc, "ACTOR") {
				t.Errorf("description %q: empty or echoes a token", bad.desc)
			}
		})
	}
}

func TestParseExchangeAcceptsTheRFCForm(t *testing.T) {
	f := goodExchange()
	f.Set("subject_token_type", tokenTypeIDToken)
	f.Set("requested_token_type", tokenTypeAccess)
	f.Set("scope", "billing:read billing:write")
	f.Set("client_id", "ci") // unknown parameters are ignored (RFC 6749 section 3.2)
	r := httptest.NewRequest(http.MethodPost, ExchangePath, strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", formMediaType+"; charset=UTF-8")
	ask, bad := parseExchange(r)
	if bad != nil {
		t.Fatal(bad)
	}
	if ask.subjectToken != "eyJ.SUBJECT-TOKEN.sig" || ask.service != "billing" || !slices.Equal(ask.scopes, []string{"billing:read", "billing:write"}) {
		t.Fatalf("parsed %+v", ask)
	}
}

// The error description keeps to what RFC 6749 section 5.2 allows.
func TestOAuthErrorDescriptionIsPlainASCII(t *testing.T) {
	w := httptest.NewRecorder()
	writeOAuthError(w, badExchange("invalid_scope", "scope_invalid", `scope "bïlling\read" is not of the form`))
	var body api.OAuthError
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	for _, r := range body.Description {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Fatalf("error_description %q holds %q", body.Description, r)
		}
	}
	if w.Code != 400 || w.Header().Get("Cache-Control") != "no-store" || body.Error != "invalid_scope" || body.Reason != "scope_invalid" {
		t.Fatalf("answer %d %v %+v", w.Code, w.Header(), body)
	}
}
