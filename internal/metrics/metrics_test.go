package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// Reason labels come from a fixed set: the reason the client is told when
// there are several, "other" for codes a custom policy invents.
func TestDecisionMetricReasons(t *testing.T) {
	m := New(nil)
	for _, res := range []gateway.Result{
		{Outcome: gateway.Deny, Refusal: reason.OfCall([]string{"scope_missing", "service_not_bound"}), Cache: gateway.CacheMiss},
		{Outcome: gateway.Deny, Refusal: reason.OfCall([]string{"closed_for_maintenance"}), Cache: gateway.CacheHit},
		{Outcome: gateway.Error, Refusal: reason.OfCall([]string{reason.StoreUnavailable}), Cache: gateway.CacheNone},
		{Outcome: gateway.Allow, Cache: gateway.CacheHit},
	} {
		m.Decision("billing", res.Outcome, res.Reasons(), res.Cache)
	}
	for labels, want := range map[[2]string]float64{
		{gateway.Deny, "service_not_bound"}:      1,
		{gateway.Deny, "scope_missing"}:          0,
		{gateway.Deny, reasonOther}:              1,
		{gateway.Error, reason.StoreUnavailable}: 1,
		{gateway.Allow, "none"}:                  1,
	} {
		if got := counterValue(t, m.decisions.WithLabelValues(labels[0], labels[1])); got != want {
			t.Errorf("decisions %v = %v, want %v", labels, got, want)
		}
	}
	series := make(chan prometheus.Metric, 2*len(reason.All())+10)
	m.decisions.Collect(series)
	// allow, one per declared code, other under deny and under error.
	if got := len(series); got != 1+len(reason.All())+2 {
		t.Errorf("%d decision series, want only the pre-created ones", got)
	}
	if hit, miss := counterValue(t, m.cacheHit), counterValue(t, m.cacheMiss); hit != 2 || miss != 1 {
		t.Errorf("cache hit %v miss %v, want 2 and 1", hit, miss)
	}
}

// reasonLists are the lists of codes internal/reason declares, by the
// name of their variable.
var reasonLists = map[string][]reason.Code{
	"Builtin":    reason.Builtin,
	"Management": reason.Management,
	"Identity":   reason.Identity,
	"Exchange":   reason.Exchange,
	"Console":    reason.Console,
	"Leaks":      reason.Leaks,
}

// Every declared code, of every list (the data plane's, rate limits among
// them, the management API's, the identity checks', the exchange's, the
// console's), is counted under a label of its own, whichever outcome its
// call line records: none falls to "other", which is for the codes of
// custom policies.
func TestEveryDeclaredCodeHasItsOwnLabel(t *testing.T) {
	for _, name := range declaredLists(t) {
		if _, ok := reasonLists[name]; !ok {
			t.Errorf("internal/reason declares the list %s, which this test does not walk: add it to reasonLists", name)
		}
	}
	for list, codes := range reasonLists {
		if len(codes) == 0 {
			t.Errorf("reason.%s is empty", list)
		}
		for _, c := range codes {
			for _, outcome := range []string{gateway.Deny, gateway.Error} {
				m := New(nil)
				m.Decision("billing", outcome, []string{c.Name}, gateway.CacheNone)
				if got := counterValue(t, m.decisions.WithLabelValues(outcome, c.Name)); got != 1 {
					t.Errorf("reason.%s %s under %s: its own label counted %v, want 1", list, c.Name, outcome, got)
				}
				if got := counterValue(t, m.decisions.WithLabelValues(outcome, reasonOther)); got != 0 {
					t.Errorf("reason.%s %s under %s was counted as %q", list, c.Name, outcome, reasonOther)
				}
			}
		}
	}
}

// declaredLists reads internal/reason's source for its package-level
// variables of type []Code, so that a list added there is not missed here.
func declaredLists(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "reason", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no source of internal/reason: %v", err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) && isCodeList(vs.Values[i]) && name.IsExported() {
						names = append(names, name.Name)
					}
				}
			}
		}
	}
	if len(names) < len(reasonLists) {
		t.Fatalf("found the lists %v in internal/reason; the scan misses some", names)
	}
	return names
}

// isCodeList reports whether e is a literal []Code{...}.
func isCodeList(e ast.Expr) bool {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	arr, ok := lit.Type.(*ast.ArrayType)
	if !ok || arr.Len != nil {
		return false
	}
	elt, ok := arr.Elt.(*ast.Ident)
	return ok && elt.Name == "Code"
}

// Every config's registry gets the same collectors: registering them in a
// registry that has them is no error, and a registry of a later config
// shows what was counted before it.
func TestRegisterInEveryConfigsRegistry(t *testing.T) {
	m := New(nil)
	first := prometheus.NewPedanticRegistry()
	if err := m.Register(first); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(first); err != nil {
		t.Fatalf("registering again in the same registry: %v", err)
	}
	m.Decision("billing", gateway.Deny, []string{reason.TokenRevoked}, gateway.CacheNone)
	reloaded := prometheus.NewPedanticRegistry()
	if err := m.Register(reloaded); err != nil {
		t.Fatal(err)
	}
	families, err := reloaded.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "tokengate_decisions_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["reason"] == reason.TokenRevoked && labels["result"] == gateway.Deny {
				found = s.GetCounter().GetValue() == 1
			}
		}
	}
	if !found {
		t.Error("the reloaded config's registry does not show the token_revoked deny counted before it")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
