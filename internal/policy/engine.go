// Package policy compiles the Rego policies and answers gateway (and admin)
// decisions with them.
//
// Queries are prepared once per policy revision and evaluated per request.
// A reload compiles the new revision completely before it swaps it in with
// one atomic pointer store, so requests never see a half-loaded policy, and
// a policy that fails to compile is refused while the previous one keeps
// serving.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/ratelimit"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// The questions the gateway and the management API ask.
//
// GatewayQuery stands for four rules of package tokengate.gateway: the
// set `reasons` (required; the call is allowed exactly when it is empty),
// and the optional `scope` (a string), `ttl_seconds` (a number) and
// `rate_limit` (an object {"requests": N, "window": "1s"|"1m"|"1h"|"24h"}). The
// engine derives allow from reasons, so no rule a policy writes, however
// shaped, can allow while a reason holds. AdminQuery is the decision
// object of package tokengate.admin: {allow, reasons, auto_approve} and
// an optional ttl_seconds (a number: the longest life the policy grants a
// token exchanged for a workload); it allows only when allow is true and
// reasons is empty.
const (
	GatewayQuery = "data.tokengate.gateway"
	AdminQuery   = "data.tokengate.admin.decision"
)

// Decision is what a policy answered.
type Decision struct {
	Allow   bool
	Reasons []string
	// TTL bounds how long the decision may be cached (gateway), or how
	// long an exchanged token may live (admin); zero when the policy set
	// no bound.
	TTL time.Duration
	// Scope is the scope the call exercised, when the policy says so;
	// the hygiene report uses it to find scopes granted but never used.
	Scope string
	// RateLimit is the gateway policy's limit on calls like this one;
	// zero when it set none.
	RateLimit store.RateLimit
	// AutoApprove is the admin policy's verdict that a token request
	// needs no second person.
	AutoApprove bool
	// PersonNeeded (admin, request) names the rules of just-in-time
	// approval a request misses; Approvers (admin, with a request) the
	// directory's approvers other than its requester. Both are for the
	// approver's page; neither decides anything.
	PersonNeeded, Approvers []string
	// Revision identifies the policy files that made the decision.
	Revision string
}

// ErrNoDecision means the policy produced no result at all, for example
// because its package is missing. Callers fail closed.
var ErrNoDecision = errors.New("policy produced no decision")

// Engine holds the current compiled policy.
type Engine struct {
	source  fs.FS
	print   print.Hook
	current atomic.Pointer[compiled]
	// plain evaluates with OPA's prepared queries instead of the fast
	// evaluator (WithPlainEvaluator).
	plain bool
}

// Option configures an Engine.
type Option func(*Engine)

// WithPrintLogger sends the output of the policies' print() calls to
// logger, one info line per call with the call's file:line. Without it,
// print() calls are compiled out.
func WithPrintLogger(logger *zap.Logger) Option {
	return func(e *Engine) { e.print = printLogger{logger} }
}

type printLogger struct{ logger *zap.Logger }

func (p printLogger) Print(pctx print.Context, msg string) error {
	p.logger.Info(msg, zap.Stringer("location", pctx.Location))
	return nil
}

type compiled struct {
	revision string
	compiler *ast.Compiler
	// data holds the policy folder's data files. Reads return OPA values
	// as stored, with no conversion, which is why the engine can run
	// without OPA's per-evaluation cache of base documents.
	data storage.Store
	// reading is one read transaction on data, open for the life of the
	// revision and shared by every evaluation: the store is written only
	// when it is built, and a read transaction of OPA's in-memory store
	// holds no state of its own, so sharing it is safe and saves opening
	// one per call.
	reading storage.Transaction
	queries map[string]query
	// reads is what the gateway rules of this revision can read of a
	// call: the decision cache keys on those fields only.
	reads Reads
}

type query struct {
	body ast.Body
	// bodies[skip] is body without the optional rules (optionalRules) in
	// the bit set skip: all of them for the gateway, body alone for the
	// admin query.
	bodies []ast.Body
	parse  func(map[ast.Var]*ast.Term, *knownValues) (Decision, error)
	// constants are the constant rules body can reach, put in the rule
	// memo before each evaluation (constants.go).
	constants []constantRule
	// evaluations holds *evaluation, ready to evaluate body.
	evaluations *sync.Pool
	// carried are the rules whose values are kept from one evaluation
	// for the next with the same token, route and method (carried.go);
	// nil for none.
	carried *carriedRules
	// prepared is OPA's prepared query, for the plain evaluator only.
	prepared *rego.PreparedEvalQuery
}

// NewEngine compiles the .rego and data files in source (test files
// excluded).
func NewEngine(source fs.FS, opts ...Option) (*Engine, error) {
	e := &Engine{source: source}
	for _, o := range opts {
		o(e)
	}
	if _, err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload recompiles the policy from its source. On failure the previous
// revision stays in force and the error says what is wrong with the files,
// with file:line where the compiler gives one.
func (e *Engine) Reload() (revision string, err error) {
	if e.source == nil {
		return "", errors.New("the policy comes from a bundle, which is fetched again by polling")
	}
	src, err := load(e.source, false)
	if err != nil {
		return "", err
	}
	return e.install(src)
}

// install compiles src and puts it in force. On failure the previous
// revision stays in force.
func (e *Engine) install(src *loaded) (revision string, err error) {
	c, err := e.compile(src)
	if err != nil {
		return "", err
	}
	e.current.Store(c)
	return c.revision, nil
}

// Revision identifies the policy currently in force. For a folder, the
// first 12 hex digits of a SHA-256 over its file names and contents, data
// files included; for a bundle, see NewBundleEngine.
func (e *Engine) Revision() string { return e.current.Load().revision }

// Has reports whether the current policy answers query.
func (e *Engine) Has(query string) bool {
	_, ok := e.current.Load().queries[query]
	return ok
}

// Decide evaluates query (GatewayQuery or AdminQuery) against input. An
// evaluation error, a builtin's error included, is an error, never a
// decision: callers fail closed.
//
// It drives OPA's evaluator (topdown) directly instead of through the rego
// package, because profiles of the uncached gateway path showed three
// costs there that buy tokengate nothing (see BENCHMARKS.md): a goroutine
// per evaluation to watch ctx for cancellation (the evaluator polls ctx's
// Done channel instead, see doneCancel),
// OPA's per-evaluation metrics, and converting the answer to Go maps
// before reading three fields of it (it is read as an OPA value here).
// OPA's per-evaluation caches are replaced by cheaper equivalents
// (vcache.go), and its rule memo starts with the values of constant rules
// (constants.go) and of rules carried from an earlier call with the same
// token, route and method (carried.go). The evaluation itself is OPA's;
// TestDecideAgreesWithRego compares it with OPA's rego front end.
//
// input must not be changed once given to Decide: carried values are
// found again by comparing the parts of input they came from.
func (e *Engine) Decide(ctx context.Context, query string, input ast.Value) (Decision, error) {
	c := e.current.Load()
	q, ok := c.queries[query]
	if !ok {
		return Decision{Revision: c.revision}, fmt.Errorf("%s: %w", query, ErrNoDecision)
	}
	d, err := e.evaluator().decide(ctx, c, query, &q, input)
	d.Revision = c.revision
	return d, err
}

// decide is the fast evaluator's Decide: OPA's topdown driven directly,
// with the rule memo primed with constants and carried values.
func (fastEvaluator) decide(ctx context.Context, c *compiled, query string, q *query, input ast.Value) (Decision, error) {
	ev := q.evaluations.Get().(*evaluation)
	defer ev.release(q.evaluations)
	ev.rules.Push()
	for _, k := range q.constants {
		ev.rules.Put(k.path, k.value)
	}
	if q.carried != nil {
		q.carried.restore(input, ev.rules, &ev.carried)
	}
	// An optional rule whose value is in the memo already (a constant or
	// a carried value) is not asked: OPA would only read it back.
	var known knownValues
	skip := 0
	if len(q.bodies) > 1 {
		for i, o := range optionalRules {
			if v, ok := ev.rules.base(o.path); ok {
				known[i].value, known[i].ok = v, true
				skip |= 1 << i
			}
		}
	}
	ev.input.Value = input
	tq := ev.query(q.bodies, skip).WithTime(time.Now()).WithCancel(doneCancel{ctx.Done()})
	// The first result is the decision; Iter, unlike Run, does not
	// collect the results in a list first.
	err := tq.Iter(ctx, ev.keep)
	first := ev.first
	if err != nil {
		return Decision{}, fmt.Errorf("evaluating %s: %v", query, err)
	}
	if first == nil {
		return Decision{}, fmt.Errorf("%s: %w", query, ErrNoDecision)
	}
	d, err := q.parse(first, &known)
	if err == nil && q.carried != nil {
		q.carried.keep(ev.rules, &ev.carried)
	}
	return d, err
}

// evaluation is what Decide sets up for one evaluation of a query,
// pooled per query of a revision: OPA's Query (configured once; it
// keeps no state between evaluations, Iter builds its evaluator afresh
// each time and only reads the Query, which Decide gives the per-call
// time, cancellation and input), the term holding input, the rule memo,
// and the callback that keeps the first result. Built per call they were
// four allocations.
type evaluation struct {
	// queries holds OPA's Query per body of the query (see query.bodies),
	// made on first use.
	queries  []*topdown.Query
	newQuery func(ast.Body) *topdown.Query
	rules    *ruleCache
	input    ast.Term
	first    topdown.QueryResult
	keep     func(topdown.QueryResult) error
	// carried is which carried rules' values this evaluation found
	// (carried.go).
	carried carriedState
}

func newEvaluations(c *compiled, printHook print.Hook) *sync.Pool {
	return &sync.Pool{New: func() any {
		ev := &evaluation{rules: &ruleCache{}}
		ev.keep = func(r topdown.QueryResult) error {
			if ev.first == nil {
				ev.first = r
			}
			return nil
		}
		ev.newQuery = func(body ast.Body) *topdown.Query {
			tq := topdown.NewQuery(body).
				WithCompiler(c.compiler).
				WithStore(c.data).
				WithTransaction(c.reading).
				WithInput(&ev.input).
				WithMetrics(metrics.NoOp()).
				WithVirtualCache(ev.rules).
				WithBaseCache(noBaseCache{}).
				WithStrictBuiltinErrors(true).
				WithRequestMetadata(noRequestMetadata)
			if printHook != nil {
				tq = tq.WithPrintHook(printHook)
			}
			return tq
		}
		return ev
	}}
}

// query returns OPA's Query for bodies[i].
func (ev *evaluation) query(bodies []ast.Body, i int) *topdown.Query {
	if ev.queries == nil {
		ev.queries = make([]*topdown.Query, len(bodies))
	}
	if ev.queries[i] == nil {
		ev.queries[i] = ev.newQuery(bodies[i])
	}
	return ev.queries[i]
}

// release drops every reference to this evaluation's terms (so a pooled
// evaluation pins no input or result) and returns ev to pool.
func (ev *evaluation) release(pool *sync.Pool) {
	ev.rules.reset()
	ev.input.Value, ev.first = nil, nil
	for _, tq := range ev.queries {
		if tq != nil {
			tq.WithCancel(nil)
		}
	}
	pool.Put(ev)
}

// doneCancel is the evaluator's cancellation flag read straight from a
// context's Done channel. OPA polls Cancelled before every expression;
// a non-blocking receive on an open channel is a couple of atomic loads,
// and nothing has to be registered with ctx per evaluation
// (context.AfterFunc cost three to four allocations and two locks of the
// parent context per call). A nil channel (context.Background) is never
// ready. Cancel is never called by the evaluator; the caller cancels ctx.
// A struct of one channel is stored in the Cancel interface without an
// allocation.
type doneCancel struct{ done <-chan struct{} }

func (doneCancel) Cancel() {}

func (d doneCancel) Cancelled() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// noRequestMetadata stands in for the map OPA otherwise makes for every
// evaluation to hand to custom built-ins. The engine registers none, so
// nothing reads it and nothing writes it.
var noRequestMetadata = map[string]any{}

// The variables of the gateway and admin queries (the optional rules'
// are in optionalRules).
var (
	varReasons = ast.Var("reasons")
	varAdmin   = ast.Var("decision")
)

// optionalRules are the gateway's optional rules, in the order of the
// bits of a skip set (query.bodies); the query binds each to a variable
// of the rule's name.
var optionalRules = [...]struct {
	name ast.Var
	path ast.Ref
}{
	optScope: {"scope", ast.MustParseRef("data.tokengate.gateway.scope")},
	optTTL:   {"ttl_seconds", ast.MustParseRef("data.tokengate.gateway.ttl_seconds")},
	optRate:  {"rate_limit", ast.MustParseRef("data.tokengate.gateway.rate_limit")},
}

// Positions in optionalRules.
const (
	optScope = iota
	optTTL
	optRate
)

// knownValues holds, per optional rule, the value the rule memo held for
// it before the evaluation began (ok; a nil value is "undefined"), for
// the rules the query did not ask.
type knownValues [len(optionalRules)]knownValue

type knownValue struct {
	value *ast.Term
	ok    bool
}

// gatewayQuery reads the three rules in one evaluation. reasons is
// required: undefined, the query has no result and the engine fails
// closed. scope and ttl_seconds are optional, and an undefined conjunct
// would make the whole query undefined, so each is collected into an array
// of zero or one element; a policy that declares no such rule is not
// asked for it (a comprehension costs a tenth of a shipped-policy
// decision's allocations), nor is a rule in the bit set skip.
func gatewayQuery(compiler *ast.Compiler, skip int) ast.Body {
	q := "reasons = data.tokengate.gateway.reasons"
	for i, rule := range optionalRules {
		if skip&(1<<i) == 0 && len(compiler.GetRulesExact(rule.path)) > 0 {
			q += fmt.Sprintf("; %s = [x | x = %v]", rule.name, rule.path)
		}
	}
	return ast.MustParseBody(q)
}

func adminQuery(*ast.Compiler, int) ast.Body {
	return ast.Body{ast.Equality.Expr(ast.VarTerm(string(varAdmin)), ast.MustParseTerm(AdminQuery))}
}

func parseGateway(r map[ast.Var]*ast.Term, known *knownValues) (Decision, error) {
	var d Decision
	var err error
	if d.Reasons, err = parseReasons(r[varReasons].Value); err != nil {
		return Decision{}, err
	}
	d.Allow = len(d.Reasons) == 0
	if v, ok := optional(r[optionalRules[optScope].name], known[optScope]); ok {
		s, ok := v.(ast.String)
		if !ok {
			return Decision{}, fmt.Errorf("scope is %s, want a string", ast.ValueName(v))
		}
		d.Scope = string(s)
	}
	if v, ok := optional(r[optionalRules[optTTL].name], known[optTTL]); ok {
		if d.TTL, err = parseTTL(v); err != nil {
			return Decision{}, err
		}
	}
	if v, ok := optional(r[optionalRules[optRate].name], known[optRate]); ok {
		if d.RateLimit, err = parseRateLimit(v); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

var (
	keyRateLimitOut = ast.InternedTerm("rate_limit")
	keyRequests     = ast.InternedTerm("requests")
	keyWindow       = ast.InternedTerm("window")
)

// parseRateLimit reads {"requests": N, "window": "1m"}: N a positive
// whole number, the window one of ratelimit.Windows. Anything else is an
// error, which fails the call closed: a limit the gateway cannot read is
// not treated as no limit.
func parseRateLimit(v ast.Value) (store.RateLimit, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return store.RateLimit{}, fmt.Errorf("rate_limit is %s, want an object {requests, window}", ast.ValueName(v))
	}
	n, ok := valueOf(obj, keyRequests).(ast.Number)
	requests, isInt := n.Int64()
	if !ok || !isInt {
		return store.RateLimit{}, fmt.Errorf("rate_limit.requests is %v, want a whole number", valueOf(obj, keyRequests))
	}
	w, ok := valueOf(obj, keyWindow).(ast.String)
	if !ok || obj.Len() != 2 {
		return store.RateLimit{}, fmt.Errorf(`rate_limit is %v, want exactly {"requests": N, "window": "1s"|"1m"|"1h"|"24h"}`, obj)
	}
	l := store.RateLimit{Requests: requests, Window: ratelimit.Windows[string(w)]}
	if err := ratelimit.Check(l); err != nil {
		return store.RateLimit{}, err
	}
	return l, nil
}

// optional returns an optional rule's value: known's when the query did
// not ask for the rule, else the element of the zero-or-one element array
// the query collected.
func optional(t *ast.Term, known knownValue) (ast.Value, bool) {
	if known.ok {
		if known.value == nil {
			return nil, false
		}
		return known.value.Value, true
	}
	return only(t)
}

// only returns the element of a zero-or-one element array; nothing when
// t is nil, the rule not asked for.
func only(t *ast.Term) (ast.Value, bool) {
	if t == nil {
		return nil, false
	}
	a, ok := t.Value.(*ast.Array)
	if !ok || a.Len() == 0 {
		return nil, false
	}
	return a.Elem(0).Value, true
}

// parseReasons accepts a set (the usual `reasons contains ...` rule) or
// an array of strings, and returns them sorted; nil when there are none.
func parseReasons(v ast.Value) ([]string, error) {
	var list *ast.Array
	switch r := v.(type) {
	case ast.Set:
		if r.Len() == 0 {
			return nil, nil
		}
		list = r.Sorted()
	case *ast.Array:
		list = r
	default:
		return nil, fmt.Errorf("reasons is %s, want a set of strings", ast.ValueName(v))
	}
	reasons := make([]string, 0, list.Len())
	for i := range list.Len() {
		s, ok := list.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("reason %v is not a string", list.Elem(i))
		}
		reasons = append(reasons, string(s))
	}
	slices.Sort(reasons)
	return slices.Compact(reasons), nil
}

func parseTTL(v ast.Value) (time.Duration, error) {
	n, ok := v.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("ttl_seconds is %s, want a number", ast.ValueName(v))
	}
	secs, err := json.Number(n).Float64()
	if err != nil || secs < 0 {
		return 0, fmt.Errorf("ttl_seconds %q is not a non-negative number", n)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// Keys of the admin decision object.
var (
	keyAllow       = ast.InternedTerm("allow")
	keyReasons     = ast.InternedTerm("reasons")
	keyAutoApprove = ast.InternedTerm("auto_approve")
	keyTTL         = ast.InternedTerm("ttl_seconds")
	keyPersonNeed  = ast.InternedTerm("person_needed")
	keyApprovers   = ast.InternedTerm("approvers")
)

func parseAdmin(r map[ast.Var]*ast.Term, _ *knownValues) (Decision, error) {
	obj, ok := r[varAdmin].Value.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want an object", ast.ValueName(r[varAdmin].Value))
	}
	allow, ok := valueOf(obj, keyAllow).(ast.Boolean)
	if !ok {
		return Decision{}, errors.New("decision has no boolean allow")
	}
	var d Decision
	if raw := valueOf(obj, keyReasons); raw != nil {
		var err error
		if d.Reasons, err = parseReasons(raw); err != nil {
			return Decision{}, fmt.Errorf("decision %v", err)
		}
	}
	// Both must agree: a rule that writes allow while a reason holds is a
	// broken policy, and a broken policy refuses.
	d.Allow = bool(allow) && len(d.Reasons) == 0
	if raw := valueOf(obj, keyAutoApprove); raw != nil {
		b, ok := raw.(ast.Boolean)
		if !ok {
			return Decision{}, errors.New("decision auto_approve is not a boolean")
		}
		d.AutoApprove = bool(b) && d.Allow
	}
	// Explanations for people: a malformed one is left out, never a
	// reason to refuse (it decides nothing).
	if raw := valueOf(obj, keyPersonNeed); raw != nil {
		d.PersonNeeded, _ = parseReasons(raw)
	}
	if raw := valueOf(obj, keyApprovers); raw != nil {
		d.Approvers, _ = parseReasons(raw)
	}
	if raw := valueOf(obj, keyTTL); raw != nil {
		ttl, err := parseTTL(raw)
		if err != nil {
			return Decision{}, fmt.Errorf("decision %v", err)
		}
		d.TTL = ttl
	}
	// rate_limit (exchange): the limit the exchanged token gets; an
	// empty object is none.
	if raw := valueOf(obj, keyRateLimitOut); raw != nil {
		if o, ok := raw.(ast.Object); !ok || o.Len() > 0 {
			l, err := parseRateLimit(raw)
			if err != nil {
				return Decision{}, fmt.Errorf("decision %v", err)
			}
			d.RateLimit = l
		}
	}
	if !d.Allow && len(d.Reasons) == 0 {
		// A refusal must say why: the audit line and the caller need a code.
		d.Reasons = []string{"policy_denied"}
	}
	return d, nil
}

func valueOf(obj ast.Object, key *ast.Term) ast.Value {
	if t := obj.Get(key); t != nil {
		return t.Value
	}
	return nil
}

// The packages the engine answers for, with the input schema each gets.
var packages = []struct {
	path   string
	query  string
	schema string
	body   func(*ast.Compiler, int) ast.Body
	parse  func(map[ast.Var]*ast.Term, *knownValues) (Decision, error)
}{
	{"tokengate.gateway", GatewayQuery, "gateway_input", gatewayQuery, parseGateway},
	{"tokengate.admin", AdminQuery, "admin_input", adminQuery, parseAdmin},
}

func (e *Engine) compile(src *loaded) (*compiled, error) {
	if len(src.modules) == 0 {
		return nil, errors.New("no .rego files found")
	}
	c := &compiled{revision: src.revision, queries: make(map[string]query)}
	var present []string
	for _, p := range packages {
		if hasPackage(src.modules, p.path) {
			present = append(present, p.path)
		}
	}
	if !slices.Contains(present, "tokengate.gateway") {
		return nil, errors.New("no policy declares package tokengate.gateway")
	}
	c.data = inmem.NewFromObjectWithOpts(src.data, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	var err error
	c.compiler, err = newCompiler(context.Background(), src.modules, c.data, e.print != nil)
	if err != nil {
		return nil, err
	}
	if c.reading, err = c.data.NewTransaction(context.Background()); err != nil {
		return nil, err
	}
	if len(c.compiler.GetRulesExact(ast.MustParseRef("data.tokengate.gateway.reasons"))) == 0 {
		return nil, errors.New("package tokengate.gateway declares no rule reasons: the gateway allows exactly when reasons is empty, so it must exist")
	}
	if err := checkOutputTypes(c.compiler); err != nil {
		return nil, err
	}
	for _, p := range packages {
		if !slices.Contains(present, p.path) {
			continue
		}
		body, err := c.compiler.QueryCompiler().Compile(p.body(c.compiler, 0))
		if err != nil {
			return nil, fmt.Errorf("preparing %s: %v", p.query, err)
		}
		q := query{body: body, bodies: []ast.Body{body}, parse: p.parse, constants: reachableConstants(c.compiler, body),
			evaluations: newEvaluations(c, e.print)}
		if e.plain {
			if q.prepared, err = prepare(c, p.body(c.compiler, 0), e.print); err != nil {
				return nil, fmt.Errorf("preparing %s: %v", p.query, err)
			}
		}
		if p.query == GatewayQuery {
			for skip := 1; skip < 1<<len(optionalRules); skip++ {
				b, err := c.compiler.QueryCompiler().Compile(p.body(c.compiler, skip))
				if err != nil {
					return nil, fmt.Errorf("preparing %s: %v", p.query, err)
				}
				q.bodies = append(q.bodies, b)
			}
			// Only the gateway's input has parts shared between calls.
			if carried := findCarriedRules(c.compiler, body, q.constants); !carried.empty() {
				q.carried = carried
			}
		}
		c.queries[p.query] = q
	}
	c.reads = gatewayReads(c.compiler, c.queries[GatewayQuery].body)
	return c, nil
}

// newCompiler compiles modules as strictly as OPA can: strict mode (unused
// variables and imports, shadowed and deprecated names are errors), and
// every reference to input type-checked against the input's JSON Schema,
// so a misspelt field is a compile error rather than a rule that is
// silently never true. store holds the data files; a rule and a data file
// may not define the same path.
//
// OPA applies a schema to input either globally (schema.input) or through
// `schemas` annotations. The gateway and the admin package see different
// input, so the engine adds, for each, a module holding only a
// subpackages-scoped METADATA block naming its schema, as a policy author
// would write it (the scope that cannot clash with a package-scoped
// METADATA block a policy file carries). The global input schema is the
// union of the two, so a helper package outside both is still checked
// against a field some input has.
func newCompiler(ctx context.Context, modules map[string]*ast.Module, store storage.Store, printing bool) (*ast.Compiler, error) {
	all, err := withSchemaAnnotations(modules)
	if err != nil {
		return nil, err
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Abort(ctx, txn)
	compiler := strictCompiler(ctx, store, txn, printing)
	if compiler.Compile(all); compiler.Failed() {
		return nil, fmt.Errorf("compiling policy: %v", compiler.Errors)
	}
	return compiler, nil
}

// strictCompiler is the compiler newCompiler describes, not yet given its
// modules; the data in store is read through txn while it compiles.
func strictCompiler(ctx context.Context, store storage.Store, txn storage.Transaction, printing bool) *ast.Compiler {
	return ast.NewCompiler().
		WithStrict(true).
		WithSchemas(inputSchemas).
		WithUseTypeCheckAnnotations(true).
		WithEnablePrintStatements(printing).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn))
}

// withSchemaAnnotations returns modules plus, for the gateway and admin
// packages among them, the module naming the package's input schema.
func withSchemaAnnotations(modules map[string]*ast.Module) (map[string]*ast.Module, error) {
	all := maps.Clone(modules)
	for _, p := range packages {
		if !hasPackage(modules, p.path) {
			continue
		}
		name := "tokengate:" + p.schema + ".rego"
		src := "# METADATA\n# scope: subpackages\n# schemas:\n#   - input: schema." + p.schema + "\npackage " + p.path + "\n"
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			return nil, fmt.Errorf("schema annotation for %s: %v", p.path, err)
		}
		all[name] = m
	}
	return all, nil
}

// inputSchemas holds the JSON Schemas of each package's input, as
// schema.gateway_input and schema.admin_input, and their union as
// schema.input.
var inputSchemas = func() *ast.SchemaSet {
	ss := ast.NewSchemaSet()
	var union []any
	for _, p := range packages {
		raw, err := policies.Schemas.ReadFile("schemas/" + p.schema + ".json")
		if err != nil {
			panic(err)
		}
		var schema any
		if err := util.UnmarshalJSON(raw, &schema); err != nil {
			panic(fmt.Sprintf("schemas/%s.json: %v", p.schema, err))
		}
		ss.Put(ast.MustParseRef("schema."+p.schema), schema)
		union = append(union, schema)
	}
	ss.Put(ast.SchemaRootRef, map[string]any{"anyOf": union})
	return ss
}()

func hasPackage(modules map[string]*ast.Module, pkg string) bool {
	for _, m := range modules {
		if strings.TrimPrefix(m.Package.Path.String(), "data.") == pkg {
			return true
		}
	}
	return false
}
