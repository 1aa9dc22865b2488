package manage

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/store"
)

// Every mint records who receives the secret, in the store, whatever
// owner the token names.
func TestEveryMintRecordsItsHolder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	held := func(what, secret, want string) *store.Token {
		t.Helper()
		stored := f.lookup(t, secret)
		if stored.HeldBy != want {
			t.Fatalf("%s: held_by %q, want %q (owner %q)", what, stored.HeldBy, want, stored.Owner)
		}
		return stored
	}

	secrets, toks, err := f.svc.Bootstrap(ctx, local, "ann", "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		held("bootstrap", secrets[tok.ID], tok.Owner)
	}

	spec := writeSpec()
	spec.Owner = "carol"
	req, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, secret, _, err := f.svc.Claim(ctx, alice, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	claimed := held("claim", secret, "alice")

	jit := lifecycle.Spec{Owner: "carol", Purpose: "debug", Scopes: []string{"billing:read"}, Services: []string{"billing"}, CIDRs: []string{"10.1.0.0/16"}, TTL: "30m"}
	_, secret, _, err = f.svc.Request(ctx, alice, jit)
	if err != nil || secret == "" {
		t.Fatalf("jit: %v", err)
	}
	held("just-in-time", secret, "alice")

	jit.Owner = "alice"
	secret, issued, err := f.svc.Issue(ctx, local, jit)
	if err != nil {
		t.Fatal(err)
	}
	held("issue", secret, "local-operator")

	secret, successor, err := f.svc.Rotate(ctx, alice, claimed.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	held("rotate", secret, "alice")
	secret, _, err = f.svc.Rotate(ctx, local, issued.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	held("local rotate", secret, "local-operator")

	// The audit line of the claim names the holder, not the owner.
	f.lines()
	if _, err := f.svc.Revoke(ctx, alice, successor.ID, "done"); err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, l := range f.lines() {
		if l["msg"] != "token.revoked" {
			continue
		}
		revoked++
		if l["held_by"] != "alice" || l["owner"] != "carol" {
			t.Fatalf("revoke line %v", l)
		}
	}
	if revoked == 0 {
		t.Fatal("no token.revoked line")
	}
}

// A management token is personal: nobody may ask for, or be issued, one
// named after someone else, in any spelling of a name.
func TestManagementTokenIsPersonal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, owner := range []string{"carol", "bob", "local-operator"} {
		spec := lifecycle.Spec{Owner: owner, Purpose: "approve for finance", Scopes: []string{"tokens:approve", "tokens:read"},
			Services: []string{ManagementService}, TTL: "1h"}
		_, _, _, err := f.svc.Request(ctx, alice, spec)
		wantKind(t, err, lifecycle.KindForbidden, "management_token_not_personal")
		f.refusedLine(t, "token.requested", "management_token_not_personal")
	}
	spec := lifecycle.Spec{Owner: "Alice", Purpose: "approve for finance", Scopes: []string{"tokens:approve", "tokens:read"},
		Services: []string{ManagementService}, TTL: "1h"}
	req, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil || req.Status != store.RequestPending {
		t.Fatalf("own management token: %v %+v", err, req)
	}

	_, _, err = f.svc.Bootstrap(ctx, local, "Ann", "ann", time.Hour)
	wantKind(t, err, lifecycle.KindForbidden, "self_approval")
	_, _, err = f.svc.Bootstrap(ctx, local, "local-operator", "bob", time.Hour)
	wantKind(t, err, lifecycle.KindForbidden, "principal_reserved")
}

// Rotation hands the new secret to the rotator, so only the holder may
// rotate: not the owner named, not whoever once asked for it.
func TestOnlyTheHolderRotates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	spec := writeSpec()
	spec.Owner = "bob"
	req, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, _, tok, err := f.svc.Claim(ctx, alice, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.lines()
	// The refused lines say whose token it was.
	refusedOnAlicesToken := func(msg string) {
		t.Helper()
		lines := f.lines()
		if len(lines) != 1 || lines[0]["msg"] != msg || lines[0]["outcome"] != "refused" || lines[0]["held_by"] != "alice" ||
			lines[0]["owner"] != "bob" || lines[0]["token_id"] != tok.ID || !slices.Contains(anyStrings(lines[0]["reasons"]), "not_owner") {
			t.Fatalf("audit lines %v, want one %s refused with not_owner on alice's token", lines, msg)
		}
	}
	for _, p := range []Principal{bob, {Name: "Alice", Scopes: alice.Scopes}} {
		_, _, err := f.svc.Rotate(ctx, p, tok.ID, time.Minute)
		wantKind(t, err, lifecycle.KindForbidden, "not_owner")
		refusedOnAlicesToken("token.rotated")
		_, err = f.svc.Revoke(ctx, p, tok.ID, "mine")
		wantKind(t, err, lifecycle.KindForbidden, "not_owner")
		refusedOnAlicesToken("token.revoked")
	}
}

// The audit lines of a request name who will hold its secret, so the
// trail shows whom an approver trusted.
func TestRequestLinesNameTheFutureHolder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	spec := writeSpec()
	spec.Owner, spec.Ticket = "carol", "CHG-42"
	req, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil || req.Ticket != "CHG-42" {
		t.Fatalf("request: %v %+v", err, req)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	lines := f.lines()
	if len(lines) != 2 {
		t.Fatalf("lines %v", lines)
	}
	for _, l := range lines {
		if l["held_by"] != "alice" || l["owner"] != "carol" {
			t.Fatalf("%s line %v", l["msg"], l)
		}
	}
	if stored, _ := f.store.GetRequest(ctx, req.ID); stored.Ticket != "CHG-42" {
		t.Fatalf("stored ticket %q", stored.Ticket)
	}
}

// Tokens stored before holders were recorded are judged by who received
// them, never by the owner someone typed.
func TestHolderOfLegacyTokens(t *testing.T) {
	for name, c := range map[string]struct {
		tok  store.Token
		want string
	}{
		"recorded":         {store.Token{Owner: "carol", CreatedBy: "ann", HeldBy: "dave"}, "dave"},
		"claimed":          {store.Token{Owner: "carol", CreatedBy: "ann", Services: []string{ManagementService}}, "ann"},
		"bootstrap":        {store.Token{Owner: "bob", CreatedBy: LocalOperator, Services: []string{ManagementService}}, "bob"},
		"issued locally":   {store.Token{Owner: "ann", CreatedBy: LocalOperator, Services: []string{"billing"}}, LocalOperator},
		"no record at all": {store.Token{Owner: "erin"}, "erin"},
	} {
		if got := HolderOf(&c.tok); got != c.want {
			t.Errorf("%s: holder %q, want %q", name, got, c.want)
		}
	}
}

// A legacy token named after bob but claimed by ann is ann's to rotate.
func TestLegacyTokenRotatedByWhoReceivedIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	legacy := &store.Token{Owner: "bob", Purpose: "legacy", Scopes: []string{"billing:write"}, Services: []string{"billing"},
		NotBefore: f.now, ExpiresAt: f.now.Add(time.Hour), CreatedAt: f.now, CreatedBy: "alice", ApprovedBy: "bob"}
	f.svc.Tokens.Mint(legacy)
	if err := f.store.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.svc.Rotate(ctx, bob, legacy.ID, time.Minute)
	wantKind(t, err, lifecycle.KindForbidden, "not_owner")
	if _, rotated, err := f.svc.Rotate(ctx, alice, legacy.ID, time.Minute); err != nil || rotated.HeldBy != "alice" {
		t.Fatalf("rotate by who received it: %v %+v", err, rotated)
	}
}
