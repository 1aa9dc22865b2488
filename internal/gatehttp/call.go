package gatehttp

import (
	"net/http"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/policy"
)

// Call is a data-plane call read from its request.
type Call struct {
	gateway.Call
	// PathOK is false for a path CleanPath refuses (path_invalid):
	// nothing is authorized, and Request.Path is the path as sent, for
	// the audit line.
	PathOK bool
	// EscapedPath is the cleaned path in the client's own
	// percent-encoding, what the upstream receives.
	EscapedPath string
}

// ReadCall reads the call to service from r: the credential in header
// (canonical), the path cleaned (CleanPath), the headers the policy may
// read (canonical names) and the client's address as the server trusts
// it.
func ReadCall(r *http.Request, service, header string, policyHeaders []string, clientIP string) Call {
	rawPath := r.URL.EscapedPath()
	path, escapedPath, pathOK := CleanPath(r.URL.Path, rawPath)
	if !pathOK {
		path = rawPath
	}
	c := Call{
		Call: gateway.Call{
			Service: service,
			Request: policy.Request{
				Method:   r.Method,
				Host:     r.Host,
				Path:     path,
				RawPath:  rawPath,
				RemoteIP: clientIP,
				Headers:  PolicyHeaders(r, policyHeaders),
			},
		},
		PathOK:      pathOK,
		EscapedPath: escapedPath,
	}
	c.Secret, c.Problem = Credential(r, header)
	return c
}
