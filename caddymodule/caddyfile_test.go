package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func TestHandlerCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		input   string
		want    Handler
		wantErr string
	}{
		{input: `tokengate billing`, want: Handler{Service: "billing"}},
		{input: "tokengate {\n service billing\n header X-Api-Key\n policy_headers X-Tenant X-Region\n}",
			want: Handler{Service: "billing", Header: "X-Api-Key", PolicyHeaders: []string{"X-Tenant", "X-Region"}}},
		{input: `tokengate`, wantErr: "needs a service"},
		{input: `tokengate billing extra`, wantErr: "wrong argument count"},
		{input: "tokengate billing {\n scope billing:read\n}", wantErr: `unrecognized subdirective "scope"`},
		{input: "tokengate {\n service\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n service a b\n}", wantErr: "wrong argument count"},
		{input: "tokengate billing {\n policy_headers\n}", wantErr: "wrong argument count"},
	}
	for _, c := range cases {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
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
		got, _ := json.Marshal(h)
		want, _ := json.Marshal(c.want)
		if string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", c.input, got, want)
		}
	}
}

func TestGlobalOptionCaddyfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		input   string
		want    string
		wantErr string
	}{
		{input: "tokengate {\n store bolt /var/lib/tg.db\n policy ./policies\n max_ttl 24h\n decision_cache 0\n pepper {env.PEPPER}\n}",
			want: `{"store":{"backend":"bolt","path":"/var/lib/tg.db"},"policy":"./policies","max_ttl":86400000000000,"decision_cache":0,"pepper":"{env.PEPPER}"}`},
		{input: "tokengate {\n store postgres postgres://db/tg\n}", want: `{"store":{"backend":"postgres","dsn":"postgres://db/tg"}}`},
		{input: "tokengate {\n pepper {file./run/tg/pepper}\n previous_pepper {file./run/tg/previous-pepper}\n}",
			want: `{"pepper":"{file./run/tg/pepper}","previous_pepper":"{file./run/tg/previous-pepper}"}`},
		{input: "tokengate {\n previous_pepper\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n clock test\n}", want: `{"clock":{"source":"test"}}`},
		{input: "tokengate {\n clock\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n store bolt\n}", want: `{"store":{"backend":"bolt"}}`},
		{input: "tokengate {\n store redis x\n}", wantErr: `unknown store "redis"`},
		{input: "tokengate {\n store postgres\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n store postgres {\n  dsn postgres://db/tg\n  feed_dsn postgres://db-direct/tg\n  max_conns 3\n  query_exec_mode exec\n  heartbeat 250ms\n  feed poll\n }\n}",
			want: `{"store":{"backend":"postgres","dsn":"postgres://db/tg","feed":"poll","feed_dsn":"postgres://db-direct/tg","heartbeat":250000000,"max_conns":3,"query_exec_mode":"exec"}}`},
		{input: "tokengate {\n store postgres postgres://db/tg {\n  max_conns 0\n }\n}", wantErr: `max_conns "0" is not a number of 1 or more`},
		{input: "tokengate {\n store postgres postgres://db/tg {\n  query_exec_mode fast\n }\n}", wantErr: `query_exec_mode "fast": must be one of`},
		{input: "tokengate {\n store postgres postgres://db/tg {\n  feed push\n }\n}", wantErr: `feed must be listen or poll, not "push"`},
		{input: "tokengate {\n store postgres postgres://db/tg {\n  heartbeat\n }\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n max_ttl forever\n}", wantErr: "not a positive duration"},
		{input: "tokengate {\n max_ttl -1h\n}", wantErr: "not a positive duration"},
		{input: "tokengate {\n decision_cache -5\n}", wantErr: "not a number of entries"},
		{input: "tokengate {\n decision_cache lots\n}", wantErr: "not a number of entries"},
		{input: "tokengate {\n census_interval 2m\n}", want: `{"census_interval":120000000000}`},
		{input: "tokengate {\n census_interval 100ms\n}", wantErr: "not a duration of 1s or more"},
		{input: "tokengate {\n census_interval often\n}", wantErr: "not a duration of 1s or more"},
		{input: "tokengate {\n exchange_limit 5 30s\n}", want: `{"exchange_limit":{"attempts":5,"window":30000000000}}`},
		{input: "tokengate {\n exchange_limit 0 30s\n}", wantErr: "exchange_limit takes a number of attempts and a window"},
		{input: "tokengate {\n exchange_limit 5 soon\n}", wantErr: "exchange_limit takes a number of attempts and a window"},
		{input: "tokengate {\n exchange_limit 5\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n cache 5\n}", wantErr: `unrecognized subdirective "cache"`},
		{input: "tokengate {\n max_staleness 30s\n stale_reads deny\n audit_fail_open\n}",
			want: `{"audit_fail_open":true,"max_staleness":30000000000,"stale_reads":"deny"}`},
		{input: "tokengate {\n stale_reads maybe\n}", wantErr: `stale_reads must be allow or deny, not "maybe"`},
		{input: "tokengate {\n audit_fail_open yes\n}", wantErr: "wrong argument count"},
		{input: "tokengate {\n console {\n  url https://gw.example\n  idle_timeout 10m\n  session_lifetime 1d\n }\n}",
			want: `{"console":{"url":"https://gw.example","idle_timeout":600000000000,"session_lifetime":86400000000000}}`},
		{input: "tokengate {\n console {\n  idle_timeout never\n }\n}", wantErr: `idle_timeout "never" is not a positive duration`},
		{input: "tokengate {\n console {\n  session_lifetime 0s\n }\n}", wantErr: `session_lifetime "0s" is not a positive duration`},
		{input: "tokengate {\n console {\n  theme dark\n }\n}", wantErr: `unknown console option "theme"`},
		{input: "tokengate extra", wantErr: "wrong argument count"},
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

// TestExampleCaddyfileAdapts keeps Caddyfile.example valid: it must adapt
// without warnings into a config with the tokengate app and handlers.
func TestExampleCaddyfileAdapts(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	cfg, warnings, err := adapter.Adapt(src, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	for _, want := range []string{`"tokengate":{`, `"handler":"tokengate"`, `"service":"demo"`, `"handler":"tokengate_admin"`, `"include":["tokengate.audit"]`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted config lacks %s", want)
		}
	}
}

func FuzzHandlerCaddyfile(f *testing.F) {
	f.Add("tokengate billing")
	f.Add("tokengate {\n service billing\n header X-Api-Key\n}")
	f.Add("tokengate {\n policy_headers a b c\n}")
	f.Fuzz(func(t *testing.T, input string) {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil && h.Service == "" {
			t.Fatalf("%q parsed without a service", input)
		}
	})
}
