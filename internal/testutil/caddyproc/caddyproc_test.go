package caddyproc

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/tokengate/caddy-tokengate/internal/testutil/helperproc"
)

// Tests that run side by side each start a Caddy on ports PickPort chose:
// Caddy binds with SO_REUSEPORT, so a port handed out twice would be
// shared by two of them without an error. 500 picks from the 12000 ports
// would repeat one about ten times over if drawn independently.
func TestPickPortNeverRepeats(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 500 {
		port, err := PickPort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		if port < 20000 || port >= 32000 {
			t.Fatalf("port %d outside 20000-31999, below the ephemeral range", port)
		}
		seen[port] = true
	}
}

// TestPickPortHoldsAgainstOtherProcesses: ports another test process
// picked are not handed out here while it runs (go test runs packages
// side by side, each a process with a PickPort of its own).
func TestPickPortHoldsAgainstOtherProcesses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the claim across processes is Linux's abstract sockets")
	}
	t.Parallel()
	lines := helperproc.Start(t, "TestPortHolder", "TOKENGATE_TEST_PORT_HOLDER=1")
	held := map[int]bool{}
	for lines.Scan() && lines.Text() != "held" {
		if port, err := strconv.Atoi(lines.Text()); err == nil {
			held[port] = true
		}
	}
	if len(held) != 300 {
		t.Fatalf("the other process held %d ports, want 300", len(held))
	}
	// Without the claim, 500 picks among 12,000 ports would land on one
	// of the other's 300 about 12 times.
	for range 500 {
		port, err := PickPort()
		if err != nil {
			t.Fatal(err)
		}
		if held[port] {
			t.Fatalf("port %d handed out here while another test process holds it", port)
		}
	}
}

// TestPortHolder is the other process of
// TestPickPortHoldsAgainstOtherProcesses: it picks 300 ports, prints them,
// and holds them until its stdin closes.
func TestPortHolder(t *testing.T) {
	if os.Getenv("TOKENGATE_TEST_PORT_HOLDER") != "1" {
		t.Skip("run by TestPickPortHoldsAgainstOtherProcesses")
	}
	for range 300 {
		port, err := PickPort()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(port)
	}
	fmt.Println("held")
	helperproc.HoldUntilReleased()
}
