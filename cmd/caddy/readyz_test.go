package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/testutil/caddyproc"
)

const readyzCaddyfile = `{
	tokengate {
		store postgres "{DSN}"
	}
	log default {
		exclude tokengate.audit
	}
	log audit {
		include tokengate.audit
		output file {DIR}/audit.log
		format json
	}
}

http://127.0.0.1:{MGMT} {
	bind 127.0.0.1
	tokengate_admin
}

http://127.0.0.1:{METRICS} {
	bind 127.0.0.1
	metrics
}
`

// TestReadyzFollowsPostgres runs the real binary on PostgreSQL, with the
// admin endpoint on a unix socket (set by CADDY_ADMIN, as the systemd
// unit sets it, and open to the owner alone) and metrics on a site of
// their own: ready while the database
// answers and the node listens for changes; when the database goes away,
// /readyz names the store and the change feed, tokengate_store_up drops
// to 0 and tokengate_change_lag_seconds grows; when it comes back, ready
// again.
//
// Not parallel: the change lag is held to max_staleness (2s) while the
// feed confirms every 500ms, which other tests competing for the CPU
// could stretch.
func TestReadyzFollowsPostgres(t *testing.T) {
	db := newTestDB(t)
	dir := t.TempDir()
	mgmt := fmt.Sprintf("http://127.0.0.1:%d", caddyproc.FreePort(t))
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", caddyproc.FreePort(t))
	caddyfile := strings.NewReplacer(
		"{DIR}", dir, "{DSN}", db.dsn,
		"{MGMT}", strings.TrimPrefix(mgmt, "http://127.0.0.1:"),
		"{METRICS}", strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://127.0.0.1:"), "/metrics"),
	).Replace(readyzCaddyfile)
	unit, err := os.ReadFile(filepath.Join(caddyproc.RepoRoot(t), "dist", "systemd", "tokengate.service"))
	if err != nil {
		t.Fatal(err)
	}
	const unitAdmin = "Environment=CADDY_ADMIN=unix//run/caddy/admin.sock|0600\n"
	if !strings.Contains(string(unit), unitAdmin) {
		t.Fatalf("dist/systemd/tokengate.service lacks %q; update this test", unitAdmin)
	}
	admin := "unix/" + dir + "/admin.sock|0600"
	caddyproc.Command{Env: []string{"CADDY_ADMIN=" + admin}}.Start(t, dir, admin, caddyfile)
	fi, err := os.Stat(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("admin socket mode %v, want a socket with mode 0600", fi.Mode())
	}

	readyz := func() (int, []string) {
		resp, err := http.Get(mgmt + "/readyz")
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body struct {
			Status   string   `json:"status"`
			NotReady []string `json:"not_ready"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("readyz body: %v", err)
		}
		return resp.StatusCode, body.NotReady
	}
	gauges := func() (storeUp, lag float64) {
		resp, err := http.Get(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		storeUp, lag = -1, -1
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			name, value, _ := strings.Cut(sc.Text(), " ")
			v, _ := strconv.ParseFloat(value, 64)
			switch name {
			case "tokengate_store_up":
				storeUp = v
			case "tokengate_change_lag_seconds":
				lag = v
			}
		}
		return storeUp, lag
	}

	eventually(t, 10*time.Second, "ready on a reachable database", func() (bool, string) {
		status, notReady := readyz()
		return status == http.StatusOK, fmt.Sprintf("%d %v", status, notReady)
	})
	// The feed confirms every 500ms: the lag stays within max_staleness.
	if up, lag := gauges(); up != 1 || lag < 0 || lag > 2 {
		t.Errorf("with the database up: tokengate_store_up %v, tokengate_change_lag_seconds %v; want 1 and at most 2 (max_staleness)", up, lag)
	}

	db.cutOff(t)
	eventually(t, 10*time.Second, "not ready without the database", func() (bool, string) {
		status, notReady := readyz()
		return status == http.StatusServiceUnavailable && slices.Equal(notReady, []string{"store", "change_feed"}),
			fmt.Sprintf("%d %v", status, notReady)
	})
	time.Sleep(1100 * time.Millisecond)
	if up, lag := gauges(); up != 0 || lag < 1 {
		t.Errorf("without the database: tokengate_store_up %v, tokengate_change_lag_seconds %v; want 0 and at least 1", up, lag)
	}
	if resp, err := http.Get(mgmt + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("healthz without the database: %v %v, want 200 (the process lives)", resp, err)
	}

	db.restore(t)
	eventually(t, 15*time.Second, "ready again once the database is back", func() (bool, string) {
		status, notReady := readyz()
		return status == http.StatusOK, fmt.Sprintf("%d %v", status, notReady)
	})
	if up, lag := gauges(); up != 1 || lag < 0 || lag > 2 {
		t.Errorf("with the database back: tokengate_store_up %v, tokengate_change_lag_seconds %v; want 1 and at most 2 (max_staleness)", up, lag)
	}
}
