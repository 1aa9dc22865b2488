package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bberrors "go.etcd.io/bbolt/errors"

	"github.com/tokengate/caddy-tokengate/internal/testutil/helperproc"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
	"github.com/tokengate/caddy-tokengate/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) store.Backend {
			s, err := Open(filepath.Join(t.TempDir(), "tokens.db"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Reopen: func(t *testing.T, s store.Backend) store.Backend {
			path := s.(*Store).Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			again, err := Open(path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return again
		},
	})
}

func TestSecretNeverInFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hasher := token.NewHasher("")
	var secrets []string
	for i := 0; i < 50; i++ {
		secret := token.NewSecret()
		secrets = append(secrets, secret)
		tok := storetest.NewToken("alice")
		sum := hasher.Hash(secret)
		tok.Hash = sum[:]
		if err := s.Create(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		// The hash is what the data plane looks up by.
		if got, err := s.GetByHash(context.Background(), sum[:]); err != nil || got.ID != tok.ID {
			t.Fatalf("lookup by hash: %v", err)
		}
	}
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range secrets {
		// Neither the whole secret nor its random part may be on disk.
		if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte(secret[len(token.Prefix):len(token.Prefix)+20])) {
			t.Fatalf("secret found in the bolt file")
		}
	}
	if !bytes.Contains(raw, []byte("conformance test")) {
		t.Fatal("grep found nothing at all: the check is not reading the data")
	}
}

func TestSecondOpenTimesOutInsteadOfHanging(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The same process opening the file twice is exactly the config-reload
	// bug that the caddymodule's usage pool prevents; bbolt must fail
	// rather than block forever.
	if _, err := Open(path, 100*time.Millisecond); err == nil {
		t.Fatal("second open of a locked file succeeded")
	}
}

// A second node on the same file is told the file is locked by another
// process, not bbolt's bare "timeout", and the error still matches
// bbolt's sentinel for callers that test it. The holder is another
// process (the test binary run again), as it is in production.
func TestSecondNodeIsToldTheFileIsLocked(t *testing.T) {
	if os.Getenv("TOKENGATE_BOLT_HOLD") != "" {
		s, err := Open(os.Getenv("TOKENGATE_BOLT_HOLD"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fmt.Println("holding")
		helperproc.HoldUntilReleased()
		return
	}
	path := filepath.Join(t.TempDir(), "tokens.db")
	lines := helperproc.Start(t, "TestSecondNodeIsToldTheFileIsLocked", "TOKENGATE_BOLT_HOLD="+path)
	if !lines.Scan() || lines.Text() != "holding" {
		t.Fatalf("the holder did not open the file: %q %v", lines.Text(), lines.Err())
	}

	_, err := Open(path, 100*time.Millisecond)
	if err == nil {
		t.Fatal("a second process opened a locked file")
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not say the file is locked by another process", err)
	}
	if !errors.Is(err, bberrors.ErrTimeout) {
		t.Errorf("error %q no longer wraps bbolt's ErrTimeout", err)
	}
}
