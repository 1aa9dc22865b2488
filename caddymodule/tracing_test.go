package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestAuditLinesCarryCaddysTrace: behind Caddy's tracing handler, a
// call's audit line carries the trace and span ids the upstream receives
// in traceparent, a caller's traceparent continues into the line, and a
// management action's line carries the ids of the call that made it.
// Without the tracing handler a line has neither field.
func TestAuditLinesCarryCaddysTrace(t *testing.T) {
	t.Parallel()
	// No collector: the tracing handler still makes and propagates
	// spans, and drops them instead of exporting.
	e := newEnv(t, envOptions{environ: []string{"OTEL_TRACES_EXPORTER=none"}})
	newEnvReusing(e, envOptions{extraRoutes: fmt.Sprintf(`
	route /traced/* {
		tracing
		tokengate billing
		reverse_proxy %s
	}
	route /traced-admin/* {
		tracing
		uri strip_prefix /traced-admin
		tokengate_admin
	}`, e.upstream.Listener.Addr())})
	secret, _ := e.issue(map[string]any{
		"owner": "alice", "purpose": "read invoices for the nightly report",
		"scopes": []string{"billing:read"}, "services": []string{"billing"}, "ttl": "1h",
	})

	// A call that starts its trace at Caddy.
	if r := call(t, "GET", e.gateURL+"/traced/trace-1", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("traced call: %d %s", r.status, r.body)
	}
	traceID, spanID := upstreamTraceparent(t, e, "/traced/trace-1")
	line := e.auditFor("/traced/trace-1")
	if line["trace_id"] != traceID || line["span_id"] != spanID {
		t.Errorf("call line trace_id %v span_id %v; upstream got trace %s span %s", line["trace_id"], line["span_id"], traceID, spanID)
	}

	// A call whose client sent a traceparent: the trace goes on, with
	// Caddy's span as the child of the client's.
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := call(t, "GET", e.gateURL+"/traced/trace-2", append(bearer(secret), "Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")...)
	if r.status != http.StatusOK {
		t.Fatalf("traced call with traceparent: %d %s", r.status, r.body)
	}
	traceID, spanID = upstreamTraceparent(t, e, "/traced/trace-2")
	line = e.auditFor("/traced/trace-2")
	if traceID != clientTrace || spanID == clientSpan || line["trace_id"] != clientTrace || line["span_id"] != spanID {
		t.Errorf("call line trace_id %v span_id %v; client sent trace %s span %s, upstream got trace %s span %s",
			line["trace_id"], line["span_id"], clientTrace, clientSpan, traceID, spanID)
	}

	// A refused call is traced as well.
	if r := call(t, "GET", e.gateURL+"/traced/trace-3"); r.status != http.StatusUnauthorized {
		t.Fatalf("traced call without a token: %d %s", r.status, r.body)
	}
	if line := e.auditFor("/traced/trace-3"); len(fmt.Sprint(line["trace_id"])) != 32 || len(fmt.Sprint(line["span_id"])) != 16 {
		t.Errorf("refused call line: trace_id %v span_id %v", line["trace_id"], line["span_id"])
	}

	// A management action: its line and its call line share the ids.
	e.bootstrap()
	status, body := e.send(e.gateURL, e.requester, "POST", "/traced-admin/v1/requests", writeRequest(nil))
	if status != http.StatusAccepted {
		t.Fatalf("traced management call: %d %s", status, body)
	}
	req := decode[RequestOutcome](t, body).Request
	callLine := e.auditFor("/v1/requests")
	var action map[string]any
	for _, l := range e.auditLines() {
		if l["msg"] != "decision" && l["token_request_id"] == req.ID {
			action = l
		}
	}
	if id, _ := callLine["trace_id"].(string); len(id) != 32 || action == nil ||
		action["trace_id"] != id || action["span_id"] != callLine["span_id"] {
		t.Errorf("management call line trace %v span %v, action line %v", callLine["trace_id"], callLine["span_id"], action)
	}

	// Without the tracing handler, no ids.
	if r := call(t, "GET", e.gateURL+"/billing/untraced", bearer(secret)...); r.status != http.StatusOK {
		t.Fatalf("untraced call: %d %s", r.status, r.body)
	}
	if line := e.auditFor("/billing/untraced"); line["trace_id"] != nil || line["span_id"] != nil {
		t.Errorf("untraced call line has trace_id %v span_id %v", line["trace_id"], line["span_id"])
	}
}

// upstreamTraceparent returns the trace and span ids of the traceparent
// header the upstream got for path (W3C Trace Context:
// version-traceid-spanid-flags).
func upstreamTraceparent(t *testing.T, e *env, path string) (traceID, spanID string) {
	t.Helper()
	got := e.upstream.received(path)
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests for %s, want 1", len(got), path)
	}
	parts := strings.Split(got[0].Header.Get("Traceparent"), "-")
	if len(parts) != 4 || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("upstream traceparent for %s: %q", path, got[0].Header.Get("Traceparent"))
	}
	return parts[1], parts[2]
}
