package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// registeredNames are the names of every metric tokengate registers.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	// A registry does not list names, and a metric without samples is
	// not gathered: read them from the collectors' descriptions.
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range New(nil).collectors() {
			c.Describe(ch)
		}
		close(ch)
	}()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
	}
	return names
}

var (
	// What in a PromQL expression is not a metric name: strings, label
	// matchers, ranges and offsets' durations, the label lists of
	// aggregations and vector matching, function calls' names, keywords.
	promqlNotNames = []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\boffset\s+\w+`),
		regexp.MustCompile(`\b[a-z_]+\s*\(`),
		regexp.MustCompile(`\b(?:and|or|unless|bool)\b`),
	}
	promqlIdent = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
)

// metricNames returns the metric names an expression selects.
func metricNames(expr string) []string {
	for _, re := range promqlNotNames {
		expr = re.ReplaceAllString(expr, " ")
	}
	return promqlIdent.FindAllString(expr, -1)
}

func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`sum by (le, op) (rate(tokengate_store_seconds_bucket{instance=~"$instance"}[$__rate_interval]))`: {"tokengate_store_seconds_bucket"},
		`time() - max by (instance) (tokengate_census_last_success_timestamp_seconds)`:                    {"tokengate_census_last_success_timestamp_seconds"},
		`sum(rate(a{x="}"}[5m])) / sum(rate(b[1h] offset 5m)) and c > 1`:                                  {"a", "b", "c"},
		`label_values(tokengate_build_info, instance)`:                                                    {"tokengate_build_info", "instance"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// known reports whether name is a registered metric, or a histogram's
// _bucket, _sum or _count series.
func known(names map[string]bool, name string) bool {
	if names[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
			return true
		}
	}
	return false
}

// TestGrafanaDashboardUsesOurMetrics reads every query of
// dist/grafana/tokengate.json: each metric it selects is one tokengate
// registers (a renamed metric or a typo would leave a panel empty), and
// every control-plane metric has a panel.
func TestGrafanaDashboardUsesOurMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "dist", "grafana", "tokengate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard any
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dashboard)
	if len(exprs) < 10 {
		t.Fatalf("found %d queries in the dashboard; the walk misses them", len(exprs))
	}
	names := registeredNames(t)
	used := map[string]bool{}
	for _, expr := range exprs {
		for _, name := range metricNames(expr) {
			if name == "instance" && strings.HasPrefix(expr, "label_values(") {
				continue // label_values' second argument is a label
			}
			if !known(names, name) {
				t.Errorf("query %q selects %s, which tokengate does not export", expr, name)
			}
			used[name] = true
		}
	}
	for _, name := range []string{"tokengate_audit_writable", "tokengate_policy_reloads_total", "tokengate_bundle_downloads_total",
		"tokengate_webhook_deliveries_total", "tokengate_idp_up", "tokengate_store_up", "tokengate_change_lag_seconds"} {
		if !used[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
}

// TestAlertRulesUseOurMetrics: every tokengate_ name in the alert rules
// is a metric tokengate registers. (promtool checks their syntax and
// tests them in CI.)
func TestAlertRulesUseOurMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "dist", "prometheus", "tokengate-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := registeredNames(t)
	found := regexp.MustCompile(`\btokengate_[a-z0-9_]+`).FindAllString(string(raw), -1)
	if len(found) < 7 {
		t.Fatalf("found %d metric names in the rules", len(found))
	}
	for _, name := range found {
		if !known(names, name) {
			t.Errorf("the alert rules use %s, which tokengate does not export", name)
		}
	}
}
