// Package binding says when a token's limits really bind it: when its
// CIDRs name a network, not the whole internet, and its use limit is a
// handful of calls, not 2^63. The default admin policy (policies/admin.rego)
// applies the same limits before it approves a request without a second
// person, and the hygiene report uses them to find write tokens bound to
// nothing in particular.
package binding

import "net/netip"

const (
	// MinIPv4Bits is the widest IPv4 prefix that counts as a binding:
	// a /8 is 16.7 million addresses, the size of 10.0.0.0/8, the largest
	// private range one organisation routes.
	MinIPv4Bits = 8
	// MinIPv6Bits is the widest IPv6 prefix that counts as a binding:
	// a /32 is the smallest allocation a regional registry makes to an
	// ISP or large organisation, so anything wider spans several.
	MinIPv6Bits = 32
	// MaxUses is the largest use limit that counts as a binding.
	MaxUses = 1000
)

// Canonical returns p masked, and an IPv4-mapped IPv6 prefix
// (::ffff:a.b.c.d/n, n >= 96) as the IPv4 prefix it matches: the gateway
// matches IPv4 clients against it, so "::ffff:0.0.0.0/96" is all of IPv4
// and must be seen as such.
func Canonical(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// CIDR reports whether one CIDR limits where a token may be used: it
// parses, and is no wider than MinIPv4Bits (IPv4) or MinIPv6Bits (IPv6).
// 0.0.0.0/0 and ::/0 bind nothing.
func CIDR(cidr string) bool {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	p = Canonical(p)
	if p.Addr().Is4() {
		return p.Bits() >= MinIPv4Bits
	}
	return p.Bits() >= MinIPv6Bits
}

// CIDRs reports whether a token's CIDRs, together, bind it: there is at
// least one and every one binds. A single wide range lets calls in from
// anywhere it covers, whatever the others say.
func CIDRs(cidrs []string) bool {
	if len(cidrs) == 0 {
		return false
	}
	for _, c := range cidrs {
		if !CIDR(c) {
			return false
		}
	}
	return true
}

// Uses reports whether a use limit binds: 1 to MaxUses calls (0 means
// unlimited).
func Uses(maxUses int64) bool { return maxUses >= 1 && maxUses <= MaxUses }
