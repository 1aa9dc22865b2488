// Package benchdata builds the token stores the benchmarks measure against:
// real bbolt files and PostgreSQL schemas holding many realistic token
// records, each built once per test process however many benchmarks and
// rounds use it.
package benchdata

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/store/bolt"
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

// File is a built bbolt store.
type File struct {
	Path    string
	Secrets []string
	Built   time.Duration
}

var (
	mu    sync.Mutex
	files = map[int]*File{}
	dir   string
)

// BoltFile returns a bbolt file holding n tokens, built on first use and
// shared by every later caller in the process. The file is closed; open it
// with bolt.Open. Call Cleanup from TestMain to delete the files.
func BoltFile(tb testing.TB, n int) *File {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if f, ok := files[n]; ok {
		return f
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "tokengate-benchdata-")
		if err != nil {
			tb.Fatal(err)
		}
		dir = d
	}
	start := time.Now()
	path := filepath.Join(dir, fmt.Sprintf("tokens-%d.db", n))
	s, err := bolt.Open(path, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	secrets, records := Tokens(n, time.Now())
	// One transaction: bbolt then writes each bucket once, in key order.
	// In batches of 50,000 a million tokens took 78s instead of 47s, since
	// every batch rewrote leaf pages all over the file.
	if err := s.CreateMany(context.Background(), records); err != nil {
		tb.Fatalf("building %d-token store: %v", n, err)
	}
	f := &File{Path: path, Secrets: secrets, Built: time.Since(start)}
	tb.Logf("built %s with %d tokens in %s", path, n, f.Built.Round(time.Millisecond))
	files[n] = f
	return f
}

// Cleanup deletes every file BoltFile built and drops every schema
// PostgresSchema created.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
	dir, files = "", map[int]*File{}
	dropSchemas()
}
