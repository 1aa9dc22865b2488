package audit

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fixedClock stamps every entry with the same time, so a whole line can be
// compared byte for byte.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// lineRecorder keeps every line written to it.
type lineRecorder struct{ lines [][]byte }

func (w *lineRecorder) Write(p []byte) (int, error) {
	w.lines = append(w.lines, bytes.Clone(p))
	return len(p), nil
}

func (w *lineRecorder) Sync() error { return nil }

// pinnedLogger encodes as Caddy's `format json` does (zap's JSON encoder),
// at a fixed time.
func pinnedLogger() (*Logger, *lineRecorder) {
	w := new(lineRecorder)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	clock := fixedClock{time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)}
	base := zap.New(zapcore.NewCore(enc, w, zapcore.InfoLevel), zap.WithClock(clock)).Named(LoggerName)
	return New(base), w
}

// The exact bytes of audit lines, so that a change to how they are built
// (allocations, encoder calls) is seen to leave every byte as it was:
// pipelines parse these lines, and the schema only checks their shape.
func TestLineBytes(t *testing.T) {
	allow := &Call{
		Decision: "allow", Reasons: []string{}, Status: 200,
		TokenID: "tok_4bd073c5391439a5a75b", Owner: "team-7", HeldBy: "alice@example.com", Purpose: "nightly invoice export",
		Scopes: []string{"billing:read", "billing:write"}, Service: "billing",
		ClientIP: "192.0.2.10", Method: "GET", Host: "api.example.com", Path: "/billing/invoices",
		RequestID: "4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72", DecisionID: "dec_Xy7pQ2mN9vR4sT1uW3zA",
		Duration: 1234567 * time.Nanosecond, Cache: "hit", PolicyRev: "a6dd96411025",
	}
	const allowLine = `{"level":"info","ts":1773500966.535897,"logger":"tokengate.audit","msg":"decision","schema":2,"decision":"allow","reasons":[],"status":200,"token_id":"tok_4bd073c5391439a5a75b","owner":"team-7","held_by":"alice@example.com","purpose":"nightly invoice export","scopes":["billing:read","billing:write"],"service":"billing","client_ip":"192.0.2.10","method":"GET","host":"api.example.com","path":"/billing/invoices","request_id":"4f2b8a0e-3c2d-4a51-9b7e-5d1f0c9e8a72","decision_id":"dec_Xy7pQ2mN9vR4sT1uW3zA","duration":0.001234567,"cache":"hit","policy_rev":"a6dd96411025"}` + "\n"

	// A refusal before any token was found: what has no value (token,
	// owner, holder, scopes, decision, policy revision) is left out. Values
	// that need escaping (quotes, control characters, invalid UTF-8).
	deny := &Call{
		Decision: "deny", Reasons: []string{"scope_missing", "service_not_allowed"}, Status: 403,
		Actor: "bob@example.com", Purpose: "say \"hi\"\n\tthere", Service: "billing",
		ClientIP: "2001:db8::1", Method: "POST", Host: "api.example.com", Path: "/b\xffad/é/\\x",
		RequestID: "req-1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
		Duration: 2 * time.Second, Cache: "none",
	}
	const denyLine = `{"level":"info","ts":1773500966.535897,"logger":"tokengate.audit","msg":"decision","schema":2,"decision":"deny","reasons":["scope_missing","service_not_allowed"],"status":403,"actor":"bob@example.com","purpose":"say \"hi\"\n\tthere","service":"billing","client_ip":"2001:db8::1","method":"POST","host":"api.example.com","path":"/b\ufffdad/é/\\x","request_id":"req-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","duration":2,"cache":"none"}` + "\n"

	action := &Action{
		Msg: "token.rotated", Actor: "alice@example.com", TokenID: "tok_1", TokenRequestID: "req_2", RequestID: "uuid-3",
		TraceID: "t", SpanID: "s", Reason: "scheduled", Outcome: "success", Reasons: []string{"a", "b"},
		Owner: "team-7", HeldBy: "ci", Scopes: []string{"billing:read"}, Services: []string{"billing", "ledger"},
		TTL: 90*time.Minute + 500*time.Millisecond, SuccessorID: "tok_4",
		Workload: &Workload{Issuer: "github", Claims: map[string]string{"repository": "org/repo"}},
	}
	const actionLine = `{"level":"info","ts":1773500966.535897,"logger":"tokengate.audit","msg":"token.rotated","schema":2,"actor":"alice@example.com","token_id":"tok_1","token_request_id":"req_2","request_id":"uuid-3","trace_id":"t","span_id":"s","reason":"scheduled","outcome":"success","reasons":["a","b"],"owner":"team-7","held_by":"ci","scopes":["billing:read"],"services":["billing","ledger"],"ttl":5400,"successor_id":"tok_4","workload":{"issuer":"github","claims":{"repository":"org/repo"}}}` + "\n"
	const sparseActionLine = `{"level":"info","ts":1773500966.535897,"logger":"tokengate.audit","msg":"token.revoked","schema":2,"actor":"","outcome":""}` + "\n"

	l, w := pinnedLogger()
	l.Call(allow)
	if ce := l.CheckCall(); ce != nil {
		WriteCall(ce, allow)
	}
	l.Call(deny)
	l.Action(action)
	l.Action(&Action{Msg: "token.revoked"})
	want := []string{allowLine, allowLine, denyLine, actionLine, sparseActionLine}
	if len(w.lines) != len(want) {
		t.Fatalf("%d lines written, want %d", len(w.lines), len(want))
	}
	for i, got := range w.lines {
		if string(got) != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

// A core may keep the fields of an entry after writing it, as zap's
// observer does and Caddy's tests rely on: the line it keeps must be the
// one written, even when the caller reuses its Call (the handler's is on
// its stack) and whatever WriteCall does to spare allocations.
func TestWriteCallKeepsTheLineWritten(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := New(zap.New(core))
	c := &Call{Decision: "deny", Reasons: []string{"token_missing"}, Status: 401}
	if ce := l.CheckCall(); ce != nil {
		WriteCall(ce, c)
	}
	*c = Call{Decision: "allow", Status: 200}
	if ce := l.CheckCall(); ce != nil {
		WriteCall(ce, c)
	}
	lines := logs.AllUntimed()
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	first, second := lines[0].ContextMap(), lines[1].ContextMap()
	if first["decision"] != "deny" || fmt.Sprint(first["status"]) != "401" || fmt.Sprint(first["reasons"]) != "[token_missing]" {
		t.Errorf("first line changed after it was written: %v", first)
	}
	if second["decision"] != "allow" || fmt.Sprint(second["status"]) != "200" {
		t.Errorf("second line: %v", second)
	}
}
