package caddymodule

import (
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// backuper is a store that copies itself while it serves: the bolt store.
// PostgreSQL has its own tools (pg_dump).
type backuper interface {
	Backup(w io.Writer, size func(int64)) error
}

// backupStore answers GET /tokengate/backup on Caddy's admin endpoint with
// a consistent copy of the bolt file, taken while the node keeps serving;
// restoring is copying it back while Caddy is stopped. The copy holds
// every token's hash, so it is an audited export: a store.backup action
// line is written before the first byte, and while audit lines cannot be
// written no copy leaves (unless audit_fail_open).
func backupStore(c caller, w http.ResponseWriter, r *http.Request) error {
	b, ok := c.app.store.(backuper)
	if !ok {
		return &requestRefusal{status: http.StatusBadRequest, code: "backup_unsupported",
			msg: "only a bolt store is backed up here; back up a PostgreSQL store with pg_dump"}
	}
	if err := c.app.audit.Health().Err(); err != nil && !c.app.AuditFailOpen {
		return &requestRefusal{status: http.StatusServiceUnavailable, code: reason.AuditUnavailable,
			msg: "audit lines cannot be written, so the store is not exported"}
	}
	c.app.audit.ActionContext(r.Context(), &audit.Action{Msg: "store.backup", Actor: c.principal.Name, Outcome: "success"})
	err := b.Backup(w, func(size int64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="tokengate.db"`)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
	if err != nil {
		// The status is sent already; the client sees a copy shorter than
		// its Content-Length, which the CLI refuses.
		c.app.logger.Error("store backup failed", zap.Error(err))
	}
	return nil
}
