package caddymodule

import (
	"context"
	"reflect"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/logging"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// auditCheckEvery is how often the audit files are looked at. It is the
// detection delay for a deleted or moved-away audit file: calls allowed
// in that window have their lines written to the file the writer still
// holds. Write failures need no look: the call after a failed write is
// refused.
const auditCheckEvery = time.Second

// auditHold is the gate's Hold: while audit lines cannot be written it
// answers audit_unavailable, so an allowed call gets a 503 before it spends
// a use or reaches the upstream, unless the operator set audit_fail_open.
// The refusal's own line is still tried: when it gets through, the sink
// works again and the next call passes.
func (a *App) auditHold() string {
	if a.AuditFailOpen || a.audit.Health().Healthy() {
		return ""
	}
	return reason.AuditUnavailable
}

// watchAudit looks at the audit files every auditCheckEvery and logs each
// change of the audit health to Caddy's log, so that the request path
// itself never logs or stats anything for it.
func (a *App) watchAudit(ctx context.Context, watches []*audit.FileWatch) {
	health := a.audit.Health()
	t := time.NewTicker(auditCheckEvery)
	defer t.Stop()
	wasHealthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, w := range watches {
			w.Check()
		}
		healthy := health.Healthy()
		if healthy == wasHealthy {
			continue
		}
		wasHealthy = healthy
		switch {
		case healthy:
			a.logger.Info("audit lines are written again; allowed calls pass")
		case a.AuditFailOpen:
			a.logger.Error("audit lines cannot be written; audit_fail_open lets allowed calls through unrecorded", zap.Error(health.Err()))
		default:
			a.logger.Error("audit lines cannot be written; refusing allowed calls with 503 audit_unavailable", zap.Error(health.Err()))
		}
	}
}

// auditFiles returns the files of the logs that receive tokengate.audit
// lines and write through Caddy's file writer, so that a deleted or
// moved-away one can be noticed. Writes to such a file keep succeeding,
// so only its path tells.
//
// Caddy offers a module no way to learn where its logs go: the logging
// config sits in an unexported field of the context. It is read here with
// reflect, read-only; ok is false when that shape is not found (another
// Caddy version), and then only write failures are noticed.
// TestAuditFilesFound pins the shape.
func auditFiles(ctx caddy.Context) (files []string, ok bool) {
	defer func() {
		if recover() != nil {
			files, ok = nil, false
		}
	}()
	cfg := reflect.ValueOf(ctx).FieldByName("cfg")
	if !cfg.IsValid() || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return nil, false
	}
	logs := cfg.Elem().FieldByName("Logging")
	if !logs.IsValid() || logs.IsNil() {
		return nil, true // no logging config: everything goes to stderr
	}
	fileWriterType := reflect.TypeOf(&logging.FileWriter{})
	iter := logs.Elem().FieldByName("Logs").MapRange()
	for iter.Next() {
		cl := iter.Value().Elem()
		if !receivesAudit(stringSlice(cl.FieldByName("Include")), stringSlice(cl.FieldByName("Exclude")), cl.FieldByName("Level").String()) {
			continue
		}
		opener := cl.FieldByName("writerOpener")
		if !opener.IsValid() || opener.IsNil() || opener.Elem().Type() != fileWriterType {
			continue
		}
		name := opener.Elem().Elem().FieldByName("Filename").String()
		if abs, err := caddy.FastAbs(name); err == nil {
			name = abs
		}
		files = append(files, name)
	}
	return files, true
}

func stringSlice(v reflect.Value) []string {
	out := make([]string, v.Len())
	for i := range out {
		out[i] = v.Index(i).String()
	}
	return out
}

// receivesAudit tells whether a log with these include and exclude lists
// and level takes tokengate.audit lines, by the rule of Caddy's
// CustomLog.loggerAllowed (unexported): the longest matching namespace
// wins, an include list admits nothing else, exclude "*" drops every
// module's lines.
func receivesAudit(include, exclude []string, level string) bool {
	if lvl, err := zapcore.ParseLevel(level); err == nil && lvl > zapcore.InfoLevel {
		return false
	}
	name := audit.LoggerName + "."
	accept, reject := 0, 0
	for _, ns := range include {
		if strings.HasPrefix(name, ns+".") && len(ns) > accept {
			accept = len(ns)
		}
	}
	if len(include) > 0 && accept == 0 {
		return false
	}
	for _, ns := range exclude {
		if ns == "*" {
			return false // every module's logs
		}
		if strings.HasPrefix(name, ns+".") && len(ns) > reject {
			reject = len(ns)
		}
	}
	return accept > reject || (len(include) == 0 && reject == 0)
}
