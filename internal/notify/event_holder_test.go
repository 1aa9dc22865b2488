package notify

import (
	"testing"
	"time"
)

// An approver reading a request event sees who will hold the secret: the
// requester, the only one who may claim it.
func TestRequestEventsNameTheFutureHolder(t *testing.T) {
	for _, typ := range []string{RequestPending, RequestApproved, RequestDenied, RequestLapsed} {
		if e := ForRequest(typ, pendingRequest(), time.Now()); e.HeldBy != "alice" {
			t.Errorf("%s: held_by %q, want the requester alice", typ, e.HeldBy)
		}
	}
}
