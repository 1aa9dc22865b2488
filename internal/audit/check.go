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

// Enabled reports whether call lines go anywhere, without starting one.
func (l *Logger) Enabled() bool {
	return l.log.Core().Enabled(zapcore.InfoLevel)
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
