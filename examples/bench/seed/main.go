// Command seed writes the same token data twice: as a tokengate bbolt store
// and as an OPA data document (tokens keyed by the hex SHA-256 of their
// secret), so tokengate and forward_auth to OPA decide over identical
// tokens. It prints the first token's secret to stdout.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/benchdata"
	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
)

func main() {
	n := flag.Int("tokens", 1000, "number of tokens")
	boltPath := flag.String("bolt", "tokens.db", "bbolt file to create")
	opaPath := flag.String("opa-data", "data.json", "OPA data file to create")
	secretsPath := flag.String("secrets", "", "file to write every secret to, one a line (optional)")
	flag.Parse()

	secrets, records := benchdata.Tokens(*n, time.Now())
	s, err := bolt.Open(*boltPath, time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.CreateMany(context.Background(), records); err != nil {
		log.Fatal(err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
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
	if *secretsPath != "" {
		f, err := os.Create(*secretsPath)
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range secrets {
			fmt.Fprintln(f, s)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(secrets[0])
}
