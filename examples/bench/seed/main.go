// Command seed writes the tokens of the benchmark's realistic mix twice: as
// a tokengate bbolt store and as an OPA data document (tokens keyed by the
// hex SHA-256 of their secret), so tokengate and forward_auth to OPA decide
// over identical tokens. It writes every secret, with what the load
// generator may do with it, to the -secrets file, and prints the first
// token's secret (read and write, no CIDR) to stdout.
//
// The mix: every token is bound to -service. One in four may only read
// (<service>:read); the others may also write and delete (<service>:write,
// which the default policy asks for POST, and <service>:delete for DELETE). A few tokens, at popularity ranks
// that see traffic, are bound to CIDRs that hold the loopback client.
// -unknown well-formed secrets that were never issued stand for the calls
// with a wrong token.
//
// With -rate-bolt, the same tokens are written to a second bbolt store,
// each with the rate limit -rate of its own: the setup that measures what
// a limit on every token costs.
//
// Lines of the -secrets file, in popularity order (line 1 the most popular):
//
//	<secret> rw|ro|cidr|unknown
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// cidrRanks are the popularity ranks (0 the most popular) of the tokens
// bound to CIDRs: spread from the head of the Zipf curve to its tail, so
// both cached and uncached decisions check an address.
var cidrRanks = map[int]bool{3: true, 17: true, 120: true, 900: true, 4000: true}

// loopback holds the benchmark's client, 127.0.0.1, and a second range it
// does not need, so the policy walks more than one CIDR.
var loopback = []string{"10.0.0.0/8", "127.0.0.0/8"}

func main() {
	n := flag.Int("tokens", 10000, "number of tokens issued")
	unknown := flag.Int("unknown", 1000, "number of well-formed secrets never issued")
	service := flag.String("service", "demo", "service every token is bound to")
	boltPath := flag.String("bolt", "tokens.db", "bbolt file to create")
	opaPath := flag.String("opa-data", "data.json", "OPA data file to create")
	secretsPath := flag.String("secrets", "secrets.txt", "file to write every secret to, with its kind")
	rateBoltPath := flag.String("rate-bolt", "", "second bbolt file, of the same tokens each with the rate limit -rate (none when empty)")
	rate := flag.String("rate", "1000000/1m", "the rate limit of every token in -rate-bolt, requests/window")
	flag.Parse()
	limit, err := ratelimit.Parse(*rate)
	if err != nil {
		log.Fatal(err)
	}

	now := time.Now()
	hasher := token.NewHasher("")
	secrets := make([]string, *n)
	kinds := make([]string, *n)
	records := make([]*store.Token, *n)
	for i := range *n {
		secret := token.NewSecret()
		hash := hasher.Hash(secret)
		kind, scopes := "rw", []string{*service + ":read", *service + ":write", *service + ":delete"}
		var cidrs []string
		switch {
		case cidrRanks[i]:
			kind, cidrs = "cidr", loopback
		case i%4 == 1:
			kind, scopes = "ro", []string{*service + ":read"}
		}
		secrets[i], kinds[i] = secret, kind
		records[i] = &store.Token{
			ID:        token.NewID(),
			Hash:      hash[:],
			Owner:     fmt.Sprintf("team-%d", i%100),
			Purpose:   fmt.Sprintf("benchmark client %d", i),
			Scopes:    scopes,
			Services:  []string{*service},
			CIDRs:     cidrs,
			NotBefore: now.Add(-time.Hour).UTC(),
			ExpiresAt: now.Add(24 * time.Hour).UTC(),
			CreatedAt: now.Add(-time.Hour).UTC(),
			CreatedBy: "bench",
			Version:   1,
		}
	}

	writeBolt(*boltPath, records)
	if *rateBoltPath != "" {
		limited := make([]*store.Token, len(records))
		for i, r := range records {
			limited[i] = r.Clone()
			limited[i].RateLimit = limit
		}
		writeBolt(*rateBoltPath, limited)
	}

	type opaToken struct {
		ID        string   `json:"id"`
		Owner     string   `json:"owner"`
		Scopes    []string `json:"scopes"`
		Services  []string `json:"services"`
		CIDRs     []string `json:"cidrs"`
		NotBefore int64    `json:"not_before"`
		ExpiresAt int64    `json:"expires_at"`
		RevokedAt int64    `json:"revoked_at"`
	}
	tokens := make(map[string]opaToken, len(records))
	for _, r := range records {
		tokens[hex.EncodeToString(r.Hash)] = opaToken{
			ID: r.ID, Owner: r.Owner, Scopes: r.Scopes, Services: r.Services, CIDRs: append([]string{}, r.CIDRs...),
			NotBefore: r.NotBefore.UnixNano(), ExpiresAt: r.ExpiresAt.UnixNano(),
		}
	}
	data, err := json.Marshal(map[string]any{"bench": map[string]any{"tokens": tokens}})
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*opaPath, data, 0o600); err != nil {
		log.Fatal(err)
	}

	f, err := os.OpenFile(*secretsPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i, secret := range secrets {
		fmt.Fprintln(w, secret, kinds[i])
	}
	for range *unknown {
		fmt.Fprintln(w, token.NewSecret(), "unknown")
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(secrets[0])
}

func writeBolt(path string, records []*store.Token) {
	s, err := bolt.Open(path, time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.CreateMany(context.Background(), records); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}
}
