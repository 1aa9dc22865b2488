package memstore

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

// The in-memory store passes tokengate's public conformance suite. It has
// no durability to prove, so Reopen is nil.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(*testing.T) store.Backend { return New() },
	})
}

// The module parses its own Caddyfile tokens inside tokengate's global
// option, which knows nothing about it.
func TestCaddyfile(t *testing.T) {
	for _, c := range []struct{ input, want, wantErr string }{
		{input: "tokengate {\n store memory demo\n}", want: `{"backend":"memory","name":"demo"}`},
		{input: "tokengate {\n store memory\n}", want: `{"backend":"memory"}`},
		{input: "tokengate {\n store memory a b\n}", wantErr: "wrong argument count"},
	} {
		adapter := caddyconfig.GetAdapter("caddyfile")
		out, _, err := adapter.Adapt([]byte("{\n"+c.input+"\n}\n"), nil)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err %v, want %q", c.input, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.input, err)
		}
		var cfg struct {
			Apps struct {
				Tokengate struct {
					Store json.RawMessage `json:"store"`
				} `json:"tokengate"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		if got := string(cfg.Apps.Tokengate.Store); got != c.want {
			t.Errorf("%q: store %s, want %s", c.input, got, c.want)
		}
	}
}

// Caddy runs a tokengate app on the memory store, and a reload keeps the
// same data set (one store per name).
func TestRunsInCaddy(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg := []byte(`{"admin":{"disabled":true},"apps":{"tokengate":{"store":{"backend":"memory","name":"demo"}}}}`)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()
	m := &Module{Name: "demo"}
	if got := m.StoreKey(); got != "memory:demo" {
		t.Fatalf("key %q", got)
	}
	// A second load of the same config is a reload.
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
}
