package mgmtapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// The local operator's routes on Caddy's admin endpoint, under
// /tokengate/: issue, bootstrap, backup and break glass. Whoever reaches
// that endpoint is the principal "local-operator", whose powers
// admin.rego bounds (by default: issue and rotate read-only tokens of at
// most an hour, revoke anything, read).
//
//	POST /tokengate/bootstrap            first two management tokens
//	POST /tokengate/tokens               issue (body: api.TokenSpec)
//	GET  /tokengate/backup               a copy of the bolt store
//	POST /tokengate/break-glass          start replacing lost bootstrap secrets
//	POST /tokengate/break-glass/{id}/confirm
//
// and, as on the management API, the token routes, report and check.

// LocalPrefix is where Caddy's admin endpoint serves the local
// operator's routes.
const LocalPrefix = "/tokengate"

// NewLocal builds the local operator's routes under LocalPrefix, for
// Caddy's admin endpoint. Every call is the local operator's and leaves
// its action lines only, no call line. node returns the running node, or
// nil: the admin endpoint outlives configs without a tokengate app.
func NewLocal(node func() *Node, host Host, logger *zap.Logger) *Server {
	return New(Options{Node: node, Auth: LocalOperator{}, Host: host, Prefix: LocalPrefix, Local: true, Logger: logger})
}

func issueToken(c *call, w http.ResponseWriter, r *http.Request) error {
	var spec api.TokenSpec
	if err := decodeBody(r, &spec); err != nil {
		return err
	}
	secret, tok, err := c.node.Manage.Issue(r.Context(), c.actor, lifecycle.Spec(spec))
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, api.IssuedToken{Secret: secret, Token: viewOf(tok, c.node.Now())})
	return nil
}

func bootstrap(c *call, w http.ResponseWriter, r *http.Request) error {
	var body api.BootstrapRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	ttl, err := bootstrapTTL(c, body.TTL)
	if err != nil {
		return err
	}
	secrets, toks, err := c.node.Manage.Bootstrap(r.Context(), c.actor, body.Requester, body.Approver, ttl)
	if err != nil {
		return err
	}
	var out api.BootstrapResult
	for _, t := range toks {
		out.Tokens = append(out.Tokens, api.IssuedToken{Secret: secrets[t.ID], Token: viewOf(t, c.node.Now())})
	}
	WriteJSON(w, http.StatusCreated, out)
	return nil
}

// bootstrapTTL is the lifetime asked for bootstrap tokens: max_ttl when
// none is given.
func bootstrapTTL(c *call, asked string) (time.Duration, error) {
	if asked == "" {
		return c.node.MaxTTL, nil
	}
	d, err := c.node.ParseDuration(asked)
	if err != nil || d <= 0 {
		return 0, &lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.TTLInvalid, Detail: "ttl is not a positive duration such as 24h or 30d"}
	}
	return d, nil
}

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
func backupStore(c *call, w http.ResponseWriter, r *http.Request) error {
	b, ok := c.node.Store.(backuper)
	if !ok {
		return reason.New(reason.BackupUnsupported, "only a bolt store is backed up here; back up a PostgreSQL store with pg_dump")
	}
	if err := c.node.Audit.Health().Err(); err != nil && !c.node.AuditFailOpen {
		return reason.New(reason.AuditUnavailable, "audit lines cannot be written, so the store is not exported")
	}
	c.node.Manage.BackupTaken(r.Context(), c.actor)
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
		c.node.Logger.Error("store backup failed", zap.Error(err))
	}
	return nil
}

// The break-glass routes of Caddy's admin endpoint recover from lost
// bootstrap secrets. Reaching the admin endpoint is not enough: the
// confirmation code goes to a file in Caddy's data folder (mode 0600, the
// Caddy service's user), and the confirmation is taken only after
// breakglass.Delay, while the break_glass.started audit line can alert
// someone. Both steps, refusals included, write audit lines; the new
// tokens' token.bootstrap lines name the recovery and its reason.

func startBreakGlass(c *call, w http.ResponseWriter, r *http.Request) error {
	var body api.BreakGlassStart
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	refuse := func(err error) error { return c.node.Manage.BreakGlassStartRefused(r.Context(), c.actor, err) }
	if body.Reason == "" {
		return refuse(&lifecycle.Error{Class: lifecycle.KindInvalid, Code: reason.ReasonRequired, Detail: "say why the bootstrap secrets must be replaced"})
	}
	for _, f := range [][2]string{{"requester", body.Requester}, {"approver", body.Approver}} {
		if err := lifecycle.CheckText(f[0], f[1]); err != nil {
			return refuse(err)
		}
	}
	if err := lifecycle.CheckReason(body.Reason); err != nil {
		return refuse(err)
	}
	// The admin policy decides at confirmation, as for bootstrap; the
	// plainest refusal is given now rather than after the delay.
	if strings.EqualFold(strings.TrimSpace(body.Requester), strings.TrimSpace(body.Approver)) {
		return refuse(&lifecycle.Error{Class: lifecycle.KindForbidden, Code: reason.SelfApproval, Detail: "the requester and the approver must be two different people"})
	}
	rec, code, err := c.node.BreakGlass.Start(c.node.Now(), body.Requester, body.Approver, body.Reason)
	if errors.Is(err, breakglass.ErrPending) {
		return refuse(&lifecycle.Error{Class: lifecycle.KindConflict, Code: reason.BreakGlassPending, Detail: "a recovery is pending on this node already: confirm it, or let it expire"})
	}
	file := filepath.Join(c.node.BreakGlassDir, rec.ID)
	if err := writeCode(file, code); err != nil {
		return fmt.Errorf("writing the break-glass code: %v", err)
	}
	c.node.Manage.BreakGlassStarted(r.Context(), c.actor, rec)
	WriteJSON(w, http.StatusAccepted, api.BreakGlassPending{ID: rec.ID, Requester: rec.Requester, Approver: rec.Approver,
		NotBefore: rec.NotBefore, Expires: rec.NotBefore.Add(breakglass.Window), CodeFile: file})
	return nil
}

// writeCode writes a new code file that only Caddy's user can read.
func writeCode(file, code string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(code + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func confirmBreakGlass(c *call, w http.ResponseWriter, r *http.Request) error {
	var body api.BreakGlassConfirm
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	id := r.PathValue("id")
	rec, err := c.node.BreakGlass.Confirm(c.node.Now(), id, body.Code)
	if err != nil {
		return c.node.Manage.BreakGlassConfirmRefused(r.Context(), c.actor, breakGlassRefusal(err, rec))
	}
	// Used or not, the code is spent.
	_ = os.Remove(filepath.Join(c.node.BreakGlassDir, rec.ID))
	ttl, err := bootstrapTTL(c, "")
	if err != nil {
		return err
	}
	secrets, toks, err := c.node.Manage.BreakGlass(r.Context(), c.actor, rec, ttl)
	if err != nil {
		return err
	}
	var out api.BootstrapResult
	for _, t := range toks {
		out.Tokens = append(out.Tokens, api.IssuedToken{Secret: secrets[t.ID], Token: viewOf(t, c.node.Now())})
	}
	WriteJSON(w, http.StatusCreated, out)
	return nil
}

// breakGlassRefusal turns a Desk error into the answer the operator sees.
func breakGlassRefusal(err error, rec breakglass.Recovery) error {
	switch {
	case errors.Is(err, breakglass.ErrUnknown):
		return &lifecycle.Error{Class: lifecycle.KindNotFound, Code: reason.BreakGlassUnknown, Detail: "no pending recovery with that id on this node"}
	case errors.Is(err, breakglass.ErrExpired):
		return &lifecycle.Error{Class: lifecycle.KindGone, Code: reason.BreakGlassExpired, Detail: "the recovery expired; start again"}
	case errors.Is(err, breakglass.ErrTooEarly):
		return &lifecycle.Error{Class: lifecycle.KindConflict, Code: reason.BreakGlassTooEarly, Detail: "confirm from " + rec.NotBefore.UTC().Format(time.RFC3339)}
	case errors.Is(err, breakglass.ErrCode):
		return &lifecycle.Error{Class: lifecycle.KindForbidden, Code: reason.BreakGlassCodeInvalid, Detail: "the code is not the one in the recovery's code file; three wrong codes cancel the recovery"}
	}
	return err
}
