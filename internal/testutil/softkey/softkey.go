// Package softkey is a WebAuthn authenticator in software, for tests in Go:
// it answers the options a relying party sends with a P-256 key, "none"
// attestation and a signature counter, as a security key would. (The
// browser tests use Chromium's own virtual authenticator instead.)
package softkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// Key is one authenticator holding one credential.
type Key struct {
	RPID   string
	Origin string
	// Count is the signature counter; each assertion adds one first,
	// unless NoCounter (as many passkeys, which always say zero).
	Count     uint32
	NoCounter bool
	ID        []byte

	priv       *ecdsa.PrivateKey
	userHandle []byte
}

// New returns a key for the relying party rpID reached at origin.
func New(rpID, origin string) *Key {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &Key{RPID: rpID, Origin: origin, ID: id, priv: priv}
}

var b64 = base64.RawURLEncoding

type options struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

func readOptions(data []byte) (challenge string, user []byte, err error) {
	var o options
	if err := json.Unmarshal(data, &o); err != nil {
		return "", nil, fmt.Errorf("softkey: options: %w", err)
	}
	if o.PublicKey.User.ID != "" {
		if user, err = b64.DecodeString(o.PublicKey.User.ID); err != nil {
			return "", nil, fmt.Errorf("softkey: user id: %w", err)
		}
	}
	return o.PublicKey.Challenge, user, nil
}

func (k *Key) clientData(kind, challenge string) []byte {
	data, _ := json.Marshal(map[string]any{"type": kind, "challenge": challenge, "origin": k.Origin, "crossOrigin": false})
	return data
}

// authData is the authenticator data: the RP id's hash, flags (user
// present and verified, plus attested data when registering), the
// counter, and the attested credential when given.
func (k *Key) authData(attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.RPID))
	flags := byte(0x01 | 0x04)
	if attested != nil {
		flags |= 0x40
	}
	out := append(rp[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.Count)
	return append(out, attested...)
}

// Register answers navigator.credentials.create options (go-webauthn's
// CredentialCreation JSON) with a registration response.
func (k *Key) Register(optionsJSON []byte) ([]byte, error) {
	challenge, user, err := readOptions(optionsJSON)
	if err != nil {
		return nil, err
	}
	k.userHandle = user
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: k.priv.X.FillBytes(make([]byte, 32)), -3: k.priv.Y.FillBytes(make([]byte, 32))})
	if err != nil {
		return nil, err
	}
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.ID)))
	attested = append(append(attested, k.ID...), cose...)
	object, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(attested)})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.ID), "rawId": b64.EncodeToString(k.ID), "type": "public-key",
		"response": map[string]string{
			"clientDataJSON":    b64.EncodeToString(k.clientData("webauthn.create", challenge)),
			"attestationObject": b64.EncodeToString(object),
		},
	})
}

// Assert answers navigator.credentials.get options (go-webauthn's
// CredentialAssertion JSON), counting one more signature.
func (k *Key) Assert(optionsJSON []byte) ([]byte, error) {
	challenge, _, err := readOptions(optionsJSON)
	if err != nil {
		return nil, err
	}
	if !k.NoCounter {
		k.Count++
	}
	client := k.clientData("webauthn.get", challenge)
	auth := k.authData(nil)
	clientHash := sha256.Sum256(client)
	signed := sha256.Sum256(append(append([]byte{}, auth...), clientHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, signed[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.ID), "rawId": b64.EncodeToString(k.ID), "type": "public-key",
		"response": map[string]string{
			"clientDataJSON":    b64.EncodeToString(client),
			"authenticatorData": b64.EncodeToString(auth),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(k.userHandle),
		},
	})
}
