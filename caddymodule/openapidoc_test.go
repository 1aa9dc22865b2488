package caddymodule

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/notify"
)

// sameDocumentBut reports whether two JSON objects are equal except for
// the top-level field skip.
func sameDocumentBut(skip string, a, b []byte) bool {
	var da, db map[string]any
	if json.Unmarshal(a, &da) != nil || json.Unmarshal(b, &db) != nil {
		return false
	}
	delete(da, skip)
	delete(db, skip)
	return reflect.DeepEqual(da, db)
}

// The served description names the site it was fetched from as its
// server, so that a client generated from it calls this gateway: the
// address the client used, its Host header included, never the example
// address of the file in the repository.
func TestServedOpenAPINamesTheSiteItCameFrom(t *testing.T) {
	t.Parallel()
	// bootstrap writes the audit lines every e2e test is checked for.
	e := newEnv(t, envOptions{})
	e.bootstrap()
	serversOf := func(host string) []any {
		t.Helper()
		req, err := http.NewRequest("GET", e.mgmtURL+"/v1/openapi.json", nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/openapi.json: %d %v", resp.StatusCode, err)
		}
		servers, _ := doc["servers"].([]any)
		return servers
	}
	for host, want := range map[string]string{"": e.mgmtURL, "gw.example.com:8443": "http://gw.example.com:8443"} {
		servers := serversOf(host)
		if len(servers) != 1 || servers[0].(map[string]any)["url"] != want {
			t.Errorf("Host %q: servers %v, want one with url %s", host, servers, want)
		}
	}

	var file map[string]any
	if err := json.Unmarshal(api.OpenAPI, &file); err != nil {
		t.Fatal(err)
	}
	server := file["servers"].([]any)[0].(map[string]any)
	if server["url"] != "{scheme}://{host}" || !maps.Equal(keys(server["variables"]), map[string]bool{"scheme": true, "host": true}) {
		t.Errorf("api/openapi.json's server is not a template of scheme and host: %v", server)
	}
}

func keys(v any) map[string]bool {
	m, _ := v.(map[string]any)
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// checkAgainstOpenAPI checks every delivery the receiver got against the
// document's webhooks section with kin-openapi: an entry for its type,
// each required header present, and the body valid against the entry's
// schema.
func (h *hookReceiver) checkAgainstOpenAPI(t *testing.T) {
	t.Helper()
	o := loadOpenAPI(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bodies) == 0 {
		t.Fatal("no delivery to check")
	}
	for i, body := range h.bodies {
		typ := h.events[i].Type
		item := o.doc.Webhooks[typ]
		if item == nil || item.Post == nil {
			t.Errorf("%s: not in the OpenAPI document's webhooks", typ)
			continue
		}
		for _, p := range item.Post.Parameters {
			if p.Value.In == openapi3.ParameterInHeader && p.Value.Required && h.headers[i].Get(p.Value.Name) == "" {
				t.Errorf("%s: delivery without the described header %s", typ, p.Value.Name)
			}
		}
		var value any
		if err := json.Unmarshal([]byte(body), &value); err != nil {
			t.Fatal(err)
		}
		schema := item.Post.RequestBody.Value.Content.Get("application/json").Schema.Value
		if err := schema.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("%s delivery does not match the OpenAPI schema: %v\n%s", typ, err, body)
		}
	}
}

// Every event type notify sends is described under webhooks, and the
// event schema's enum lists exactly those types.
func TestOpenAPIDescribesEveryWebhookEvent(t *testing.T) {
	t.Parallel()
	o := loadOpenAPI(t)
	var enum []string
	for _, v := range o.doc.Components.Schemas["WebhookEvent"].Value.Properties["type"].Value.Enum {
		enum = append(enum, v.(string))
	}
	if !slices.Equal(enum, notify.Types) || len(o.doc.Webhooks) != len(notify.Types) {
		t.Errorf("WebhookEvent.type enum %v and webhooks %v, want %v", enum, slices.Collect(maps.Keys(o.doc.Webhooks)), notify.Types)
	}
	for _, typ := range notify.Types {
		if o.doc.Webhooks[typ] == nil {
			t.Errorf("webhooks has no %s", typ)
		}
	}
}
