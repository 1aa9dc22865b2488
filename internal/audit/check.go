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
// Logger's Health whether that worked.
func WriteCall(ce *zapcore.CheckedEntry, c *Call) {
	write(ce, zap.Inline(c))
}
