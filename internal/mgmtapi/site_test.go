package mgmtapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// siteWithoutNode is a Site whose API has no running node, and no console:
// every call that reaches the routes is refused 503.
func siteWithoutNode(t *testing.T, sentPath func(*http.Request) string) *Site {
	t.Helper()
	s, err := NewSite(SiteOptions{Node: func() *Node { return nil }, SentPath: sentPath})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) api.ErrorBody {
	t.Helper()
	var p api.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if p.Status != rec.Code {
		t.Errorf("problem says status %d, the answer is %d", p.Status, rec.Code)
	}
	return p
}

func TestSiteRoutesEachPathToItsPart(t *testing.T) {
	s := siteWithoutNode(t, func(r *http.Request) string { return "/gateway" + r.URL.Path })
	serve := func(method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		if err := s.ServeHTTP(rec, httptest.NewRequest(method, target, nil)); err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		return rec
	}

	for _, path := range []string{"/console", "/console/", "/console/requests"} {
		rec := serve(http.MethodGet, path)
		if p := problemOf(t, rec); rec.Code != http.StatusNotFound || p.Reason != reason.ConsoleUnavailable {
			t.Errorf("GET %s without a console: %d %q", path, rec.Code, p.Reason)
		}
	}

	rec := serve(http.MethodGet, "https://gw.example.com"+OpenAPIPath)
	var doc struct {
		Servers []struct{ URL string } `json:"servers"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("GET %s: %d %v", OpenAPIPath, rec.Code, err)
	}
	// The prefix a rewrite in front stripped is part of the address.
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://gw.example.com/gateway" {
		t.Errorf("servers = %+v, want the site it was fetched from", doc.Servers)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// Anything else, the description's path with another method included,
	// goes to the routes, which have no node here.
	for _, c := range []struct{ method, path string }{{http.MethodPost, OpenAPIPath}, {http.MethodGet, "/v1/tokens"}, {http.MethodGet, "/consoles"}} {
		rec := serve(c.method, c.path)
		if p := problemOf(t, rec); rec.Code != http.StatusServiceUnavailable || p.Reason != reason.TokengateNotRunning {
			t.Errorf("%s %s: %d %q, want the routes' 503", c.method, c.path, rec.Code, p.Reason)
		}
	}
}

func TestWriteJSONFallsBackToADeclared500(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteJSON(rec, http.StatusOK, map[string]any{"unencodable": make(chan int)})
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusInternalServerError || body["reason"] != reason.EncodingFailed {
		t.Errorf("got %d %v", rec.Code, body)
	}
	if c := reason.DeclaredClass(reason.EncodingFailed); c != reason.Internal {
		t.Errorf("encoding_failed is declared in class %d, want Internal", c)
	}
}

func TestCredentialHeader(t *testing.T) {
	for option, want := range map[string]string{"": "Authorization", "authorization": "Authorization", "x-admin-token": "X-Admin-Token"} {
		if got := CredentialHeader(option); got != want {
			t.Errorf("CredentialHeader(%q) = %q, want %q", option, got, want)
		}
	}
}
