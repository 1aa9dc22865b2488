package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/store"
)

// peopleTests are the cases of store.PeopleStore, run for a backend that
// implements it.
var peopleTests = map[string]func(*testing.T, store.PeopleStore){
	"SessionRoundTrips":       testSessionRoundTrips,
	"SessionTouchOnlyForward": testSessionTouch,
	"SessionsEndPerPerson":    testSessionsEnd,
	"SecurityKeysPerPerson":   testSecurityKeys,
	"SecurityKeyCounter":      testSecurityKeyCounter,
	"SecurityKeyCounterRace":  testSecurityKeyCounterRace,
}

func runPeople(t *testing.T, b Backend) {
	for name, fn := range peopleTests {
		t.Run(name, func(t *testing.T) {
			s := b.New(t)
			defer s.Close()
			ps, ok := s.(store.PeopleStore)
			if !ok {
				t.Skip("the backend keeps no console sessions and security keys (store.PeopleStore): the console cannot run on it")
			}
			fn(t, ps)
		})
	}
}

func newSession(principal string, now time.Time) *store.Session {
	id := sha256.Sum256([]byte(rand.Text()))
	return &store.Session{
		IDHash:     id[:],
		Principal:  principal,
		Groups:     []string{"approvers", "developers"},
		CreatedAt:  now,
		LastSeenAt: now,
		ExpiresAt:  now.Add(12 * time.Hour),
	}
}

func newKey(principal string, now time.Time) *store.SecurityKey {
	id := sha256.Sum256([]byte(rand.Text()))
	return &store.SecurityKey{
		CredentialID: id[:16],
		Principal:    principal,
		Name:         "key of " + principal,
		Credential:   []byte(`{"publicKey":"opaque to the store"}`),
		CreatedAt:    now,
	}
}

func testSessionRoundTrips(t *testing.T, s store.PeopleStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	sess := newSession("alice@example.com", now)
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, sess); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create of one id: %v, want ErrConflict", err)
	}
	got, err := s.GetSession(ctx, sess.IDHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.Principal != sess.Principal || !slices.Equal(got.Groups, sess.Groups) ||
		!got.CreatedAt.Equal(now) || !got.LastSeenAt.Equal(now) || !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("got %+v, want %+v", got, sess)
	}
	other := sha256.Sum256([]byte("no such session"))
	if _, err := s.GetSession(ctx, other[:]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, sess.IDHash); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, sess.IDHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteSession(ctx, sess.IDHash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

func testSessionTouch(t *testing.T, s store.PeopleStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	sess := newSession("alice@example.com", now)
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	later := now.Add(5 * time.Minute)
	if err := s.TouchSession(ctx, sess.IDHash, later); err != nil {
		t.Fatal(err)
	}
	// A slower node touching with an older time does not move it back.
	if err := s.TouchSession(ctx, sess.IDHash, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, sess.IDHash)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeenAt.Equal(later) {
		t.Fatalf("last seen %v, want %v", got.LastSeenAt, later)
	}
	if !got.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("touch moved the absolute end: %v, want %v", got.ExpiresAt, sess.ExpiresAt)
	}
	gone := sha256.Sum256([]byte("no such session"))
	if err := s.TouchSession(ctx, gone[:], later); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touch of an unknown session: %v, want ErrNotFound", err)
	}
}

func testSessionsEnd(t *testing.T, s store.PeopleStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a1, a2 := newSession("alice@example.com", now), newSession("alice@example.com", now)
	b := newSession("bob@example.com", now)
	expired := newSession("carol@example.com", now.Add(-24*time.Hour))
	for _, sess := range []*store.Session{a1, a2, b, expired} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteSessions(ctx, "alice@example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("ended %d of alice's sessions, want 2", n)
	}
	for _, sess := range []*store.Session{a1, a2, expired} {
		if _, err := s.GetSession(ctx, sess.IDHash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s's session after DeleteSessions: %v, want ErrNotFound", sess.Principal, err)
		}
	}
	if _, err := s.GetSession(ctx, b.IDHash); err != nil {
		t.Fatalf("bob's live session went too: %v", err)
	}
}

func testSecurityKeys(t *testing.T, s store.PeopleStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	k1, k2 := newKey("alice@example.com", now), newKey("alice@example.com", now.Add(time.Second))
	kb := newKey("bob@example.com", now)
	for _, k := range []*store.SecurityKey{k1, k2, kb} {
		if err := s.AddSecurityKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	stolen := *k1
	stolen.Principal = "bob@example.com"
	if err := s.AddSecurityKey(ctx, &stolen); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("registering alice's credential id for bob: %v, want ErrConflict", err)
	}
	got, err := s.ListSecurityKeys(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].CredentialID) != string(k1.CredentialID) || string(got[1].CredentialID) != string(k2.CredentialID) {
		t.Fatalf("alice's keys: %+v, want k1 then k2", got)
	}
	if string(got[0].Credential) != string(k1.Credential) || got[0].Name != k1.Name || !got[0].CreatedAt.Equal(k1.CreatedAt) {
		t.Fatalf("key round trip: %+v, want %+v", got[0], k1)
	}
	if err := s.DeleteSecurityKey(ctx, "bob@example.com", k1.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob deleting alice's key: %v, want ErrNotFound", err)
	}
	if err := s.DeleteSecurityKey(ctx, "alice@example.com", k1.CredentialID); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListSecurityKeys(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0].CredentialID) != string(k2.CredentialID) {
		t.Fatalf("alice's keys after deleting k1: %+v", got)
	}
	none, err := s.ListSecurityKeys(ctx, "carol@example.com")
	if err != nil || len(none) != 0 {
		t.Fatalf("carol's keys: %v, %v; want none", none, err)
	}
}

func testSecurityKeyCounter(t *testing.T, s store.PeopleStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	k := newKey("alice@example.com", now)
	if err := s.AddSecurityKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseSecurityKey(ctx, "bob@example.com", k.CredentialID, 1, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob using alice's key: %v, want ErrNotFound", err)
	}
	used, err := s.UseSecurityKey(ctx, "alice@example.com", k.CredentialID, 5, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if used.SignCount != 5 || !used.LastUsedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("after use: %+v", used)
	}
	for _, replay := range []uint32{5, 4, 0} {
		if _, err := s.UseSecurityKey(ctx, "alice@example.com", k.CredentialID, replay, now.Add(2*time.Minute)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("counter %d after 5: %v, want ErrConflict", replay, err)
		}
	}
	keys, err := s.ListSecurityKeys(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if keys[0].SignCount != 5 || !keys[0].LastUsedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("a refused use changed the key: %+v", keys[0])
	}
	// An authenticator that keeps no counter says zero every time.
	zero := newKey("alice@example.com", now)
	if err := s.AddSecurityKey(ctx, zero); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.UseSecurityKey(ctx, "alice@example.com", zero.CredentialID, 0, now); err != nil {
			t.Fatalf("counterless key: %v", err)
		}
	}
}

// testSecurityKeyCounterRace: two nodes verifying the same assertion at
// once (a replay raced against the original) record it once.
func testSecurityKeyCounterRace(t *testing.T, s store.PeopleStore) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 5 {
		k := newKey("alice@example.com", now)
		if err := s.AddSecurityKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		won := race(t, 8, store.ErrConflict, func() error {
			_, err := s.UseSecurityKey(ctx, "alice@example.com", k.CredentialID, uint32(i+1), now)
			return err
		})
		if won != 1 {
			t.Fatalf("one assertion recorded %d times, want once", won)
		}
	}
}
