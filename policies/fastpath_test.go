package policies

import (
	"context"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/store"
)

// TestFastPathNeverOutrunsReasons guards the fast path at the top of
// gateway.rego: over every combination of the token and request
// properties the policy looks at, the decision the gateway gets (through
// policy.Engine, as in production) must allow exactly when the reasons
// set is empty, and must name exactly those reasons. The reasons are
// evaluated separately with OPA's rego package, so the test also checks
// that the engine's direct use of OPA's evaluator agrees with OPA's
// standard front end.
func TestFastPathNeverOutrunsReasons(t *testing.T) {
	engine, err := policy.NewEngine(FS)
	if err != nil {
		t.Fatal(err)
	}
	src, err := fs.ReadFile(FS, "gateway.rego")
	if err != nil {
		t.Fatal(err)
	}
	reasonsQuery, err := rego.New(
		rego.Query("data.tokengate.gateway.reasons"),
		rego.Module("gateway.rego", string(src)),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	now := time.Unix(1_700_000_000, 0)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	type uses struct{ max, used int64 }
	var cases, allowed int
	for _, revokedAt := range []time.Time{{}, past} {
		for _, graceUntil := range []time.Time{{}, future, past} {
			for _, notBefore := range []time.Time{past, future} {
				for _, expiresAt := range []time.Time{future, now} {
					for _, u := range []uses{{0, 0}, {3, 1}, {3, 3}} {
						for _, services := range [][]string{{"billing"}, {"search", "billing"}, {"tokengate-admin"}} {
							for _, scopes := range [][]string{{"billing:read"}, {"billing:write"}, {"search:read"}, nil, {"billing:read", "billing:write"}, {"tokens:approve"}} {
								for _, cidrs := range [][]string{nil, {"192.168.0.0/16", "10.1.0.0/16"}, {"192.168.0.0/16"}} {
									for _, method := range []string{"GET", "POST"} {
										for _, service := range []string{"billing", "tokengate-admin"} {
											tok := &store.Token{
												ID: "tok_grid", Owner: "alice", Purpose: "grid",
												Scopes: scopes, Services: services, CIDRs: cidrs,
												NotBefore: notBefore, ExpiresAt: expiresAt,
												MaxUses: u.max, Uses: u.used,
												RevokedAt: revokedAt, GraceUntil: graceUntil,
											}
											req := policy.Request{Method: method, Host: "api.example.com", Path: "/x", RemoteIP: "10.1.2.3"}
											input := policy.GatewayInput(policy.TokenTerm(tok), req, service, now)
											d, err := engine.Decide(context.Background(), policy.GatewayQuery, input)
											if err != nil {
												t.Fatal(err)
											}
											want := reasonsFor(t, reasonsQuery, input)
											cases++
											if d.Allow {
												allowed++
											}
											if d.Allow != (len(want) == 0) || (!d.Allow && !slices.Equal(d.Reasons, want)) {
												t.Fatalf("token %+v, %s on %s: decision allow=%v reasons=%v, but reasons evaluate to %v",
													tok, method, service, d.Allow, d.Reasons, want)
											}
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	// A grid that allowed nothing, or everything, would prove nothing.
	if allowed == 0 || allowed == cases {
		t.Fatalf("%d of %d cases allowed", allowed, cases)
	}
	t.Logf("%d cases, %d allowed", cases, allowed)
}

func reasonsFor(t *testing.T, q rego.PreparedEvalQuery, input ast.Value) []string {
	t.Helper()
	rs, err := q.Eval(context.Background(), rego.EvalParsedInput(input))
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	if len(rs) > 0 {
		for _, r := range rs[0].Expressions[0].Value.([]any) {
			reasons = append(reasons, r.(string))
		}
	}
	slices.Sort(reasons)
	return reasons
}
