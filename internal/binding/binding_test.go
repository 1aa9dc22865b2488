package binding

import (
	"net/netip"
	"testing"
)

func TestCIDR(t *testing.T) {
	for cidr, want := range map[string]bool{
		"10.0.0.0/8": true, "10.1.2.3/32": true, "192.168.0.0/16": true,
		"2001:db8::/32": true, "2001:db8::1/128": true, "::ffff:10.0.0.0/104": true,
		"0.0.0.0/0": false, "::/0": false, "8.0.0.0/7": false, "128.0.0.0/1": false,
		"2000::/3": false, "2001:d00::/24": false, "2001:db8::/31": false,
		"::ffff:0.0.0.0/96": false, "::ffff:0.0.0.0/100": false,
		"not a cidr": false, "": false, "10.0.0.1": false,
	} {
		if got := CIDR(cidr); got != want {
			t.Errorf("CIDR(%q) = %v, want %v", cidr, got, want)
		}
	}
}

func TestCIDRs(t *testing.T) {
	for _, tc := range []struct {
		cidrs []string
		want  bool
	}{
		{nil, false},
		{[]string{"10.0.0.0/8"}, true},
		{[]string{"10.0.0.0/8", "2001:db8::/48"}, true},
		{[]string{"10.0.0.0/8", "0.0.0.0/0"}, false},
		{[]string{"::/0"}, false},
	} {
		if got := CIDRs(tc.cidrs); got != tc.want {
			t.Errorf("CIDRs(%v) = %v, want %v", tc.cidrs, got, tc.want)
		}
	}
}

func TestUses(t *testing.T) {
	for n, want := range map[int64]bool{0: false, -1: false, 1: true, 1000: true, 1001: false, 1<<63 - 1: false} {
		if got := Uses(n); got != want {
			t.Errorf("Uses(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"::ffff:10.1.2.3/104": "10.0.0.0/8", "::ffff:0.0.0.0/96": "0.0.0.0/0",
		"10.1.2.3/8": "10.0.0.0/8", "2001:db8::1/32": "2001:db8::/32",
	} {
		if got := Canonical(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("Canonical(%s) = %s, want %s", in, got, want)
		}
	}
}
