package caddymodule

import (
	"net/http"

	"github.com/tokengate/caddy-tokengate/internal/health"
)

// serveProbe answers /healthz and /readyz (internal/health) on the
// management site, and reports whether r was one of them.
func (h *AdminHandler) serveProbe(w http.ResponseWriter, r *http.Request) bool {
	return health.Serve(w, r, h.app.parts.NotReady)
}
