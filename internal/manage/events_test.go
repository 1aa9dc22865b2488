package manage

import (
	"context"
	"encoding/json"
	"github.com/tokengate/caddy-tokengate/webhook"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
)

var hookSecret = []byte("whsec-0123456789abcdef0123456789abcdef")

// hookReceiver is a real HTTP receiver that verifies each delivery as
// the notify package documents and keeps the events.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []notify.Event
	bodies []string
	bad    []string
}

func startHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := webhook.VerifyLegacy(hookSecret, r.Header.Get(notify.SignatureHeader), body, time.Now(), webhook.DefaultTolerance); err != nil {
			h.bad = append(h.bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var e notify.Event
		_ = json.Unmarshal(body, &e)
		h.events = append(h.events, e)
		h.bodies = append(h.bodies, string(body))
	}))
	t.Cleanup(h.Close)
	return h
}

// withHooks wires a dispatcher to f.svc. The returned function stops it,
// which delivers what is queued, and returns the events received so far.
func (f *fixture) withHooks(t *testing.T, h *hookReceiver) (flush func() []notify.Event) {
	t.Helper()
	d, err := notify.New([]notify.Hook{{URL: h.URL, Secret: hookSecret}}, notify.Options{BaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(d.Stop)
	f.svc.Events = d
	return func() []notify.Event {
		d.Stop()
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.bad) > 0 {
			t.Errorf("deliveries that did not verify: %v", h.bad)
		}
		return slices.Clone(h.events)
	}
}

func types(events []notify.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Type)
	}
	return out
}

// TestEventsFollowTheFlow: request (pending), approve, deny, revoke and a
// request the policy approves at once each send their event, signed,
// with the request's facts and never the claimed secret.
func TestEventsFollowTheFlow(t *testing.T) {
	f := newFixture(t)
	h := startHookReceiver(t)
	flush := f.withHooks(t, h)
	ctx := context.Background()

	spec := writeSpec()
	spec.Ticket = "FIN-12"
	approved, _, _, err := f.svc.Request(ctx, alice, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, approved.ID, "ledger migration"); err != nil {
		t.Fatal(err)
	}
	_, secret, tok, err := f.svc.Claim(ctx, alice, approved.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Revoke(ctx, alice, tok.ID, "migration done"); err != nil {
		t.Fatal(err)
	}
	denied, _, _, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Deny(ctx, bob, denied.ID, "use the read scope"); err != nil {
		t.Fatal(err)
	}
	// Refused actions send nothing.
	if _, err := f.svc.Deny(ctx, bob, denied.ID, "again"); err == nil {
		t.Fatal("a second deny passed")
	}
	jit, jitSecret, _, err := f.svc.Request(ctx, alice, lifecycle.Spec{Owner: "alice", Purpose: "debug", Scopes: []string{"billing:read"},
		Services: []string{"billing"}, CIDRs: []string{"10.1.0.0/16"}, TTL: "30m"})
	if err != nil || jitSecret == "" {
		t.Fatal(err)
	}

	events := flush()
	want := []string{notify.RequestPending, notify.RequestApproved, notify.TokenRevoked, notify.RequestPending, notify.RequestDenied, notify.RequestApproved}
	if got := types(events); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	pending, approval, revoked, denial, auto := events[0], events[1], events[2], events[4], events[5]
	if pending.RequestID != approved.ID || pending.RequestedBy != "alice" || pending.Ticket != "FIN-12" || pending.DecidedBy != "" ||
		!slices.Equal(pending.Scopes, []string{"billing:write"}) || !slices.Equal(pending.Services, []string{"billing"}) {
		t.Errorf("pending %+v", pending)
	}
	if approval.DecidedBy != "bob" || approval.Reason != "ledger migration" || approval.ClaimBy == nil || !strings.Contains(approval.Text, "bob approved") {
		t.Errorf("approved %+v", approval)
	}
	if revoked.TokenID != tok.ID || revoked.DecidedBy != "alice" || revoked.Reason != "migration done" || revoked.HeldBy != "alice" {
		t.Errorf("revoked %+v", revoked)
	}
	if denial.RequestID != denied.ID || denial.DecidedBy != "bob" || denial.Reason != "use the read scope" {
		t.Errorf("denied %+v", denial)
	}
	if auto.RequestID != jit.ID || auto.DecidedBy != "policy:just-in-time" {
		t.Errorf("approved by policy %+v", auto)
	}
	for _, b := range h.bodies {
		for _, s := range []string{secret, secret[3:33], jitSecret[3:33]} {
			if strings.Contains(b, s) {
				t.Errorf("an event carries a claimed secret: %s", b)
			}
		}
	}
}

// TestLapseAnnouncedOnce: an approved request nobody claims is announced
// once, by however many sweeps, concurrent or after a restart; once
// announced it cannot be claimed even by a clock that is behind.
func TestLapseAnnouncedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	f := fixtureAt(t, path)
	h := startHookReceiver(t)
	flush := f.withHooks(t, h)
	ctx := context.Background()

	req, _, _, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if n, err := f.svc.AnnounceLapsed(ctx); n != 0 || err != nil {
		t.Fatalf("sweep within the claim window: %d %v", n, err)
	}
	f.now = f.now.Add(ClaimWindow)
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i := range counts {
		wg.Go(func() {
			n, err := f.svc.AnnounceLapsed(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if total := counts[0] + counts[1] + counts[2] + counts[3]; total != 1 {
		t.Fatalf("concurrent sweeps announced %v, want one in all", counts)
	}
	events := flush()
	if got := types(events); !slices.Equal(got, []string{notify.RequestPending, notify.RequestApproved, notify.RequestLapsed}) {
		t.Fatalf("events %v", got)
	}
	if lapsed := events[2]; lapsed.RequestID != req.ID || lapsed.DecidedBy != "bob" || lapsed.ClaimBy == nil || !strings.Contains(lapsed.Text, "lapsed") {
		t.Fatalf("lapsed %+v", lapsed)
	}

	// A restart: the store is opened again by a new service.
	f.store.Close()
	g := fixtureAt(t, path)
	g.now = f.now.Add(time.Hour)
	h2 := startHookReceiver(t)
	flush2 := g.withHooks(t, h2)
	if n, err := g.svc.AnnounceLapsed(ctx); n != 0 || err != nil {
		t.Fatalf("sweep after a restart: %d %v", n, err)
	}
	// A node whose clock is behind still sees the announced lapse.
	g.now = f.now.Add(-time.Minute)
	_, _, _, err = g.svc.Claim(ctx, alice, req.ID)
	wantKind(t, err, lifecycle.KindGone, "request_lapsed")
	if got := flush2(); len(got) != 0 {
		t.Fatalf("events after the restart %v", types(got))
	}
}

// TestOldLapsesAreMarkedSilently: turning webhooks on for a store with
// long-lapsed requests does not flood the channel.
func TestOldLapsesAreMarkedSilently(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	req, _, _, err := f.svc.Request(ctx, alice, writeSpec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(ClaimWindow + LapseHorizon + time.Minute)
	h := startHookReceiver(t)
	flush := f.withHooks(t, h) // turned on only now
	if n, err := f.svc.AnnounceLapsed(ctx); n != 0 || err != nil {
		t.Fatalf("announced %d %v", n, err)
	}
	if got := flush(); len(got) != 0 {
		t.Fatalf("events %v", types(got))
	}
	if r, _ := f.store.GetRequest(ctx, req.ID); r.LapsedAt.IsZero() || Status(r, f.now) != "lapsed" {
		t.Fatalf("request %+v not marked lapsed", r)
	}
}

// fixtureAt is newFixture on a store file that outlives it.
func fixtureAt(t *testing.T, path string) *fixture {
	t.Helper()
	f := newFixture(t)
	b, err := bolt.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f.store, f.svc.Requests, f.svc.Tokens.Store = b, b, b
	return f
}

// TestEventsLinkToTheConsole: with a console address, each event names
// the page of its request or token, in Link and in the Slack text.
func TestEventsLinkToTheConsole(t *testing.T) {
	f := newFixture(t)
	f.svc.ConsoleURL = "https://gateway.example.com/"
	h := startHookReceiver(t)
	flush := f.withHooks(t, h)
	ctx := context.Background()
	req, _, _, err := f.svc.Request(ctx, alice, lifecycle.Spec{Owner: "billing", Purpose: "export", Scopes: []string{"billing:write"}, Services: []string{"billing"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, _, tok, err := f.svc.Claim(ctx, alice, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Revoke(ctx, local, tok.ID, "done"); err != nil {
		t.Fatal(err)
	}
	events := flush()
	want := map[string]string{
		notify.RequestPending:  "https://gateway.example.com/console/requests/" + req.ID,
		notify.RequestApproved: "https://gateway.example.com/console/requests/" + req.ID,
		notify.TokenRevoked:    "https://gateway.example.com/console/tokens/" + tok.ID,
	}
	for _, e := range events {
		if link, ok := want[e.Type]; ok {
			if e.Link != link || !strings.HasSuffix(e.Text, "<"+link+"|Open in the console>") {
				t.Errorf("%s: link %q, text %q; want %s", e.Type, e.Link, e.Text, link)
			}
			delete(want, e.Type)
		}
	}
	if len(want) > 0 {
		t.Fatalf("events missing: %v (got %v)", want, types(events))
	}
}
