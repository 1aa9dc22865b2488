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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The rules the gateway and the management API ask.
const (
	GatewayQuery = "data.tokengate.gateway.decision"
	AdminQuery   = "data.tokengate.admin.decision"
)

// Decision is what a policy answered.
type Decision struct {
	Allow   bool
	Reasons []string
	// TTL bounds how long the decision may be cached; zero when the
	// policy set no bound.
	TTL time.Duration
	// Scope is the scope the call exercised, when the policy says so;
	// the hygiene report uses it to find scopes granted but never used.
	Scope string
	// AutoApprove is the admin policy's verdict that a token request
	// needs no second person.
	AutoApprove bool
	// Revision identifies the policy files that made the decision.
	Revision string
}

// ErrNoDecision means the policy produced no result at all, for example
// because its package is missing. Callers fail closed.
var ErrNoDecision = errors.New("policy produced no decision")

// Engine holds the current compiled policy.
type Engine struct {
	source  fs.FS
	current atomic.Pointer[compiled]
}

type compiled struct {
	revision string
	compiler *ast.Compiler
	// data is the empty base document the queries run against: the
	// policies read no data, but OPA's evaluator wants a store.
	data    storage.Store
	queries map[string]ast.Body
}

// resultVar names the query's answer: queries are compiled as
// "decision = data.<package>.decision".
const resultVar = ast.Var("decision")

// NewEngine compiles the .rego files in source (test files excluded).
func NewEngine(source fs.FS) (*Engine, error) {
	e := &Engine{source: source}
	if _, err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload recompiles the policy from its source. On failure the previous
// revision stays in force and the error says what is wrong with the files.
func (e *Engine) Reload() (revision string, err error) {
	c, err := compile(e.source)
	if err != nil {
		return "", err
	}
	e.current.Store(c)
	return c.revision, nil
}

// Revision identifies the policy currently in force: the first 12 hex
// digits of a SHA-256 over its file names and contents.
func (e *Engine) Revision() string { return e.current.Load().revision }

// Has reports whether the current policy answers query.
func (e *Engine) Has(query string) bool {
	_, ok := e.current.Load().queries[query]
	return ok
}

// Decide evaluates query (GatewayQuery or AdminQuery) against input.
//
// It drives OPA's evaluator (topdown) directly instead of through the rego
// package, because profiles of the uncached gateway path showed three
// costs there that buy tokengate nothing (see BENCHMARKS.md): a goroutine
// per evaluation to watch ctx for cancellation (context.AfterFunc flips
// the query's cancel flag instead, with no goroutine unless ctx ends),
// OPA's per-evaluation metrics, and converting the answer to Go maps
// before reading three fields of it (it is read as an OPA value here).
// OPA's per-evaluation caches are replaced by cheaper equivalents
// (vcache.go). The evaluation itself is OPA's, with OPA's defaults;
// TestDecideAgreesWithRego and policies/fastpath_test.go compare it with
// OPA's rego front end.
func (e *Engine) Decide(ctx context.Context, query string, input ast.Value) (Decision, error) {
	c := e.current.Load()
	body, ok := c.queries[query]
	if !ok {
		return Decision{Revision: c.revision}, fmt.Errorf("%s: %w", query, ErrNoDecision)
	}
	txn, err := c.data.NewTransaction(ctx)
	if err != nil {
		return Decision{Revision: c.revision}, fmt.Errorf("evaluating %s: %v", query, err)
	}
	defer c.data.Abort(ctx, txn)
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	rules := getRuleCache()
	defer rules.release()
	results, err := topdown.NewQuery(body).
		WithCompiler(c.compiler).
		WithStore(c.data).
		WithTransaction(txn).
		WithInput(ast.NewTerm(input)).
		WithTime(time.Now()).
		WithCancel(cancel).
		WithMetrics(metrics.NoOp()).
		WithVirtualCache(rules).
		WithBaseCache(noBaseCache{}).
		Run(ctx)
	stop()
	if err != nil {
		return Decision{Revision: c.revision}, fmt.Errorf("evaluating %s: %v", query, err)
	}
	if len(results) == 0 {
		return Decision{Revision: c.revision}, fmt.Errorf("%s: %w", query, ErrNoDecision)
	}
	d, err := parseDecision(results[0][resultVar].Value)
	d.Revision = c.revision
	return d, err
}

// Keys of the decision object.
var (
	keyAllow       = ast.InternedTerm("allow")
	keyReasons     = ast.InternedTerm("reasons")
	keyScope       = ast.InternedTerm("scope")
	keyAutoApprove = ast.InternedTerm("auto_approve")
	keyTTL         = ast.InternedTerm("ttl_seconds")
)

func parseDecision(v ast.Value) (Decision, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, want an object", ast.ValueName(v))
	}
	var d Decision
	allow, ok := valueOf(obj, keyAllow).(ast.Boolean)
	if !ok {
		return Decision{}, errors.New("decision has no boolean allow")
	}
	d.Allow = bool(allow)
	if raw := valueOf(obj, keyReasons); raw != nil {
		// A set is as good as an array: policies may leave out sort().
		var list *ast.Array
		switch r := raw.(type) {
		case *ast.Array:
			list = r
		case ast.Set:
			list = r.Sorted()
		default:
			return Decision{}, errors.New("decision reasons is not an array")
		}
		for i := range list.Len() {
			s, ok := list.Elem(i).Value.(ast.String)
			if !ok {
				return Decision{}, errors.New("decision reason is not a string")
			}
			d.Reasons = append(d.Reasons, string(s))
		}
	}
	if raw := valueOf(obj, keyScope); raw != nil {
		s, ok := raw.(ast.String)
		if !ok {
			return Decision{}, errors.New("decision scope is not a string")
		}
		d.Scope = string(s)
	}
	if raw := valueOf(obj, keyAutoApprove); raw != nil {
		b, ok := raw.(ast.Boolean)
		if !ok {
			return Decision{}, errors.New("decision auto_approve is not a boolean")
		}
		d.AutoApprove = bool(b)
	}
	if raw := valueOf(obj, keyTTL); raw != nil {
		n, ok := raw.(ast.Number)
		if !ok {
			return Decision{}, errors.New("decision ttl_seconds is not a number")
		}
		secs, err := json.Number(n).Float64()
		if err != nil || secs < 0 {
			return Decision{}, fmt.Errorf("decision ttl_seconds %q is not a non-negative number", n)
		}
		d.TTL = time.Duration(secs * float64(time.Second))
	}
	if !d.Allow && len(d.Reasons) == 0 {
		// A deny must say why: the audit line and the client need a code.
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

func compile(source fs.FS) (*compiled, error) {
	modules, revision, err := readModules(source)
	if err != nil {
		return nil, err
	}
	if len(modules) == 0 {
		return nil, errors.New("no .rego files found")
	}
	compiler := ast.NewCompiler().WithStrict(false)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("compiling policy: %v", compiler.Errors)
	}
	c := &compiled{revision: revision, compiler: compiler, data: inmem.New(), queries: make(map[string]ast.Body)}
	for _, q := range []string{GatewayQuery, AdminQuery} {
		pkg := strings.TrimSuffix(strings.TrimPrefix(q, "data."), ".decision")
		if !hasPackage(modules, pkg) {
			continue
		}
		body, err := compiler.QueryCompiler().Compile(ast.Body{ast.Equality.Expr(ast.NewTerm(resultVar), ast.MustParseTerm(q))})
		if err != nil {
			return nil, fmt.Errorf("preparing %s: %v", q, err)
		}
		c.queries[q] = body
	}
	if _, ok := c.queries[GatewayQuery]; !ok {
		return nil, errors.New("no policy declares package tokengate.gateway")
	}
	return c, nil
}

func hasPackage(modules map[string]*ast.Module, pkg string) bool {
	for _, m := range modules {
		if strings.TrimPrefix(m.Package.Path.String(), "data.") == pkg {
			return true
		}
	}
	return false
}

// readModules parses every .rego file under source except tests, and
// returns them with a revision hash over their names and contents.
func readModules(source fs.FS) (map[string]*ast.Module, string, error) {
	var names []string
	err := fs.WalkDir(source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && IsPolicyFile(p) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("listing policy files: %v", err)
	}
	slices.Sort(names)
	modules := make(map[string]*ast.Module, len(names))
	h := sha256.New()
	for _, name := range names {
		src, err := fs.ReadFile(source, name)
		if err != nil {
			return nil, "", fmt.Errorf("reading policy %s: %v", name, err)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, "", fmt.Errorf("parsing policy %s: %v", name, err)
		}
		modules[name] = m
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(src))
		h.Write(src)
	}
	return modules, hex.EncodeToString(h.Sum(nil))[:12], nil
}

// IsPolicyFile reports whether a file name is a policy the engine loads:
// a .rego file that is not a _test.rego file.
func IsPolicyFile(name string) bool {
	base := path.Base(name)
	return strings.HasSuffix(base, ".rego") && !strings.HasSuffix(base, "_test.rego")
}
