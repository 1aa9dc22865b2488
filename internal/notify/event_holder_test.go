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

func TestConsoleBase(t *testing.T) {
	for _, good := range []string{"https://gateway.example.com", "http://localhost:8443/", "https://h.example/tg"} {
		if _, err := ConsoleBase(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{"", "gateway.example.com", "javascript:alert(1)", "https://h|evil", "https://h/<x>", "https://h/?q=1", "https://u:p@h", "ftp://h"} {
		if _, err := ConsoleBase(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var e Event
	e.Type, e.RequestID = RequestPending, "req_1"
	e.LinkTo("")
	if e.Link != "" || e.Text != "" {
		t.Fatalf("no console address, yet link %q text %q", e.Link, e.Text)
	}
}
