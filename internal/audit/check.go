package audit

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// CheckCall starts the line for one gateway call, like Call does. It
// returns nil when the line would go nowhere (no log includes
// tokengate.audit), so the caller can skip gathering what only the line
// needs. Finish the line with WriteCall.
func (l *Logger) CheckCall() *zapcore.CheckedEntry {
	return l.check("decision")
}

// Enabled reports whether call lines go anywhere, without starting one
// per call. Caddy's logs pick loggers by name when an entry is checked,
// not in Core().Enabled (which said yes whenever any log took info
// lines, so a Caddy with no audit log still paid for what only a line
// needs), so it asks with a real Check, once: a Logger's cores do not
// change (a config reload makes a new Logger).
func (l *Logger) Enabled() bool {
	l.enabledOnce.Do(func() {
		l.enabled = l.log.Check(zapcore.InfoLevel, "decision") != nil
	})
	return l.enabled
}

// WriteCall writes c to an entry CheckCall returned, and records in the
// Logger's Health whether that worked. It writes a copy of c, so c does
// not escape: a caller's Call can stay on its stack, and only lines that
// are written cost an allocation.
func WriteCall(ce *zapcore.CheckedEntry, c *Call) {
	line := &callLine{call: *c}
	line.field[0] = zap.Inline(&line.call)
	write(ce, line.field[:])
}

// callLine is a call line on its way to the cores: a copy of the Call and
// the field that inlines it. Both must be on the heap (the cores get them
// through an interface, and some keep them, as zap's observer does); one
// allocation holds the two.
type callLine struct {
	call  Call
	field [1]zap.Field
}
