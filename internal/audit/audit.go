// Package audit writes tokengate's audit lines: one per gateway call and one
// per management action, as structured zap entries whose fields are fixed by
// schema v2 (audit.schema.json in this folder).
//
// Nothing here ever receives a secret: events carry token ids only.
package audit

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

// SchemaVersion is written into every line so pipelines can tell formats
// apart. Fields are only ever added within a version.
const SchemaVersion = 2

// LoggerName is the zap logger name operators route with
// `log { include tokengate.audit }`.
const LoggerName = "tokengate.audit"

// Call describes one gateway call.
type Call struct {
	Decision string // allow, deny or error
	Reasons  []string
	Status   int
	TokenID  string
	Owner    string
	HeldBy   string // who holds the secret used; empty without a token or for one stored before holders were recorded
	// Actor is the person whose ID token authenticated a management call
	// (their principal claim); empty for calls made with a token.
	Actor      string
	Purpose    string
	Scopes     []string
	Service    string
	ClientIP   string
	Method     string
	Host       string
	Path       string // never the query string, which may carry secrets; secret-like runs are redacted when written
	RequestID  string // Caddy's request UUID
	TraceID    string // from Caddy's tracing handler, when it is on
	SpanID     string
	DecisionID string
	Duration   time.Duration
	Cache      string // hit, miss or none
	PolicyRev  string
}

// MarshalLogObject writes the fields without reflection; zap.Inline puts
// them at the top level of the line.
func (c *Call) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("schema", SchemaVersion)
	enc.AddString("decision", c.Decision)
	_ = enc.AddArray("reasons", (*stringArray)(&c.Reasons))
	enc.AddInt("status", c.Status)
	// What is not known for this call (no token found yet, no decision
	// made) is left out rather than written empty, so a pipeline never
	// maps an empty string to a user or a token.
	addNonEmpty(enc, "token_id", c.TokenID)
	addNonEmpty(enc, "owner", c.Owner)
	addNonEmpty(enc, "held_by", c.HeldBy)
	addNonEmpty(enc, "actor", c.Actor)
	addNonEmpty(enc, "purpose", c.Purpose)
	if len(c.Scopes) > 0 {
		_ = enc.AddArray("scopes", (*stringArray)(&c.Scopes))
	}
	enc.AddString("service", c.Service)
	enc.AddString("client_ip", c.ClientIP)
	enc.AddString("method", c.Method)
	enc.AddString("host", c.Host)
	// A client that puts its secret in the URL must not have it copied
	// here; for a path without "tg" Redact is one strings.Index and no
	// allocation.
	enc.AddString("path", token.Redact(c.Path))
	enc.AddString("request_id", c.RequestID)
	addTrace(enc, c.TraceID, c.SpanID)
	addNonEmpty(enc, "decision_id", c.DecisionID)
	enc.AddDuration("duration", c.Duration)
	enc.AddString("cache", c.Cache)
	addNonEmpty(enc, "policy_rev", c.PolicyRev)
	return nil
}

// addNonEmpty writes a string field only when it has a value.
func addNonEmpty(enc zapcore.ObjectEncoder, key, value string) {
	if value != "" {
		enc.AddString(key, value)
	}
}

// Action describes one management action.
type Action struct {
	Msg     string // token.issued, token.revoked, ...
	Actor   string
	TokenID string
	// TokenRequestID is the management request (req_...) acted on, for
	// request/approve/deny/claim; RequestID is Caddy's request UUID, so
	// one id joins an action line to its call line.
	TokenRequestID string
	RequestID      string
	TraceID        string
	SpanID         string
	Reason         string
	Outcome        string // success or refused
	Reasons        []string
	// The token the action is about, when known; empty ones are omitted.
	Owner       string
	HeldBy      string // who holds the secret: claimed or was issued it, or (request lines) will once claimed
	Scopes      []string
	Services    []string
	TTL         time.Duration // lifetime, written in whole seconds
	SuccessorID string        // the new id of a rotation
	// RevokedIDs are every token a revoke stopped: the one named and the
	// live tokens of its rotation chain.
	RevokedIDs []string
	// Workload is who a token exchange was for, when it got as far as
	// verifying the workload's token.
	Workload *Workload
	// ClientIP and RefusedCount are set on the lines of attempts refused
	// for coming too often from one address: the first refusal of a
	// window (count 1), then one summary of the refusals counted after it.
	ClientIP     string
	RefusedCount int
}

// Workload identifies the CI job or service account behind a token
// exchange, by what its verified token says: never the token itself.
type Workload struct {
	Issuer string            // the configured workload issuer's name, e.g. github
	Claims map[string]string // the claims that name the job: repository, ref, environment, ...
}

// MarshalLogObject writes the workload as a nested object.
func (w *Workload) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("issuer", w.Issuer)
	if len(w.Claims) > 0 {
		return enc.AddObject("claims", stringMap(w.Claims))
	}
	return nil
}

type stringMap map[string]string

func (m stringMap) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for k, v := range m {
		enc.AddString(k, v)
	}
	return nil
}

// MarshalLogObject writes the fields of a management line.
func (a *Action) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("schema", SchemaVersion)
	enc.AddString("actor", a.Actor)
	addNonEmpty(enc, "token_id", a.TokenID)
	addNonEmpty(enc, "token_request_id", a.TokenRequestID)
	addNonEmpty(enc, "request_id", a.RequestID)
	addTrace(enc, a.TraceID, a.SpanID)
	addNonEmpty(enc, "reason", a.Reason)
	enc.AddString("outcome", a.Outcome)
	if len(a.Reasons) > 0 {
		_ = enc.AddArray("reasons", (*stringArray)(&a.Reasons))
	}
	if a.Owner != "" {
		enc.AddString("owner", a.Owner)
	}
	if a.HeldBy != "" {
		enc.AddString("held_by", a.HeldBy)
	}
	if len(a.Scopes) > 0 {
		_ = enc.AddArray("scopes", (*stringArray)(&a.Scopes))
	}
	if len(a.Services) > 0 {
		_ = enc.AddArray("services", (*stringArray)(&a.Services))
	}
	if a.TTL > 0 {
		enc.AddInt64("ttl", int64(a.TTL/time.Second))
	}
	if a.SuccessorID != "" {
		enc.AddString("successor_id", a.SuccessorID)
	}
	if len(a.RevokedIDs) > 0 {
		_ = enc.AddArray("revoked_ids", (*stringArray)(&a.RevokedIDs))
	}
	if a.Workload != nil {
		_ = enc.AddObject("workload", a.Workload)
	}
	addNonEmpty(enc, "client_ip", a.ClientIP)
	if a.RefusedCount > 0 {
		enc.AddInt("refused_count", a.RefusedCount)
	}
	return nil
}

// addTrace writes the trace ids Caddy's tracing handler set, only when
// tracing is on, so lines without tracing keep their shape.
func addTrace(enc zapcore.ObjectEncoder, traceID, spanID string) {
	if traceID != "" {
		enc.AddString("trace_id", traceID)
	}
	if spanID != "" {
		enc.AddString("span_id", spanID)
	}
}

// stringArray has a pointer receiver so that passing a field of a Call or
// Action as a zapcore.ArrayMarshaler stores a pointer in the interface:
// a slice would be copied to the heap for it, once per array per line.
type stringArray []string

func (s *stringArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range *s {
		enc.AppendString(v)
	}
	return nil
}

// Logger writes audit lines and keeps the Health of their sinks.
type Logger struct {
	log    *zap.Logger
	health *Health

	enabledOnce sync.Once
	enabled     bool
}

// New returns a Logger writing to base, renamed to LoggerName.
func New(base *zap.Logger) *Logger {
	return &Logger{
		log:    base.WithOptions(zap.WithCaller(false), zap.AddStacktrace(zapcore.FatalLevel)),
		health: new(Health),
	}
}

// Health tells whether lines are being recorded.
func (l *Logger) Health() *Health { return l.health }

// check starts an entry whose write failures land in l's Health rather
// than on the logger's error output.
func (l *Logger) check(msg string) *zapcore.CheckedEntry {
	ce := l.log.Check(zapcore.InfoLevel, msg)
	if ce != nil {
		ce.ErrorOutput = errorSink{l.health}
	}
	return ce
}

// write writes ce, accounting for the outcome in the Health its
// ErrorOutput points to. ce is recycled by zap once written.
func write(ce *zapcore.CheckedEntry, fields []zap.Field) {
	sink, ok := ce.ErrorOutput.(errorSink)
	if !ok {
		ce.Write(fields...)
		return
	}
	before := sink.h.beginWrite()
	ce.Write(fields...)
	sink.h.endWrite(before)
}

// Call writes the line for one gateway call; c escapes to the heap.
func (l *Logger) Call(c *Call) {
	if ce := l.check("decision"); ce != nil {
		write(ce, []zap.Field{zap.Inline(c)})
	}
}

// Action writes the line for one management action.
func (l *Logger) Action(a *Action) {
	if ce := l.check(a.Msg); ce != nil {
		write(ce, []zap.Field{zap.Inline(a)})
	}
}

// Trace names the HTTP request an action line belongs to: Caddy's request
// UUID (the call line's request_id) and, when Caddy's tracing handler is
// on, its trace and span ids.
type Trace struct {
	RequestID, TraceID, SpanID string
}

type traceKey struct{}

// WithTrace returns ctx carrying t, for the action lines written under it.
func WithTrace(ctx context.Context, t Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// ActionContext writes a's line with the request ids ctx carries, so the
// action line and the call line of one HTTP request share request_id.
func (l *Logger) ActionContext(ctx context.Context, a *Action) {
	if t, ok := ctx.Value(traceKey{}).(Trace); ok {
		a.RequestID, a.TraceID, a.SpanID = t.RequestID, t.TraceID, t.SpanID
	}
	l.Action(a)
}
