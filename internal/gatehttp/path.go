package gatehttp

import (
	"net/url"
	"path"
	"strings"
)

// CleanPath returns the path of a call in the one form the policy, the
// decision cache and the audit line see and the upstream receives. p is
// the percent-decoded path and raw the same path as sent (url.URL's Path
// and EscapedPath). clean is p with repeated slashes merged and dot
// segments resolved, a trailing slash kept: what Caddy's path matchers
// compare against (caddyhttp.CleanPath with merged slashes; a test in
// caddymodule holds the two equal). escaped is the same path in the
// client's own percent-encoding, for the upstream. Case is kept: the path
// is case-sensitive (RFC 9110), so a policy that must also stop
// /Billing/Private/ on a case-insensitive upstream compares
// lower(input.request.path).
//
// ok is false for a path that Caddy, the policy and some upstream could
// read as different resources, which the gateway refuses rather than
// guess which reading is right:
//   - an encoded slash (%2F): the policy would see two segments where an
//     upstream that keeps %2F inside a segment sees one (and ..%2F is not a
//     dot segment to it);
//   - an encoded dot segment (%2e%2e, .%2E, %2e): cleaning resolves it, an
//     upstream that removes dot segments before decoding does not;
//   - a backslash, a separator on Windows and to some frameworks;
//   - a ';', where Java servers cut path parameters (/private;x/ is
//     /private/ to Tomcat);
//   - a '%' left after decoding (%25): an upstream that decodes twice
//     sees another path;
//   - a '?' or '#' after decoding (%3F, %23): whatever decodes the path
//     and parses it again reads a query or a fragment there;
//   - a control character (NUL cuts the path short in C upstreams);
//   - anything that does not start with '/', such as OPTIONS *.
func CleanPath(p, raw string) (clean, escaped string, ok bool) {
	if p == "" {
		// The absolute form without a path, GET http://host HTTP/1.1.
		return "/", "/", true
	}
	if p[0] != '/' {
		return "", "", false
	}
	dirty := false
	for i := 0; i < len(p); i++ {
		if refusedInPath[p[i]] {
			return "", "", false
		}
		if p[i] == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
			dirty = true
		}
	}
	// Without "//" or "/." a rooted path is already clean; most paths
	// are, and cleaning costs as much as the rest of a cached decision's
	// path handling.
	clean = p
	if dirty {
		clean = cleanSegments(p)
	}
	if raw == p {
		// Nothing is encoded: the common case.
		return clean, clean, true
	}
	if strings.Contains(raw, "%2F") || strings.Contains(raw, "%2f") {
		return "", "", false
	}
	// Cleaning before and after decoding agree unless an encoded dot
	// formed a dot segment (encoded slashes are already refused).
	escaped = cleanSegments(raw)
	if decoded, err := url.PathUnescape(escaped); err != nil || decoded != clean {
		return "", "", false
	}
	return clean, escaped, true
}

// cleanSegments merges repeated slashes and resolves dot segments
// (path.Clean), keeping a trailing slash, as Caddy's path matchers do.
func cleanSegments(p string) string {
	cleaned := path.Clean(p)
	if cleaned != "/" && strings.HasSuffix(p, "/") {
		cleaned += "/"
	}
	return cleaned
}

// refusedInPath marks the bytes CleanPath refuses in a decoded path.
var refusedInPath = func() (refused [256]bool) {
	for c := 0; c < 0x20; c++ {
		refused[c] = true
	}
	for _, c := range "\x7f\\;%?#" {
		refused[c] = true
	}
	return refused
}()
