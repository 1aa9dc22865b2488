package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/api"
)

// TestCLIEscapesWhatItPrints: the approver's table and the JSON output
// show control and bidi characters as escapes, never raw.
func TestCLIEscapesWhatItPrints(t *testing.T) {
	evil := "nightly\r\x1b[2Kreq_fake\tpending\u202e\u0085\u2066"
	raw := func(b []byte) bool {
		return bytes.ContainsAny(b, "\r\x1b\t\u202e\u0085\u2066")
	}
	var table bytes.Buffer
	if err := printRequests(&table, []api.RequestView{{ID: "req_1", Status: "pending", RequestedBy: "alice", Owner: "etl\x1b]0;x\x07", Scopes: []string{"billing:read"}, TTL: "1h0m0s", Purpose: evil}}); err != nil {
		t.Fatal(err)
	}
	if raw(table.Bytes()) || bytes.Contains(table.Bytes(), []byte{0x07}) || !strings.Contains(table.String(), `\x1b[2K`) {
		t.Errorf("request table:\n%q", table.String())
	}
	if lines := strings.Count(table.String(), "\n"); lines != 2 {
		t.Errorf("request table has %d lines, want header and one row:\n%s", lines, table.String())
	}
	table.Reset()
	if err := printTokens(&table, []api.TokenView{{ID: "tok_1", State: "active", Owner: "etl", Purpose: evil, Scopes: []string{"billing:read"}}}); err != nil {
		t.Fatal(err)
	}
	if raw(table.Bytes()) || !strings.Contains(table.String(), `\u202e`) {
		t.Errorf("token table:\n%q", table.String())
	}
	var out bytes.Buffer
	if err := writeJSONTo(&out, api.RequestView{Purpose: evil}); err != nil {
		t.Fatal(err)
	}
	if raw(out.Bytes()) {
		t.Errorf("JSON output holds raw control or bidi characters: %q", out.String())
	}
	var v api.RequestView
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Purpose != evil {
		t.Errorf("escaped JSON decodes to %q, want the original", v.Purpose)
	}
}

// The approver's table names who will hold the secret, apart from the
// owner someone typed; the inventory names who holds each token.
func TestTablesNameTheHolder(t *testing.T) {
	var table bytes.Buffer
	if err := printRequests(&table, []api.RequestView{{ID: "req_1", Status: "pending", RequestedBy: "ann", HeldBy: "ann", Owner: "carol", Ticket: "CHG-7", Scopes: []string{"demo:write"}, TTL: "1h0m0s", Purpose: "p"}}); err != nil {
		t.Fatal(err)
	}
	header, row, _ := strings.Cut(table.String(), "\n")
	if !strings.Contains(header, "WILL BE HELD BY") || !strings.Contains(row, "ann") || !strings.Contains(row, "carol") || !strings.Contains(row, "CHG-7") {
		t.Errorf("request table:\n%s", table.String())
	}
	table.Reset()
	if err := printTokens(&table, []api.TokenView{{ID: "tok_1", State: "active", Owner: "carol", HeldBy: "ann", Purpose: "p"}}); err != nil {
		t.Fatal(err)
	}
	header, row, _ = strings.Cut(table.String(), "\n")
	if !strings.Contains(header, "HELD BY") || !strings.Contains(row, "ann") {
		t.Errorf("token table:\n%s", table.String())
	}
}

// The requests table says STATE, as the tokens table, --state and the API
// do, not STATUS.
func TestRequestTableSaysState(t *testing.T) {
	var table bytes.Buffer
	if err := printRequests(&table, []api.RequestView{{ID: "req_1", Status: "pending", RequestedBy: "ann"}}); err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(table.String(), "\n")
	if columns := strings.Fields(header); len(columns) < 2 || columns[1] != "STATE" {
		t.Errorf("request table header: %q", header)
	}
}
