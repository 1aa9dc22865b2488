package caddymodule

import (
	"encoding/json"
	"fmt"
	"github.com/tokengate/caddy-tokengate/internal/reason"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
)

const openAPIPath = "/v1/openapi.json"

// openAPIDocument is the management API's description as this handler
// serves it: the embedded document with its top-level servers naming the
// site it was fetched from, so that a client generated from it (or a
// "try it" button) calls this gateway rather than an example address.
type openAPIDocument struct {
	fields map[string]json.RawMessage
}

func newOpenAPIDocument() (*openAPIDocument, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(api.OpenAPI, &fields); err != nil {
		return nil, fmt.Errorf("reading the embedded OpenAPI document: %v", err)
	}
	return &openAPIDocument{fields: fields}, nil
}

// serve answers GET or HEAD /v1/openapi.json with the document for r.
func (d *openAPIDocument) serve(w http.ResponseWriter, r *http.Request) {
	fields := make(map[string]any, len(d.fields))
	for k, v := range d.fields {
		fields[k] = v
	}
	fields["servers"] = []map[string]string{{"url": siteURL(r), "description": "the site this document was fetched from"}}
	body, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		// Unreachable: every field is JSON the document was read from.
		mgmtapi.WriteProblem(w, http.StatusServiceUnavailable, reason.OpenAPIUnavailable, "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

// siteURL is the base URL the client used to reach the management API:
// its scheme and Host, and the path before /v1/openapi.json as the client
// sent it (a handle_path in front strips a prefix the client still needs).
// The Host header is the client's own, and the document goes back only to
// that client.
func siteURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := r.URL.Path
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		path = orig.URL.Path
	}
	prefix, _ := strings.CutSuffix(path, openAPIPath)
	return scheme + "://" + r.Host + prefix
}
