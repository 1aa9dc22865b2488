package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// DecideGateway is Decide(ctx, GatewayQuery, GatewayInput(...)) for the
// request path, with two costs taken out that profiles of the uncached path
// showed (see BENCHMARKS.md):
//
//   - rego starts a goroutine per evaluation to watch ctx for cancellation;
//     on a busy 2-core machine scheduling it cost as much as the policy
//     itself. Here context.AfterFunc flips the query's cancel flag instead,
//     which costs no goroutine unless ctx is actually cancelled.
//   - OPA's per-evaluation metrics, which nothing reads.
//
// The input is built as GatewayInput builds it, with the object keys
// allocated once instead of per call; a test holds the two equal.
func (e *Engine) DecideGateway(ctx context.Context, tokenTerm *ast.Term, req Request, service string, now time.Time) (Decision, error) {
	c := e.current.Load()
	pq, ok := c.queries[GatewayQuery]
	if !ok {
		return Decision{Revision: c.revision}, fmt.Errorf("%s: %w", GatewayQuery, ErrNoDecision)
	}
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	rs, err := pq.Eval(ctx,
		rego.EvalParsedInput(gatewayInput(tokenTerm, req, service, now)),
		rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(metrics.NoOp()))
	stop()
	if err != nil {
		return Decision{Revision: c.revision}, fmt.Errorf("evaluating %s: %v", GatewayQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{Revision: c.revision}, fmt.Errorf("%s: %w", GatewayQuery, ErrNoDecision)
	}
	d, err := parseDecision(rs[0].Expressions[0].Value)
	d.Revision = c.revision
	return d, err
}

// The keys of the gateway input. Terms are never modified once built (the
// gateway already shares each token's term between calls), so one copy
// serves every call.
var (
	keyToken    = ast.StringTerm("token")
	keyRequest  = ast.StringTerm("request")
	keyRoute    = ast.StringTerm("route")
	keyNow      = ast.StringTerm("now")
	keyMethod   = ast.StringTerm("method")
	keyHost     = ast.StringTerm("host")
	keyPath     = ast.StringTerm("path")
	keyRemoteIP = ast.StringTerm("remote_ip")
	keyHeaders  = ast.StringTerm("headers")
	keyService  = ast.StringTerm("service")
)

// noHeaders is input.request.headers of every route that lets the policy
// see no header: most of them.
var noHeaders = ast.ObjectTerm()

// gatewayInput builds the same value as GatewayInput.
func gatewayInput(tokenTerm *ast.Term, req Request, service string, now time.Time) ast.Value {
	headersTerm := noHeaders
	if len(req.Headers) > 0 {
		headers := make([][2]*ast.Term, 0, len(req.Headers))
		for k, v := range req.Headers {
			headers = append(headers, item(k, ast.StringTerm(v)))
		}
		headersTerm = ast.ObjectTerm(headers...)
	}
	return ast.NewObject(
		[2]*ast.Term{keyToken, tokenTerm},
		[2]*ast.Term{keyRequest, ast.ObjectTerm(
			[2]*ast.Term{keyMethod, ast.StringTerm(req.Method)},
			[2]*ast.Term{keyHost, ast.StringTerm(req.Host)},
			[2]*ast.Term{keyPath, ast.StringTerm(req.Path)},
			[2]*ast.Term{keyRemoteIP, ast.StringTerm(req.RemoteIP)},
			[2]*ast.Term{keyHeaders, headersTerm},
		)},
		[2]*ast.Term{keyRoute, ast.ObjectTerm([2]*ast.Term{keyService, ast.StringTerm(service)})},
		[2]*ast.Term{keyNow, nanosTerm(now)},
	)
}
