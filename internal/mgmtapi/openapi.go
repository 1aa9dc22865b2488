package mgmtapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// OpenAPIPath is where a Site serves the API's description.
const OpenAPIPath = "/v1/openapi.json"

// openAPIDocument is the management API's description as a Site serves
// it: the embedded document with its top-level servers naming the site it
// was fetched from, so that a client generated from it (or a "try it"
// button) calls this gateway rather than an example address.
type openAPIDocument struct {
	fields map[string]json.RawMessage
}

func newOpenAPIDocument() (openAPIDocument, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(api.OpenAPI, &fields); err != nil {
		return openAPIDocument{}, fmt.Errorf("reading the embedded OpenAPI document: %v", err)
	}
	return openAPIDocument{fields: fields}, nil
}

// serve answers GET or HEAD /v1/openapi.json with the document for r;
// sentPath is the path as the client sent it.
func (d openAPIDocument) serve(w http.ResponseWriter, r *http.Request, sentPath string) {
	fields := make(map[string]any, len(d.fields))
	for k, v := range d.fields {
		fields[k] = v
	}
	fields["servers"] = []map[string]string{{"url": siteURL(r, sentPath), "description": "the site this document was fetched from"}}
	body, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		// Unreachable: every field is JSON the document was read from.
		WriteProblem(w, reason.New(reason.OpenAPIUnavailable, ""))
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
func siteURL(r *http.Request, sentPath string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix, _ := strings.CutSuffix(sentPath, OpenAPIPath)
	return scheme + "://" + r.Host + prefix
}
