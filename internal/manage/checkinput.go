package manage

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// CheckInput dry-runs a gateway decision as Check does with the running
// policy, and returns the input document the policy saw: built from the
// stored token by the gateway's own code, it lets a caller try another
// policy against exactly what the gateway would evaluate, with no copy of
// the token rebuilt from its API view. The input is nil when the token is
// dead: liveness is decided in Go before any policy runs, so no policy
// could change that decision.
func (s *Service) CheckInput(ctx context.Context, p Principal, tokenID string, req policy.Request, service string) (policy.Decision, ast.Value, error) {
	t, err := s.GetToken(ctx, p, tokenID)
	if err != nil {
		return policy.Decision{}, nil, err
	}
	now := s.Now()
	d, err := gateway.DryRun(ctx, s.Policy, t, req, service, now)
	if err != nil || gateway.Liveness(t, now) != nil {
		return d, nil, err
	}
	return d, policy.GatewayInput(policy.TokenTerm(t), req, service, now), nil
}
