package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tokengate/caddy-tokengate/internal/auditlog"
	"github.com/tokengate/caddy-tokengate/internal/duration"
)

func init() {
	caddy.RegisterModule(AuditWriter{})
}

// AuditWriter is the log writer caddy.logging.writers.tokengate_audit: it
// writes the audit file so that it can be verified (each line a Merkle
// leaf, signed checkpoints in <filename>.checkpoints and on logger
// tokengate.checkpoint) and so that no line is lost to rm or a rotation
// (it follows the path). A write it cannot make fails, which zap reports
// to the audit logger's health: the gateway then holds allowed calls.
//
// Options are read when the file is first opened: a reload that keeps the
// filename keeps the open writer, its tree and its key, as Caddy's own
// file writer does. The file is closed (a last checkpoint signed) when no
// loaded config writes it any more.
type AuditWriter struct {
	auditlog.Config

	key  *auditlog.Key
	file *auditlog.Shared // held from Provision to Cleanup
}

// CaddyModule returns the Caddy module information.
func (AuditWriter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.logging.writers.tokengate_audit",
		New: func() caddy.Module { return new(AuditWriter) },
	}
}

// Provision resolves the filename and loads the signing key, so that a
// bad key fails the config rather than the first checkpoint.
func (w *AuditWriter) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	name, err := repl.ReplaceOrErr(w.Filename, true, true)
	if err != nil {
		return fmt.Errorf("tokengate_audit filename: %v", err)
	}
	if w.Filename, err = caddy.FastAbs(name); err != nil {
		return err
	}
	var setting string
	if w.SigningKey != "" {
		// An empty value is an error, not a fall back to the generated key.
		if setting, err = repl.ReplaceOrErr(w.SigningKey, true, true); err != nil {
			return fmt.Errorf("tokengate_audit signing_key: %v", err)
		}
	}
	if w.key, err = auditlog.LoadKey(setting, caddy.AppDataDir()); err != nil {
		return fmt.Errorf("tokengate_audit signing key: %v", err)
	}
	file := auditFiles.For(w.Filename)
	if err := file.Acquire(w.open); err != nil {
		return err
	}
	w.file = file
	return nil
}

// Cleanup gives back this config's hold on the file; the last config
// writing it closes it.
func (w *AuditWriter) Cleanup() error {
	if w.file == nil {
		return nil // Provision failed before taking it
	}
	err := w.file.Release()
	w.file = nil
	return err
}

func (w *AuditWriter) String() string { return w.Filename }

// WriterKey is the file alone: two configs writing one file share one
// writer, so one tree.
func (w *AuditWriter) WriterKey() string { return "tokengate_audit:" + w.Filename }

// OpenWriter returns the file Provision opened. Caddy asks once per
// WriterKey and keeps the answer for later configs, so what it gets is the
// file's lasting handle, which writes to whichever writer is open for it.
func (w *AuditWriter) OpenWriter() (io.WriteCloser, error) {
	if w.file == nil {
		return nil, errors.New("tokengate_audit writer was not provisioned")
	}
	return w.file, nil
}

// open opens the audit file with this config's options.
func (w *AuditWriter) open() (*auditlog.Writer, error) {
	return auditlog.Open(w.Options(w.key, logCheckpoint))
}

// checkpointLog names the logger of checkpoint lines; it is no module of
// its own, only the name Caddy routes by (`include tokengate.checkpoint`).
type checkpointLog struct{}

func (checkpointLog) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: auditlog.CheckpointLogger}
}

// logCheckpoint sends a signed checkpoint to logger tokengate.checkpoint
// of the running config, for witnesses. The writer outlives configs, so
// the logger is looked up each time; between configs there is none, and
// the checkpoint is in the .checkpoints file anyway.
func logCheckpoint(c auditlog.Checkpoint, err error) {
	ctx := caddy.ActiveContext()
	if ctx.Context == nil {
		return
	}
	auditlog.LogCheckpoint(ctx.Logger(checkpointLog{}), caddy.Log(), c, err)
}

// UnmarshalCaddyfile sets up the writer from Caddyfile tokens,
// `output tokengate_audit <filename> { ... }` (docs/caddyfile.md).
func (w *AuditWriter) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the writer's name
	if !d.AllArgs(&w.Filename) {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "signing_key":
			err = oneArg(d, &w.SigningKey)
		case "checkpoint_every":
			var every time.Duration
			every, err = parsedArg(d, auditlog.ParseCheckpointEvery)
			w.CheckpointEvery = duration.Duration(every)
		case "roll_disabled":
			w.Roll, err = new(false), noArgs(d)
		case "roll_size":
			w.RollSize, err = parsedArg(d, auditlog.ParseRollSize)
		case "roll_keep":
			w.RollKeep, err = parsedArg(d, auditlog.ParseRollKeep)
		case "roll_keep_for":
			w.RollKeepDays, err = parsedArg(d, auditlog.ParseRollKeepFor)
		case "roll_local_time":
			w.RollLocalTime, err = true, noArgs(d)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// auditFiles holds each audit file open for as long as a loaded config
// writes it: Provision acquires it, Cleanup releases it, and the last
// release closes it.
//
// The count is kept here because Caddy's own pool of log writers does not
// end: the closing it registers for a config's unload is never run (it is
// added to a copy of the config's context), so a writer it opened stays
// open, and a tokengate_audit writer kept signing checkpoints, for the
// life of the process. Caddy also keeps the handle OpenWriter returned for
// the file's WriterKey and hands it to later configs, so one
// auditlog.Shared stays per filename, whatever writer is open behind it.
var auditFiles auditlog.Files

var (
	_ caddy.Provisioner     = (*AuditWriter)(nil)
	_ caddy.CleanerUpper    = (*AuditWriter)(nil)
	_ caddy.WriterOpener    = (*AuditWriter)(nil)
	_ caddyfile.Unmarshaler = (*AuditWriter)(nil)
)
