package manage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/store"
)

// Publisher hears about requests and revocations as they happen: the
// webhooks. Publish must not block; delivery is its business.
type Publisher interface {
	Publish(notify.Event)
}

// LapseHorizon bounds which lapses AnnounceLapsed announces: an approved
// request that went unclaimed longer ago than this (say, before webhooks
// were configured) is marked lapsed without an event, so enabling
// webhooks on an old store does not flood the approvers' channel.
const LapseHorizon = 24 * time.Hour

func (s *Service) publishRequest(typ string, r *store.Request) {
	if s.Events != nil {
		e := notify.ForRequest(typ, r, s.now())
		e.LinkTo(s.ConsoleURL)
		s.Events.Publish(e)
	}
}

func (s *Service) publishToken(typ string, t *store.Token) {
	if s.Events != nil {
		e := notify.ForToken(typ, t, s.now())
		e.LinkTo(s.ConsoleURL)
		s.Events.Publish(e)
	}
}

// errNotLapsing leaves a request alone: claimed, or announced by another
// sweep, since it was listed.
var errNotLapsing = errors.New("request is not lapsing")

// AnnounceLapsed publishes request.lapsed for every approved request that
// went unclaimed, once per request across restarts and nodes: it records
// LapsedAt in the store, atomically with the check that nobody recorded
// it yet (or claimed the request), and publishes only after that write.
// The event is lost if the node stops between the write and the delivery;
// the other order would announce a lapse twice, and approvers would
// rather miss a late notice than chase a duplicate. Once LapsedAt is set,
// Status says lapsed, so a claim racing the sweep (or a node whose clock
// is behind) cannot succeed after the lapse was announced.
//
// Pending requests do not expire, so they never lapse.
func (s *Service) AnnounceLapsed(ctx context.Context) (int, error) {
	approved, err := s.Requests.ListRequests(ctx, store.RequestApproved)
	if err != nil {
		return 0, fmt.Errorf("listing approved requests: %w", err)
	}
	announced := 0
	for _, r := range approved {
		now := s.now()
		if !r.LapsedAt.IsZero() || now.Before(r.ClaimBy) {
			continue
		}
		marked, err := s.Requests.UpdateRequest(ctx, r.ID, func(r *store.Request) error {
			if r.Status != store.RequestApproved || !r.LapsedAt.IsZero() || now.Before(r.ClaimBy) {
				return errNotLapsing
			}
			r.LapsedAt = now
			return nil
		})
		if errors.Is(err, errNotLapsing) {
			continue
		}
		if err != nil {
			return announced, fmt.Errorf("recording the lapse of %s: %w", r.ID, err)
		}
		if now.Sub(marked.ClaimBy) <= LapseHorizon {
			s.publishRequest(notify.RequestLapsed, marked)
			announced++
		}
	}
	return announced, nil
}
