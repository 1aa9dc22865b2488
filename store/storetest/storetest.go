// Package storetest is the conformance suite every store backend must pass.
// A backend's own test calls Run with a function that returns a fresh,
// empty store.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Backend opens stores for the suite.
type Backend struct {
	// New returns a fresh, empty store; the suite closes it.
	New func(t *testing.T) store.Backend
	// Reopen closes s and opens the same underlying data again, to prove
	// that writes are durable. Nil skips the durability test.
	Reopen func(t *testing.T, s store.Backend) store.Backend
}

// Run runs the whole suite.
func Run(t *testing.T, b Backend) {
	tests := map[string]func(*testing.T, store.Backend){
		"CreateAndGet":              testCreateAndGet,
		"CreateConflicts":           testCreateConflicts,
		"NotFound":                  testNotFound,
		"ListFiltersAndOrders":      testList,
		"UpdateBumpsVersion":        testUpdate,
		"UpdateErrorChangesNothing": testUpdateError,
		"RotateIsAtomic":            testRotate,
		"ConsumeUseIsAtomic":        testConsumeUseAtomic,
		"ConsumeUseUnlimited":       testConsumeUseUnlimited,
		"RotationSharesBudget":      testRotationSharesBudget,
		"RotationBudgetIsAtomic":    testRotationBudgetAtomic,
		"RotationRacesConsumers":    testRotationRacesConsumers,
		"RecordUsage":               testRecordUsage,
		"ReturnedRecordsAreCopies":  testCopies,
		"Requests":                  testRequests,
		"ClaimIsAtomic":             testClaimAtomic,
		"CreateFirstIsAtomic":       testCreateFirst,
		"CountByState":              testCount,
		"CustodyRoundTrips":         testCustody,
		"LapseIsKept":               testLapseKept,
		"UpdateChainCoversTheChain": testUpdateChain,
		"UpdateChainBumpsVersions":  testUpdateChainVersion,
		"UpdateChainErrorIsAtomic":  testUpdateChainError,
		"ChainRevokeRacesRotate":    testChainRevokeRacesRotate,
		"MarkUsedOnce":              testMarkUsed,
		"MarkUsedIsAtomic":          testMarkUsedAtomic,
		"Rekey":                     testRekey,
		"RekeyIsAtomic":             testRekeyIsAtomic,
		"ExposureRoundTrips":        testExposure,
		"FeedReportsChanges":        testFeedReportsChanges,
		"TakeBudget":                testTakeBudget,
		"TakeBudgetIsAtomic":        testTakeBudgetIsAtomic,
		"RateLimitRoundTrips":       testRateLimitRoundTrips,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			s := b.New(t)
			defer s.Close()
			fn(t, s)
		})
	}
	runPeople(t, b)
	if b.Reopen != nil {
		t.Run("BudgetDurable", func(t *testing.T) { testBudgetDurable(t, b) })
		t.Run("Durable", func(t *testing.T) {
			s := b.New(t)
			tok := NewToken("alice")
			mustCreate(t, s, tok)
			if _, err := s.ConsumeUse(context.Background(), tok.ID, store.Usage{TokenID: tok.ID, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			s = b.Reopen(t, s)
			defer s.Close()
			got, err := s.GetByHash(context.Background(), tok.Hash)
			if err != nil {
				t.Fatalf("token lost after reopen: %v", err)
			}
			if got.HeldBy != tok.HeldBy {
				t.Fatalf("held_by after reopen = %q, want %q", got.HeldBy, tok.HeldBy)
			}
			if got.Uses != 1 {
				t.Fatalf("uses after reopen = %d, want 1", got.Uses)
			}
		})
	}
}

// NewToken returns a valid record with a fresh id and hash.
func NewToken(owner string) *store.Token {
	now := time.Now().UTC().Truncate(time.Microsecond)
	sum := sha256.Sum256([]byte(token.NewSecret()))
	return &store.Token{
		ID:        token.NewID(),
		Hash:      sum[:],
		Owner:     owner,
		Purpose:   "conformance test",
		Scopes:    []string{"billing:read"},
		Services:  []string{"billing"},
		CIDRs:     []string{"10.0.0.0/8"},
		NotBefore: now,
		ExpiresAt: now.Add(time.Hour),
		CreatedAt: now,
		CreatedBy: "test",
		HeldBy:    "holder-of-" + owner,
	}
}

func mustCreate(t *testing.T, s store.Store, tok *store.Token) {
	t.Helper()
	if err := s.Create(context.Background(), tok); err != nil {
		t.Fatalf("create: %v", err)
	}
}

func testCreateAndGet(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	tok.MaxUses = 3
	mustCreate(t, s, tok)
	for name, get := range map[string]func() (*store.Token, error){
		"by id":   func() (*store.Token, error) { return s.Get(ctx, tok.ID) },
		"by hash": func() (*store.Token, error) { return s.GetByHash(ctx, tok.Hash) },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != tok.ID || got.Owner != "alice" || got.Purpose != tok.Purpose ||
			fmt.Sprint(got.Scopes) != fmt.Sprint(tok.Scopes) || fmt.Sprint(got.CIDRs) != fmt.Sprint(tok.CIDRs) ||
			!got.ExpiresAt.Equal(tok.ExpiresAt) || !got.NotBefore.Equal(tok.NotBefore) || got.MaxUses != 3 {
			t.Fatalf("%s: got %+v, want %+v", name, got, tok)
		}
	}
}

func testCreateConflicts(t *testing.T, s store.Backend) {
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	sameID := NewToken("bob")
	sameID.ID = tok.ID
	if err := s.Create(context.Background(), sameID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same id: err = %v, want ErrConflict", err)
	}
	sameHash := NewToken("bob")
	sameHash.Hash = tok.Hash
	if err := s.Create(context.Background(), sameHash); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same hash: err = %v, want ErrConflict", err)
	}
	if _, err := s.Get(context.Background(), sameHash.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rejected token was stored: %v", err)
	}
}

func testNotFound(t *testing.T, s store.Backend) {
	ctx := context.Background()
	missing := NewToken("nobody")
	if _, err := s.Get(ctx, missing.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	if _, err := s.GetByHash(ctx, missing.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetByHash: %v", err)
	}
	if _, err := s.Update(ctx, missing.ID, func(*store.Token) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update: %v", err)
	}
	if _, err := s.ConsumeUse(ctx, missing.ID, store.Usage{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ConsumeUse: %v", err)
	}
	if _, err := s.Rotate(ctx, missing.ID, NewToken("x"), func(*store.Token) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Rotate: %v", err)
	}
}

func testList(t *testing.T, s store.Backend) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond)
	var ids []string
	for i, owner := range []string{"carol", "alice", "bob", "alice"} {
		tok := NewToken(owner)
		tok.CreatedAt = base.Add(time.Duration(i) * time.Second)
		if i == 3 {
			tok.Services = []string{"search"}
		}
		mustCreate(t, s, tok)
		ids = append(ids, tok.ID)
	}
	all, err := s.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("listed %d tokens, want 4", len(all))
	}
	for i, tok := range all {
		if tok.ID != ids[i] {
			t.Fatalf("list not ordered by creation: position %d is %s, want %s", i, tok.ID, ids[i])
		}
	}
	alice, _ := s.List(ctx, store.Filter{Owner: "alice"})
	if len(alice) != 2 {
		t.Fatalf("owner filter: %d tokens, want 2", len(alice))
	}
	search, _ := s.List(ctx, store.Filter{Owner: "alice", Service: "search"})
	if len(search) != 1 || search[0].ID != ids[3] {
		t.Fatalf("owner+service filter: got %d tokens", len(search))
	}
}

func testUpdate(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	before, _ := s.Get(ctx, tok.ID)
	at := time.Now().UTC().Truncate(time.Microsecond)
	updated, err := s.Update(ctx, tok.ID, func(t *store.Token) error {
		t.RevokedAt, t.RevokedBy, t.RevokeReason = at, "security", "leaked"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Version <= before.Version {
		t.Fatalf("version %d did not grow from %d", updated.Version, before.Version)
	}
	got, _ := s.GetByHash(ctx, tok.Hash)
	if !got.RevokedAt.Equal(at) || got.RevokeReason != "leaked" || got.Version != updated.Version {
		t.Fatalf("update not stored: %+v", got)
	}
}

func testUpdateError(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	before, _ := s.Get(ctx, tok.ID)
	boom := errors.New("refused")
	_, err := s.Update(ctx, tok.ID, func(t *store.Token) error {
		t.Owner = "mallory"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the change's error", err)
	}
	after, _ := s.Get(ctx, tok.ID)
	if after.Owner != "alice" || after.Version != before.Version {
		t.Fatalf("failed update was stored: %+v", after)
	}
}

func testRotate(t *testing.T, s store.Backend) {
	ctx := context.Background()
	old := NewToken("alice")
	mustCreate(t, s, old)
	grace := time.Now().UTC().Add(time.Minute).Truncate(time.Microsecond)

	// A successor whose hash collides must leave the old token untouched.
	clash := NewToken("alice")
	clash.Hash = old.Hash
	if _, err := s.Rotate(ctx, old.ID, clash, func(o *store.Token) error { o.GraceUntil = grace; return nil }); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotate with a clashing successor: err = %v, want ErrConflict", err)
	}
	if _, err := s.Get(ctx, clash.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("failed rotate stored the successor")
	}
	if got, _ := s.Get(ctx, old.ID); !got.GraceUntil.IsZero() {
		t.Fatal("failed rotate changed the old token")
	}

	next := NewToken("alice")
	next.RotatedFrom = old.ID
	updated, err := s.Rotate(ctx, old.ID, next, func(o *store.Token) error {
		o.GraceUntil, o.RotatedTo = grace, next.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !updated.GraceUntil.Equal(grace) || updated.RotatedTo != next.ID {
		t.Fatalf("old token after rotate: %+v", updated)
	}
	got, err := s.GetByHash(ctx, next.Hash)
	if err != nil || got.RotatedFrom != old.ID {
		t.Fatalf("successor: %+v, %v", got, err)
	}
	if stillOld, err := s.GetByHash(ctx, old.Hash); err != nil || stillOld.ID != old.ID {
		t.Fatalf("old secret no longer resolves during grace: %v", err)
	}
}

func testConsumeUseAtomic(t *testing.T, s store.Backend) {
	ctx := context.Background()
	for _, limit := range []int64{1, 3} {
		tok := NewToken("alice")
		tok.MaxUses = limit
		mustCreate(t, s, tok)
		var wg sync.WaitGroup
		var granted, exhausted atomic.Int64
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.ConsumeUse(ctx, tok.ID, store.Usage{TokenID: tok.ID, At: time.Now(), IP: "10.0.0.1"})
				switch {
				case err == nil:
					granted.Add(1)
				case errors.Is(err, store.ErrUsesExhausted):
					exhausted.Add(1)
				default:
					t.Errorf("ConsumeUse: %v", err)
				}
			}()
		}
		wg.Wait()
		if granted.Load() != limit || exhausted.Load() != 50-limit {
			t.Fatalf("limit %d: %d granted, %d exhausted", limit, granted.Load(), exhausted.Load())
		}
		got, _ := s.Get(ctx, tok.ID)
		if got.Uses != limit || got.LastUsedIP != "10.0.0.1" {
			t.Fatalf("limit %d: stored uses %d, last ip %q", limit, got.Uses, got.LastUsedIP)
		}
	}
}

func testConsumeUseUnlimited(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	for i := 0; i < 5; i++ {
		if _, err := s.ConsumeUse(ctx, tok.ID, store.Usage{TokenID: tok.ID, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Get(ctx, tok.ID); got.Uses != 5 {
		t.Fatalf("uses = %d, want 5", got.Uses)
	}
}

// rotate makes next the successor of old as lifecycle does: next takes
// over the uses old has left at the moment of the rotation.
func rotate(t *testing.T, s store.Backend, old *store.Token, next *store.Token) (*store.Token, error) {
	t.Helper()
	next.RotatedFrom = old.ID
	grace := time.Now().UTC().Add(time.Minute).Truncate(time.Microsecond)
	return s.Rotate(context.Background(), old.ID, next, func(o *store.Token) error {
		if o.MaxUses > 0 && o.Uses >= o.MaxUses {
			return store.ErrUsesExhausted
		}
		if o.MaxUses > 0 {
			next.MaxUses = o.MaxUses - o.Uses
		}
		o.GraceUntil, o.RotatedTo = grace, next.ID
		return nil
	})
}

// consume spends a use of id and reports whether it was granted; any
// error but ErrUsesExhausted fails the test.
func consume(t *testing.T, s store.Backend, id, ip string) bool {
	_, err := s.ConsumeUse(context.Background(), id, store.Usage{TokenID: id, At: time.Now(), IP: ip})
	if err != nil && !errors.Is(err, store.ErrUsesExhausted) {
		t.Errorf("ConsumeUse %s: %v", id, err)
	}
	return err == nil
}

// testRotationSharesBudget: a max_uses 3 token used once and rotated has
// 2 uses left in all, whichever secret spends them, and a second rotation
// during the first one's grace passes the same budget on.
func testRotationSharesBudget(t *testing.T, s store.Backend) {
	ctx := context.Background()
	old := NewToken("alice")
	old.MaxUses = 3
	mustCreate(t, s, old)
	if !consume(t, s, old.ID, "10.0.0.1") {
		t.Fatal("first use refused")
	}
	next := NewToken("alice")
	rotatedOld, err := rotate(t, s, old, next)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, next.ID); got.MaxUses != 2 || got.Uses != 0 {
		t.Fatalf("successor holds %d/%d uses, want 0/2", got.Uses, got.MaxUses)
	}
	if !consume(t, s, old.ID, "10.0.0.2") {
		t.Fatal("old secret refused within the budget")
	}
	if !consume(t, s, next.ID, "10.0.0.3") {
		t.Fatal("new secret refused within the budget")
	}
	for _, id := range []string{old.ID, next.ID, old.ID} {
		if consume(t, s, id, "10.0.0.4") {
			t.Fatalf("%s granted a use beyond max_uses 3", id)
		}
	}
	gotOld, _ := s.Get(ctx, old.ID)
	gotNext, _ := s.Get(ctx, next.ID)
	if gotOld.Uses+gotNext.Uses != 3 || gotNext.Uses != 2 {
		t.Fatalf("uses after the budget ran out: old %d, successor %d; want 1 and 2", gotOld.Uses, gotNext.Uses)
	}
	if gotOld.LastUsedIP != "10.0.0.2" || gotNext.LastUsedIP != "10.0.0.3" {
		t.Fatalf("usage recorded on the wrong token: old last used from %q, successor from %q", gotOld.LastUsedIP, gotNext.LastUsedIP)
	}
	if gotOld.Version != rotatedOld.Version {
		t.Fatalf("a use of the old secret bumped its version (%d -> %d)", rotatedOld.Version, gotOld.Version)
	}

	// A -> B -> C: a use of A while it is still in grace spends C's budget.
	a := NewToken("alice")
	a.MaxUses = 4
	mustCreate(t, s, a)
	b, c := NewToken("alice"), NewToken("alice")
	if _, err := rotate(t, s, a, b); err != nil {
		t.Fatal(err)
	}
	if !consume(t, s, b.ID, "10.0.0.5") {
		t.Fatal("B refused")
	}
	if _, err := rotate(t, s, b, c); err != nil {
		t.Fatal(err)
	}
	granted := 0
	for _, id := range []string{a.ID, b.ID, c.ID, a.ID, b.ID, c.ID} {
		if consume(t, s, id, "10.0.0.6") {
			granted++
		}
	}
	if granted != 3 {
		t.Fatalf("after one use of 4, the chain A->B->C granted %d more, want 3", granted)
	}
	if got, _ := s.Get(ctx, c.ID); got.Uses != 3 || got.MaxUses != 3 {
		t.Fatalf("C holds %d/%d uses, want 3/3", got.Uses, got.MaxUses)
	}
}

// testRotationBudgetAtomic races consumers on the old and the new secret.
func testRotationBudgetAtomic(t *testing.T, s store.Backend) {
	ctx := context.Background()
	old := NewToken("alice")
	old.MaxUses = 7
	mustCreate(t, s, old)
	for range 2 {
		consume(t, s, old.ID, "10.0.0.1")
	}
	next := NewToken("alice")
	if _, err := rotate(t, s, old, next); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var granted atomic.Int64
	for i := range 40 {
		id := old.ID
		if i%2 == 1 {
			id = next.ID
		}
		wg.Go(func() {
			if consume(t, s, id, "10.0.0.2") {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 5 {
		t.Fatalf("40 concurrent uses of old and new secrets after 2 of 7: %d granted, want 5", granted.Load())
	}
	if got, _ := s.Get(ctx, next.ID); got.Uses != 5 {
		t.Fatalf("successor stored %d uses, want 5", got.Uses)
	}
}

// testRotationRacesConsumers rotates while the old secret is being spent:
// the successor's budget is what was left at the instant of the rotation,
// so no use is counted twice and none is lost.
func testRotationRacesConsumers(t *testing.T, s store.Backend) {
	ctx := context.Background()
	const limit = 30
	old := NewToken("alice")
	old.MaxUses = limit
	mustCreate(t, s, old)
	next := NewToken("alice")
	var wg sync.WaitGroup
	var granted atomic.Int64
	// Rotate once the old secret is being spent, while it still is.
	spending := make(chan struct{})
	spendAll := func(id string) {
		for consume(t, s, id, "10.0.0.1") {
			if granted.Add(1) == limit/3 {
				close(spending)
			}
		}
	}
	for range 4 {
		wg.Go(func() { spendAll(old.ID) })
	}
	<-spending
	_, err := rotate(t, s, old, next)
	if err == nil {
		for range 4 {
			wg.Go(func() { spendAll(next.ID) })
		}
	} else if !errors.Is(err, store.ErrUsesExhausted) {
		t.Fatal(err)
	}
	wg.Wait()
	if granted.Load() != limit {
		t.Fatalf("rotation during use: %d uses granted in all, want max_uses %d", granted.Load(), limit)
	}
	if err == nil {
		gotOld, _ := s.Get(ctx, old.ID)
		t.Logf("rotated after %d of %d uses", gotOld.Uses, limit)
		gotNext, _ := s.Get(ctx, next.ID)
		if gotOld.Uses+gotNext.Uses != limit || gotNext.MaxUses != limit-gotOld.Uses {
			t.Fatalf("old %d uses, successor %d/%d: the budget was not handed over exactly", gotOld.Uses, gotNext.Uses, gotNext.MaxUses)
		}
	}
}

func testRecordUsage(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	tok.Scopes = []string{"billing:read", "billing:write"}
	mustCreate(t, s, tok)
	early := time.Now().UTC().Truncate(time.Microsecond)
	late := early.Add(time.Second)
	err := s.RecordUsage(ctx, []store.Usage{
		{TokenID: tok.ID, At: late, IP: "10.0.0.2", Scope: "billing:read"},
		{TokenID: tok.ID, At: early, IP: "10.0.0.1", Scope: "billing:read"}, // arrives late, must not win
		{TokenID: "tok_doesnotexist", At: late, IP: "10.9.9.9"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, tok.ID)
	if !got.LastUsedAt.Equal(late) || got.LastUsedIP != "10.0.0.2" {
		t.Fatalf("last used = %v from %q", got.LastUsedAt, got.LastUsedIP)
	}
	if fmt.Sprint(got.UsedScopes) != "[billing:read]" {
		t.Fatalf("used scopes = %v", got.UsedScopes)
	}
	if got.Uses != 0 {
		t.Fatalf("usage records changed the use count of an unlimited token: %d", got.Uses)
	}
	if got.Version != tok.Version {
		t.Fatalf("usage records bumped the version (%d -> %d), which would empty decision caches", tok.Version, got.Version)
	}
}

func testCopies(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("alice")
	mustCreate(t, s, tok)
	a, _ := s.Get(ctx, tok.ID)
	a.Scopes[0] = "billing:write"
	a.Owner = "mallory"
	b, _ := s.Get(ctx, tok.ID)
	if b.Scopes[0] != "billing:read" || b.Owner != "alice" {
		t.Fatal("changing a returned record changed the store")
	}
}

// NewRequest returns a pending request with a fresh id.
func NewRequest(by string) *store.Request {
	return &store.Request{
		ID: token.NewPrefixedID("req_"), Owner: "billing-exporter", Purpose: "nightly export",
		Scopes: []string{"billing:write"}, Services: []string{"billing"}, TTL: 2 * time.Hour,
		Status: store.RequestPending, RequestedBy: by, RequestedWith: token.NewID(),
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

func testRequests(t *testing.T, s store.Backend) {
	ctx := context.Background()
	first, second := NewRequest("alice"), NewRequest("bob")
	second.CreatedAt = first.CreatedAt.Add(time.Second)
	for _, r := range []*store.Request{second, first} {
		if err := s.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRequest(ctx, first); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate request: %v", err)
	}
	got, err := s.GetRequest(ctx, first.ID)
	if err != nil || got.RequestedBy != "alice" || got.TTL != 2*time.Hour || fmt.Sprint(got.Scopes) != "[billing:write]" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.GetRequest(ctx, "req_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing request: %v", err)
	}
	decided := time.Now().UTC().Truncate(time.Microsecond)
	updated, err := s.UpdateRequest(ctx, first.ID, func(r *store.Request) error {
		r.Status, r.DecidedBy, r.DecidedAt = store.RequestApproved, "bob", decided
		return nil
	})
	if err != nil || updated.Version <= got.Version {
		t.Fatalf("update: %+v %v", updated, err)
	}
	boom := errors.New("refused")
	if _, err := s.UpdateRequest(ctx, second.ID, func(r *store.Request) error { r.Status = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing update: %v", err)
	}
	pending, _ := s.ListRequests(ctx, store.RequestPending)
	if len(pending) != 1 || pending[0].ID != second.ID || pending[0].Status != store.RequestPending {
		t.Fatalf("pending list: %+v", pending)
	}
	all, _ := s.ListRequests(ctx, "")
	if len(all) != 2 || all[0].ID != first.ID || !all[0].DecidedAt.Equal(decided) {
		t.Fatalf("full list not ordered by creation: %+v", all)
	}
}

func testClaimAtomic(t *testing.T, s store.Backend) {
	ctx := context.Background()
	req := NewRequest("alice")
	req.Status = store.RequestApproved
	if err := s.CreateRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var claimed atomic.Int64
	var tokenIDs sync.Map
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := NewToken("billing-exporter")
			_, err := s.ClaimRequest(ctx, req.ID, func(r *store.Request) error {
				if r.Status != store.RequestApproved {
					return store.ErrConflict
				}
				r.Status, r.TokenID = store.RequestClaimed, tok.ID
				return nil
			}, tok)
			if err == nil {
				claimed.Add(1)
				tokenIDs.Store(tok.ID, true)
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if claimed.Load() != 1 {
		t.Fatalf("%d claims succeeded, want exactly 1", claimed.Load())
	}
	toks, _ := s.List(ctx, store.Filter{Owner: "billing-exporter"})
	if len(toks) != 1 {
		t.Fatalf("%d tokens created by claims, want 1", len(toks))
	}
	if _, ok := tokenIDs.Load(toks[0].ID); !ok {
		t.Fatal("stored token is not the winning claim's")
	}
	got, _ := s.GetRequest(ctx, req.ID)
	if got.TokenID != toks[0].ID {
		t.Fatalf("request points at %s, token is %s", got.TokenID, toks[0].ID)
	}

	// A claim whose token cannot be created leaves the request unclaimed.
	other := NewRequest("alice")
	other.Status = store.RequestApproved
	_ = s.CreateRequest(ctx, other)
	clash := NewToken("x")
	clash.Hash = toks[0].Hash
	_, err := s.ClaimRequest(ctx, other.ID, func(r *store.Request) error { r.Status = store.RequestClaimed; return nil }, clash)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("claim with clashing token: %v", err)
	}
	if got, _ := s.GetRequest(ctx, other.ID); got.Status != store.RequestApproved {
		t.Fatalf("failed claim changed the request to %s", got.Status)
	}
}

func testCreateFirst(t *testing.T, s store.Backend) {
	ctx := context.Background()
	other := NewToken("carol") // bound to billing, not the management service
	mustCreate(t, s, other)
	won := race(t, 10, store.ErrConflict, func() error {
		a, b := NewToken("alice"), NewToken("bob")
		a.Services, b.Services = []string{"tokengate-admin"}, []string{"tokengate-admin"}
		return s.CreateFirst(ctx, "tokengate-admin", []*store.Token{a, b})
	})
	if won != 1 {
		t.Fatalf("%d concurrent CreateFirst calls succeeded, want 1", won)
	}
	mgmt, _ := s.List(ctx, store.Filter{Service: "tokengate-admin"})
	if len(mgmt) != 2 {
		t.Fatalf("%d management tokens, want 2", len(mgmt))
	}
}

// testCustody checks that who holds a secret (Token.HeldBy) and the
// ticket a request names (Request.Ticket) survive every write path: the
// admin policy compares holders, so a backend that dropped held_by would
// turn every token into a legacy one.
func testCustody(t *testing.T, s store.Backend) {
	ctx := context.Background()
	tok := NewToken("billing-exporter")
	tok.HeldBy = "Ann@example.com"
	mustCreate(t, s, tok)
	for name, get := range map[string]func() (*store.Token, error){
		"get by id":   func() (*store.Token, error) { return s.Get(ctx, tok.ID) },
		"get by hash": func() (*store.Token, error) { return s.GetByHash(ctx, tok.Hash) },
		"list": func() (*store.Token, error) {
			all, err := s.List(ctx, store.Filter{Owner: "billing-exporter"})
			if err != nil || len(all) != 1 {
				return nil, fmt.Errorf("list: %d tokens, %v", len(all), err)
			}
			return all[0], nil
		},
		"update": func() (*store.Token, error) {
			return s.Update(ctx, tok.ID, func(t *store.Token) error { t.Purpose = "renamed"; return nil })
		},
		"consume": func() (*store.Token, error) {
			return s.ConsumeUse(ctx, tok.ID, store.Usage{TokenID: tok.ID, At: time.Now()})
		},
	} {
		got, err := get()
		if err != nil || got.HeldBy != "Ann@example.com" {
			t.Fatalf("%s: held_by %+v, %v", name, got, err)
		}
	}

	next := NewToken("billing-exporter")
	next.HeldBy, next.RotatedFrom = "bob", tok.ID
	if _, err := s.Rotate(ctx, tok.ID, next, func(o *store.Token) error { o.RotatedTo = next.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, next.ID); err != nil || got.HeldBy != "bob" {
		t.Fatalf("rotation successor: %+v, %v", got, err)
	}
	if got, err := s.Get(ctx, tok.ID); err != nil || got.HeldBy != "Ann@example.com" {
		t.Fatalf("rotated token: %+v, %v", got, err)
	}

	req := NewRequest("carol")
	req.Ticket = "CHG-1234: ledger migration"
	if err := s.CreateRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRequest(ctx, req.ID); err != nil || got.Ticket != req.Ticket {
		t.Fatalf("request ticket: %+v, %v", got, err)
	}
	approved, err := s.UpdateRequest(ctx, req.ID, func(r *store.Request) error { r.Status = store.RequestApproved; return nil })
	if err != nil || approved.Ticket != req.Ticket {
		t.Fatalf("updated request: %+v, %v", approved, err)
	}
	claimedTok := NewToken("claimed-owner")
	claimedTok.HeldBy = "carol"
	claimed, err := s.ClaimRequest(ctx, req.ID, func(r *store.Request) error {
		r.Status, r.TokenID = store.RequestClaimed, claimedTok.ID
		return nil
	}, claimedTok)
	if err != nil || claimed.Ticket != req.Ticket {
		t.Fatalf("claimed request: %+v, %v", claimed, err)
	}
	if got, err := s.GetByHash(ctx, claimedTok.Hash); err != nil || got.HeldBy != "carol" {
		t.Fatalf("claimed token: %+v, %v", got, err)
	}
	listed, err := s.ListRequests(ctx, store.RequestClaimed)
	if err != nil || len(listed) != 1 || listed[0].Ticket != req.Ticket {
		t.Fatalf("listed requests: %+v, %v", listed, err)
	}

	a, b := NewToken("dave"), NewToken("erin")
	a.Services, b.Services = []string{"tokengate-admin"}, []string{"tokengate-admin"}
	a.HeldBy, b.HeldBy = "dave", "erin"
	if err := s.CreateFirst(ctx, "tokengate-admin", []*store.Token{a, b}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*store.Token{a, b} {
		if got, err := s.Get(ctx, want.ID); err != nil || got.HeldBy != want.HeldBy {
			t.Fatalf("bootstrap token: %+v, %v", got, err)
		}
	}
}

// testLapseKept checks that a recorded lapse (Request.LapsedAt) is
// stored: the sweep that announces lapses reads it to announce each one
// once, so a backend that dropped it would announce every lapse again on
// every sweep.
func testLapseKept(t *testing.T, s store.Backend) {
	ctx := context.Background()
	req := NewRequest("alice")
	req.Status, req.ClaimBy = store.RequestApproved, time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	lapsed := req.ClaimBy.Add(time.Second)
	if _, err := s.UpdateRequest(ctx, req.ID, func(r *store.Request) error { r.LapsedAt = lapsed; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRequest(ctx, req.ID); err != nil || !got.LapsedAt.Equal(lapsed) {
		t.Fatalf("get: lapsed_at %+v, %v", got, err)
	}
	listed, err := s.ListRequests(ctx, store.RequestApproved)
	if err != nil || len(listed) != 1 || !listed[0].LapsedAt.Equal(lapsed) {
		t.Fatalf("list: %+v, %v", listed, err)
	}
}
