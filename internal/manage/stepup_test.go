package manage

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

// TestProductionWriteApprovalNeedsAStepUp: through the API (no step-up
// possible) an approval of a production write is refused with
// step_up_required and a pointer to the console; with a verified step-up
// it goes through.
func TestProductionWriteApprovalNeedsAStepUp(t *testing.T) {
	f := newFixture(t)
	engine, err := policy.NewEngine(shippedWithDirectory(t, `{"groups": {"approvers": ["bob"]},
		"services": {"billing": {"environment": "production"}, "ledger": {"environment": "production", "step_up": false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Policy = engine
	ctx := context.Background()
	carol := Principal{Name: "carol", Kind: PersonKind}
	bobPerson := Principal{Name: "bob", Kind: PersonKind}
	ask := func(service string) *store.Request {
		r, _, _, err := f.svc.Request(ctx, carol, lifecycle.Spec{Owner: "carol", Purpose: "export", Scopes: []string{service + ":write"},
			Services: []string{service}, CIDRs: []string{"10.0.0.0/8"}, TTL: "1h", Ticket: "CHG-7"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	billing := ask("billing")
	if need, err := f.svc.StepUpNeeded(ctx, bobPerson, billing); err != nil || !need {
		t.Fatalf("StepUpNeeded for a production write: %v, %v", need, err)
	}
	f.lines()
	_, err = f.svc.Approve(ctx, bobPerson, billing.ID, "ok")
	var le *lifecycle.Error
	if !errors.As(err, &le) || le.Code != "step_up_required" || !strings.Contains(le.Detail, "/console/requests/"+billing.ID) {
		t.Fatalf("API approval of a production write: %v, want step_up_required naming the console page", err)
	}
	f.refusedLine(t, "token.approved", "step_up_required")
	stepped := bobPerson
	stepped.StepUp = true
	if _, err := f.svc.Approve(ctx, stepped, billing.ID, "ok, with my key"); err != nil {
		t.Fatalf("approval with a step-up: %v", err)
	}
	ledger := ask("ledger")
	if need, _ := f.svc.StepUpNeeded(ctx, bobPerson, ledger); need {
		t.Fatal("a service whose entry says step_up false needs a step-up")
	}
	if _, err := f.svc.Approve(ctx, bobPerson, ledger.ID, "ok"); err != nil {
		t.Fatalf("approval on a service opted out of step-up: %v", err)
	}
}
