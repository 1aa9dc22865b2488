package manage

import (
	"context"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/store"
)

// ReportLeak asks the admin policy whether p may report leaked secrets
// (action report_leak): reporting revokes what it names, so who may
// revoke any token may report. A dry run, which only says which tokens
// the secrets open and in what state, asks for read.
func (s *Service) ReportLeak(ctx context.Context, p Principal, dryRun bool) error {
	action := "report_leak"
	if dryRun {
		action = "read"
	}
	_, err := s.authorize(ctx, action, p, nil)
	return err
}

// Expose revokes the token whose secret was found in the wild, with its
// rotation chain, writes its token.exposed line (revoked_ids lists every
// token stopped) and a token.revoked line for each other token of the
// chain, and announces it once (token.exposed) to the webhooks, which tell
// its holder and owner. Whoever reported it was authorized by
// the caller: a verified signature or ReportLeak.
func (s *Service) Expose(ctx context.Context, actor, id string, e lifecycle.Exposure) (*store.Token, error) {
	t, changed, recorded, err := s.Tokens.Expose(ctx, actor, id, e)
	if err != nil {
		return nil, err
	}
	s.stopped(ctx, "token.exposed", actor, id, recorded.Text(), t, changed)
	s.publishToken(notify.TokenExposed, t)
	return t, nil
}
