// Package benchtokens generates the token records benchmarks and the bench
// seed program load into a store. It is apart from benchdata, which imports
// testing, so that the seed binary links no test code.
package benchtokens

import (
	"fmt"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// Service is the service every generated token is bound to, with the
// scopes Service:read and Service:write.
const Service = "billing"

// Tokens returns n token records valid from an hour before now until a day
// after, with their secrets (secrets[i] belongs to records[i]). Hashes use
// token.NewHasher(""), so a Gate must hash the same way.
func Tokens(n int, now time.Time) (secrets []string, records []*store.Token) {
	hasher := token.NewHasher("")
	secrets = make([]string, n)
	records = make([]*store.Token, n)
	for i := range n {
		secret := token.NewSecret()
		hash := hasher.Hash(secret)
		secrets[i] = secret
		records[i] = &store.Token{
			ID:        token.NewID(),
			Hash:      hash[:],
			Owner:     fmt.Sprintf("team-%d", i%100),
			Purpose:   "benchmark client " + fmt.Sprint(i),
			Scopes:    []string{Service + ":read", Service + ":write"},
			Services:  []string{Service},
			NotBefore: now.Add(-time.Hour).UTC(),
			ExpiresAt: now.Add(24 * time.Hour).UTC(),
			CreatedAt: now.Add(-time.Hour).UTC(),
			CreatedBy: "bench",
			Version:   1,
		}
	}
	return secrets, records
}

// Hashes returns the store keys of secrets, hashed as Tokens hashes them,
// for benchmarks that look tokens up by hash.
func Hashes(secrets []string) [][]byte {
	hasher := token.NewHasher("")
	hashes := make([][]byte, len(secrets))
	for i, s := range secrets {
		h := hasher.Hash(s)
		hashes[i] = h[:]
	}
	return hashes
}
