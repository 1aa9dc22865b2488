package manage

import (
	"context"
	"time"
)

// LapseSweepInterval is how often a node looks for approved requests that
// went unclaimed.
const LapseSweepInterval = 30 * time.Second

// SweepLapses announces approved requests that went unclaimed
// (AnnounceLapsed) at once and then every interval, until ctx ends;
// failed tells of a sweep that failed. Every node (and, during a reload,
// both configs) may sweep: the store records each lapse once, so each is
// announced once.
func (s *Service) SweepLapses(ctx context.Context, interval time.Duration, failed func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := s.AnnounceLapsed(ctx); err != nil && ctx.Err() == nil {
			failed(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
