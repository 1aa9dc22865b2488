// Package stepup is the WebAuthn step-up of the console: people register
// security keys, and approving what matters needs a fresh assertion of one
// whose challenge names the exact request being approved.
//
// No ceremony state is kept between the two halves of a ceremony, so a
// person may begin on one node and finish on another. Instead a challenge
// carries what it is for: the time it was made, a random nonce, and a hash
// of the purpose, the session and (for an approval) the request's id and
// content. Finishing recomputes that hash from what is being done now, so
// an assertion made for one request, or in another session, or for an
// older version of the request, does not verify. The store records each
// challenge once it has verified (MarkUsed), and the key's signature
// counter, so an assertion is good for one approval only.
package stepup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/tokengate/caddy-tokengate/internal/reason"
	"github.com/tokengate/caddy-tokengate/store"
)

// Store is what step-up keeps: the people's keys, and the challenges
// already used.
type Store interface {
	AddSecurityKey(ctx context.Context, k *store.SecurityKey) error
	ListSecurityKeys(ctx context.Context, principal string) ([]*store.SecurityKey, error)
	UseSecurityKey(ctx context.Context, principal string, credentialID []byte, signCount uint32, at time.Time) (*store.SecurityKey, error)
	DeleteSecurityKey(ctx context.Context, principal string, credentialID []byte) error
	MarkUsed(ctx context.Context, key []byte, expires, now time.Time) error
}

// Config says who the relying party is.
type Config struct {
	// RPID is the relying party id: the console's host name, never an
	// IP address (browsers refuse those).
	RPID string
	// Origins are the console's origins (scheme://host[:port]).
	Origins []string
	// Window is how long a challenge may be answered; default 5 minutes.
	Window time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Service runs the ceremonies.
type Service struct {
	wa     *webauthn.WebAuthn
	store  Store
	window time.Duration
	now    func() time.Time
}

// New checks the configuration and returns a Service.
func New(c Config, s Store) (*Service, error) {
	if c.Window <= 0 {
		c.Window = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          c.RPID,
		RPDisplayName: "tokengate",
		RPOrigins:     c.Origins,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.VerificationPreferred,
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("step-up: %w", err)
	}
	return &Service{wa: wa, store: s, window: c.Window, now: c.Now}, nil
}

// Refusal is why a ceremony did not verify. Reason is a stable code; the
// message may be shown to the person (it never holds their key material).
type Refusal struct {
	Reason string
	Detail string
}

func (r *Refusal) Error() string { return r.Reason + ": " + r.Detail }

// The reasons a ceremony is refused.
const (
	ReasonInvalid  = reason.StepUpInvalid  // malformed, wrong origin, bad signature, unknown key
	ReasonMismatch = reason.StepUpMismatch // made for another request, session or purpose
	ReasonExpired  = reason.StepUpExpired  // answered after the window
	ReasonReplayed = reason.StepUpReplayed // the assertion (or its challenge) was used before
)

func refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Binding is what a challenge is for: a purpose and the values that make
// it specific. Two bindings are equal only when every part is.
type Binding struct {
	Purpose string
	Parts   [][]byte
}

// Registration binds a key registration to the session it happens in.
func Registration(sessionIDHash []byte) Binding {
	return Binding{Purpose: "register", Parts: [][]byte{sessionIDHash}}
}

// Approval binds an assertion to approving one request, in its current
// content, in one session.
func Approval(sessionIDHash []byte, r *store.Request) Binding {
	digest := RequestDigest(r)
	return Binding{Purpose: "approve", Parts: [][]byte{sessionIDHash, []byte(r.ID), digest[:]}}
}

// RequestDigest hashes what an approver agrees to: everything a request
// asks for and who asked. A request changed after the challenge was made
// (it cannot be today, but a future edit must not ride on an old
// assertion) no longer matches.
func RequestDigest(r *store.Request) [32]byte {
	content, _ := json.Marshal(struct {
		ID, Owner, Purpose, RequestedBy, Ticket string
		Scopes, Services, CIDRs                 []string
		TTL                                     time.Duration
		NotBefore, CreatedAt                    time.Time
		MaxUses                                 int64
	}{r.ID, r.Owner, r.Purpose, r.RequestedBy, r.Ticket, r.Scopes, r.Services, r.CIDRs, r.TTL, r.NotBefore.UTC(), r.CreatedAt.UTC(), r.MaxUses})
	return sha256.Sum256(content)
}

// A challenge is: 8 bytes of Unix milliseconds, 16 random bytes, and the
// SHA-256 of the binding with those 24 bytes.
const (
	stampLen     = 8
	nonceLen     = 16
	challengeLen = stampLen + nonceLen + sha256.Size
)

func (s *Service) challenge(b Binding) []byte {
	c := make([]byte, stampLen+nonceLen, challengeLen)
	binary.BigEndian.PutUint64(c, uint64(s.now().UnixMilli()))
	rand.Read(c[stampLen:])
	return append(c, bindingHash(b, c)...)
}

func bindingHash(b Binding, head []byte) []byte {
	h := sha256.New()
	h.Write([]byte("tokengate step-up\x00" + b.Purpose + "\x00"))
	for _, p := range b.Parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	h.Write(head)
	return h.Sum(nil)
}

// checkChallenge says whether c was made by this service for b and is
// still within the window.
func (s *Service) checkChallenge(c []byte, b Binding) error {
	if len(c) != challengeLen {
		return refuse(ReasonInvalid, "the challenge is not one of ours")
	}
	if subtle.ConstantTimeCompare(bindingHash(b, c[:stampLen+nonceLen]), c[stampLen+nonceLen:]) != 1 {
		return refuse(ReasonMismatch, "the assertion was made for something else (another request, another version of it, or another session)")
	}
	made := time.UnixMilli(int64(binary.BigEndian.Uint64(c)))
	now := s.now()
	if now.Before(made.Add(-time.Minute)) || now.After(made.Add(s.window)) {
		return refuse(ReasonExpired, "the challenge was made at %s and could be answered for %s", made.UTC().Format(time.RFC3339), s.window)
	}
	return nil
}

// person is a principal as go-webauthn sees one.
type person struct {
	principal string
	display   string
	creds     []webauthn.Credential
}

// userHandle is what authenticators keep for a person: a hash, so that
// the principal's name is not written into the key.
func userHandle(principal string) []byte {
	h := sha256.Sum256([]byte("tokengate user\x00" + principal))
	return h[:]
}

func (p *person) WebAuthnID() []byte                         { return userHandle(p.principal) }
func (p *person) WebAuthnName() string                       { return p.principal }
func (p *person) WebAuthnDisplayName() string                { return p.display }
func (p *person) WebAuthnCredentials() []webauthn.Credential { return p.creds }

func (s *Service) person(ctx context.Context, principal, display string) (*person, error) {
	keys, err := s.store.ListSecurityKeys(ctx, principal)
	if err != nil {
		return nil, err
	}
	p := &person{principal: principal, display: display}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			return nil, fmt.Errorf("reading security key %x of %s: %w", k.CredentialID, principal, err)
		}
		c.Authenticator.SignCount = k.SignCount
		p.creds = append(p.creds, c)
	}
	return p, nil
}

// BeginRegistration returns the options for navigator.credentials.create,
// as JSON, for a key of principal bound to the session.
func (s *Service) BeginRegistration(ctx context.Context, principal, display string, sessionIDHash []byte) ([]byte, error) {
	p, err := s.person(ctx, principal, display)
	if err != nil {
		return nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(p.creds))
	for _, c := range p.creds {
		exclude = append(exclude, c.Descriptor())
	}
	creation, _, err := s.wa.BeginRegistration(p,
		webauthn.WithExclusions(exclude),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		withChallenge(s.challenge(Registration(sessionIDHash))))
	if err != nil {
		return nil, fmt.Errorf("step-up: beginning a registration: %w", err)
	}
	return json.Marshal(creation)
}

// withChallenge sets our challenge on a registration (go-webauthn has the
// option for logins only).
func withChallenge(c []byte) webauthn.RegistrationOption {
	return func(o *protocol.PublicKeyCredentialCreationOptions) error { o.Challenge = c; return nil }
}

// FinishRegistration verifies the browser's answer and stores the key
// under name.
func (s *Service) FinishRegistration(ctx context.Context, principal, display, name string, sessionIDHash []byte, response []byte) (*store.SecurityKey, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, refuse(ReasonInvalid, "the registration response is malformed")
	}
	challenge, err := base64.RawURLEncoding.DecodeString(parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return nil, refuse(ReasonInvalid, "the registration response's challenge is malformed")
	}
	if err := s.checkChallenge(challenge, Registration(sessionIDHash)); err != nil {
		return nil, err
	}
	p, err := s.person(ctx, principal, display)
	if err != nil {
		return nil, err
	}
	session := webauthn.SessionData{
		Challenge:        base64URL(challenge),
		RelyingPartyID:   s.wa.Config.RPID,
		UserID:           p.WebAuthnID(),
		UserVerification: s.wa.Config.AuthenticatorSelection.UserVerification,
		// What BeginRegistration offered (it offers the default set).
		CredParams: webauthn.CredentialParametersDefault(),
	}
	cred, err := s.wa.CreateCredential(p, session, parsed)
	if err != nil {
		return nil, refuse(ReasonInvalid, "the registration did not verify: %s", describe(err))
	}
	if err := s.store.MarkUsed(ctx, usedKey(challenge), s.now().Add(s.window+time.Minute), s.now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, refuse(ReasonReplayed, "this registration was completed before")
		}
		return nil, err
	}
	record, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	k := &store.SecurityKey{
		CredentialID: cred.ID,
		Principal:    principal,
		Name:         name,
		Credential:   record,
		SignCount:    cred.Authenticator.SignCount,
		CreatedAt:    s.now().UTC(),
	}
	if err := s.store.AddSecurityKey(ctx, k); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, refuse(ReasonInvalid, "this security key is registered already")
		}
		return nil, err
	}
	return k, nil
}

// BeginAssertion returns the options for navigator.credentials.get, as
// JSON, for an assertion of one of principal's keys bound to b. It
// returns ErrNoKeys when principal has none.
func (s *Service) BeginAssertion(ctx context.Context, principal string, b Binding) ([]byte, error) {
	p, err := s.person(ctx, principal, "")
	if err != nil {
		return nil, err
	}
	if len(p.creds) == 0 {
		return nil, ErrNoKeys
	}
	assertion, _, err := s.wa.BeginLogin(p, webauthn.WithChallenge(s.challenge(b)))
	if err != nil {
		return nil, fmt.Errorf("step-up: beginning an assertion: %w", err)
	}
	return json.Marshal(assertion)
}

// ErrNoKeys: the person has registered no security key.
var ErrNoKeys = errors.New("no security key is registered")

// FinishAssertion verifies an assertion of one of principal's keys for b.
// It succeeds once per assertion: the challenge is recorded as used, and
// the key's counter must advance.
func (s *Service) FinishAssertion(ctx context.Context, principal string, b Binding, response []byte) error {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return refuse(ReasonInvalid, "the assertion is malformed")
	}
	challenge, err := base64.RawURLEncoding.DecodeString(parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return refuse(ReasonInvalid, "the assertion's challenge is malformed")
	}
	if err := s.checkChallenge(challenge, b); err != nil {
		return err
	}
	p, err := s.person(ctx, principal, "")
	if err != nil {
		return err
	}
	allowed := make([][]byte, 0, len(p.creds))
	for _, c := range p.creds {
		allowed = append(allowed, c.ID)
	}
	if !slices.ContainsFunc(allowed, func(id []byte) bool { return bytes.Equal(id, parsed.RawID) }) {
		return refuse(ReasonInvalid, "the assertion is not from one of your registered security keys")
	}
	session := webauthn.SessionData{
		Challenge:            base64URL(challenge),
		RelyingPartyID:       s.wa.Config.RPID,
		UserID:               p.WebAuthnID(),
		AllowedCredentialIDs: allowed,
		UserVerification:     s.wa.Config.AuthenticatorSelection.UserVerification,
	}
	cred, err := s.wa.ValidateLogin(p, session, parsed)
	if err != nil {
		return refuse(ReasonInvalid, "the assertion did not verify: %s", describe(err))
	}
	now := s.now()
	if err := s.store.MarkUsed(ctx, usedKey(challenge), now.Add(s.window+time.Minute), now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return refuse(ReasonReplayed, "this assertion was used before")
		}
		return err
	}
	if _, err := s.store.UseSecurityKey(ctx, principal, cred.ID, parsed.Response.AuthenticatorData.Counter, now.UTC()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return refuse(ReasonReplayed, "the security key's signature counter did not advance (a replayed assertion, or a cloned key)")
		}
		return err
	}
	return nil
}

// usedKey is what MarkUsed records for a challenge answered.
func usedKey(challenge []byte) []byte {
	h := sha256.Sum256(append([]byte("tokengate step-up used\x00"), challenge...))
	return h[:]
}

func base64URL(b []byte) string { return protocol.URLEncodedBase64(b).String() }

// describe gives go-webauthn's own words for a failure, without any of the
// response's bytes.
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		if pe.DevInfo != "" {
			return pe.Details + " (" + pe.DevInfo + ")"
		}
		return pe.Details
	}
	return "verification failed"
}

// Keys lists principal's registered keys, oldest first.
func (s *Service) Keys(ctx context.Context, principal string) ([]*store.SecurityKey, error) {
	return s.store.ListSecurityKeys(ctx, principal)
}

// KeyID is how a page names a key: its credential id in base64url.
func KeyID(k *store.SecurityKey) string { return base64.RawURLEncoding.EncodeToString(k.CredentialID) }

// RemoveKey deletes principal's key named by KeyID; store.ErrNotFound when
// they have no such key.
func (s *Service) RemoveKey(ctx context.Context, principal, keyID string) error {
	id, err := base64.RawURLEncoding.DecodeString(keyID)
	if err != nil {
		return store.ErrNotFound
	}
	return s.store.DeleteSecurityKey(ctx, principal, id)
}
