package caddyproc

import "testing"

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
