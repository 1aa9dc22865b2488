package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/breakglass"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
)

// The break-glass routes of Caddy's admin endpoint recover from lost
// bootstrap secrets. Reaching the admin endpoint is not enough: the
// confirmation code goes to a file in Caddy's data folder (mode 0600, the
// Caddy service's user), and the confirmation is taken only after
// breakglass.Delay, while the break_glass.started audit line can alert
// someone. Both steps, refusals included, write audit lines; the new
// tokens' token.bootstrap lines name the recovery and its reason.

// breakGlassDir is where confirmation codes are written.
func breakGlassDir() string { return filepath.Join(caddy.AppDataDir(), "tokengate", "break-glass") }

func startBreakGlass(c caller, w http.ResponseWriter, r *http.Request) error {
	var body api.BreakGlassStart
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	refuse := func(err error) error {
		lifecycle.AuditRefused(r.Context(), c.app.audit, "break_glass.started", c.principal.Name, "", "", err)
		return err
	}
	if body.Reason == "" {
		return refuse(&lifecycle.Error{Kind: lifecycle.KindInvalid, Code: "reason_required", Msg: "say why the bootstrap secrets must be replaced"})
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
		return refuse(&lifecycle.Error{Kind: lifecycle.KindForbidden, Code: "self_approval", Msg: "the requester and the approver must be two different people"})
	}
	rec, code, err := c.app.rt.breakGlass.Start(c.app.now(), body.Requester, body.Approver, body.Reason)
	if errors.Is(err, breakglass.ErrPending) {
		return refuse(&lifecycle.Error{Kind: lifecycle.KindConflict, Code: "break_glass_pending", Msg: "a recovery is pending on this node already: confirm it, or let it expire"})
	}
	file := filepath.Join(breakGlassDir(), rec.ID)
	if err := writeCode(file, code); err != nil {
		return fmt.Errorf("writing the break-glass code: %v", err)
	}
	c.app.audit.ActionContext(r.Context(), &audit.Action{Msg: "break_glass.started", Actor: c.principal.Name, Outcome: "success",
		Reason: fmt.Sprintf("%s: new management tokens for %s (request) and %s (approve), confirmable from %s: %s",
			rec.ID, rec.Requester, rec.Approver, rec.NotBefore.UTC().Format(time.RFC3339), rec.Reason)})
	writeJSON(w, http.StatusAccepted, api.BreakGlassPending{ID: rec.ID, Requester: rec.Requester, Approver: rec.Approver,
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

func confirmBreakGlass(c caller, w http.ResponseWriter, r *http.Request) error {
	var body api.BreakGlassConfirm
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	id := r.PathValue("id")
	rec, err := c.app.rt.breakGlass.Confirm(c.app.now(), id, body.Code)
	if err != nil {
		err = breakGlassRefusal(err, rec)
		lifecycle.AuditRefused(r.Context(), c.app.audit, "break_glass.confirmed", c.principal.Name, "", "", err)
		return err
	}
	// Used or not, the code is spent.
	_ = os.Remove(filepath.Join(breakGlassDir(), rec.ID))
	ttl, err := bootstrapTTL(c, "")
	if err != nil {
		return err
	}
	secrets, toks, err := c.app.manage.BreakGlass(r.Context(), c.principal, rec.Requester, rec.Approver, ttl, rec.ID+" ("+rec.Reason+")")
	if err != nil {
		return err
	}
	c.app.audit.ActionContext(r.Context(), &audit.Action{Msg: "break_glass.confirmed", Actor: c.principal.Name, Outcome: "success",
		Reason: fmt.Sprintf("%s: issued %s and %s", rec.ID, toks[0].ID, toks[1].ID)})
	var out api.BootstrapResult
	for _, t := range toks {
		out.Tokens = append(out.Tokens, api.IssuedToken{Secret: secrets[t.ID], Token: viewOf(t, c.app.now())})
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// breakGlassRefusal turns a Desk error into the answer the operator sees.
func breakGlassRefusal(err error, rec breakglass.Recovery) error {
	switch {
	case errors.Is(err, breakglass.ErrUnknown):
		return &lifecycle.Error{Kind: lifecycle.KindNotFound, Code: "break_glass_unknown", Msg: "no pending recovery with that id on this node"}
	case errors.Is(err, breakglass.ErrExpired):
		return &lifecycle.Error{Kind: lifecycle.KindGone, Code: "break_glass_expired", Msg: "the recovery expired; start again"}
	case errors.Is(err, breakglass.ErrTooEarly):
		return &lifecycle.Error{Kind: lifecycle.KindConflict, Code: "break_glass_too_early", Msg: "confirm from " + rec.NotBefore.UTC().Format(time.RFC3339)}
	case errors.Is(err, breakglass.ErrCode):
		return &lifecycle.Error{Kind: lifecycle.KindForbidden, Code: "break_glass_code_invalid", Msg: "the code is not the one in the recovery's code file; three wrong codes cancel the recovery"}
	}
	return err
}
