package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"gopkg.in/yaml.v3"
)

// dig follows keys (strings for maps, ints for lists) into decoded YAML.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// TestKubernetesManifests reads dist/kubernetes/tokengate.yaml (the Helm
// chart rendered with its defaults; CI checks that it still is): the
// Caddyfile in its ConfigMap adapts without warnings into a config with
// the admin endpoint on a 0600 unix socket, metrics on a site of their
// own, the management API, and secrets as {env.*} placeholders only; the
// Deployment probes /healthz and /readyz on the management port and takes
// the DSN and pepper from a Secret; a PodDisruptionBudget keeps a pod.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "dist", "kubernetes", "tokengate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the manifests do not parse: %v", err)
		}
		if doc != nil {
			docs[fmt.Sprint(doc["kind"])] = doc
		}
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} {
		if docs[kind] == nil {
			t.Fatalf("no %s in the manifests", kind)
		}
	}

	src, _ := dig(docs["ConfigMap"], "data", "Caddyfile").(string)
	if strings.Contains(src, "{$") {
		t.Errorf("the Caddyfile expands {$...} at parse time, which puts values into GET /config/:\n%s", src)
	}
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	cfg, warnings, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("the chart's Caddyfile does not adapt: %v\n%s", err, src)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	for _, want := range []string{
		`"admin":{"listen":"unix//run/caddy/admin.sock|0600"`,
		`"handler":"metrics"`, `"handler":"tokengate_admin"`, `"handler":"tokengate"`,
		`"dsn":"{env.TOKENGATE_POSTGRES_DSN}"`, `"pepper":"{env.TOKENGATE_PEPPER}"`,
		`"listen":[":8081"]`, `"listen":[":9180"]`,
	} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("the adapted config lacks %s:\n%s", want, cfg)
		}
	}

	container := dig(docs["Deployment"], "spec", "template", "spec", "containers", 0)
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := dig(container, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %v, want %s", probe, got, path)
		}
		if got := dig(container, probe, "httpGet", "port"); got != "management" {
			t.Errorf("%s port %v, want management", probe, got)
		}
	}
	ports := map[string]any{}
	for i := 0; dig(container, "ports", i) != nil; i++ {
		ports[fmt.Sprint(dig(container, "ports", i, "name"))] = dig(container, "ports", i, "containerPort")
	}
	if ports["management"] != 8081 || ports["metrics"] != 9180 {
		t.Errorf("container ports %v, want management 8081 and metrics 9180 as in the Caddyfile", ports)
	}
	secretEnv := map[string]bool{}
	for i := 0; dig(container, "env", i) != nil; i++ {
		if dig(container, "env", i, "valueFrom", "secretKeyRef", "name") != nil {
			secretEnv[fmt.Sprint(dig(container, "env", i, "name"))] = true
		}
	}
	if !secretEnv["TOKENGATE_POSTGRES_DSN"] || !secretEnv["TOKENGATE_PEPPER"] {
		t.Errorf("env from Secrets: %v, want TOKENGATE_POSTGRES_DSN and TOKENGATE_PEPPER", secretEnv)
	}
	if got := dig(docs["PodDisruptionBudget"], "spec", "minAvailable"); got != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", got)
	}
}
