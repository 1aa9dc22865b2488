package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func TestAuditWriterCaddyfile(t *testing.T) {
	adapt := func(block string) (string, error) {
		cfg := "{\n\tlog audit {\n\t\tinclude tokengate.audit\n\t\toutput tokengate_audit /var/log/audit.log " + block + "\n\t}\n}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
		return string(out), err
	}
	out, err := adapt(`{
			signing_key {env.TOKENGATE_AUDIT_KEY}
			checkpoint_every 250ms
			roll_size 64KiB
			roll_keep 3
			roll_keep_for 48h
			roll_local_time
		}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"output":"tokengate_audit"`, `"filename":"/var/log/audit.log"`,
		`"signing_key":"{env.TOKENGATE_AUDIT_KEY}"`, `"checkpoint_every":250000000`, `"roll_size":65536`,
		`"roll_keep":3`, `"roll_keep_days":2`, `"roll_local_time":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("adapted config lacks %s: %s", want, out)
		}
	}
	for _, bad := range []string{
		"{\n\t\t\troll_gzip\n\t\t}",
		"{\n\t\t\tcheckpoint_every 0s\n\t\t}",
		"{\n\t\t\tsigning_key\n\t\t}",
		"{\n\t\t\troll_keep many\n\t\t}",
	} {
		if _, err := adapt(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
