package mgmtapi

import (
	"context"
	"net/http"

	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// Paths of the leak intake on the management API.
const (
	LeaksPath       = "/v1/leaks"
	LeaksGitHubPath = "/v1/leaks/github"
)

// serveGitHubLeaks serves GitHub's secret scanning partner alerts, which
// carry their own signature instead of a credential (mounted beside the
// API). The intake writes the audit line of every attempt.
func serveGitHubLeaks(node *Node, _ Host, w http.ResponseWriter, r *http.Request) {
	if node.Leaks == nil {
		WriteProblem(w, reason.New(reason.RouteUnknown, ""))
		return
	}
	node.Leaks.ServeGitHub(w, r)
}

// leakWebhook serves GitHub's secret_scanning_alert webhook, which an
// organisation forwards to POST /v1/leaks signed with X-Hub-Signature-256
// instead of a credential. It reports whether r was one.
func leakWebhook(node *Node, w http.ResponseWriter, r *http.Request) bool {
	if node.Leaks == nil || r.URL.Path != LeaksPath || !leaks.IsWebhook(r) {
		return false
	}
	node.Leaks.ServeWebhook(w, r)
	return true
}

// reportLeaks is POST /v1/leaks (and the local operator's POST
// /tokengate/leaks): secrets any scanner found, from a caller the admin
// policy lets report (action report_leak).
func reportLeaks(c *call, w http.ResponseWriter, r *http.Request) error {
	if c.node.Leaks == nil {
		return reason.New(reason.RouteUnknown, "")
	}
	c.node.Leaks.ServeReport(w, r, c.actor.Name, func(ctx context.Context, dryRun bool) error {
		return c.node.Manage.ReportLeak(ctx, c.actor, dryRun)
	})
	return nil
}
