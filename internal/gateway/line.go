package gateway

import "github.com/tokengate/caddy-tokengate/internal/audit"

// AuditLine is what the audit line of call says of it and of its result;
// the adapter adds what only it knows (the status, the request and trace
// ids, the duration).
func AuditLine(c *Call, res Result) audit.Call {
	line := audit.Call{
		Decision:   res.Outcome,
		Reasons:    res.Reasons(),
		Service:    c.Service,
		ClientIP:   c.Request.RemoteIP,
		Method:     c.Request.Method,
		Host:       c.Request.Host,
		Path:       c.Request.Path,
		DecisionID: res.DecisionID,
		Cache:      res.Cache,
		PolicyRev:  res.PolicyRev,
	}
	if t := res.Token; t != nil {
		line.TokenID, line.Owner, line.HeldBy, line.Purpose, line.Scopes = t.ID, t.Owner, t.HeldBy, t.Purpose, t.Scopes
	}
	return line
}
