package cli

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokengate/caddy-tokengate/internal/policy"
)

func policyTestCommand() *cobra.Command {
	var format string
	return withFormat(&cobra.Command{
		Use:   "policy-test [DIR|BUNDLE.tar.gz] [--format text|json|junit]",
		Short: "Runs the Rego tests (*_test.rego) in DIR (default ./policies) or a bundle with OPA's test runner",
		Long: `Runs the Rego tests (*_test.rego) of a policy folder, or of a bundle built
from one by 'opa build' (which keeps the tests), with OPA's test runner,
compiled as the gateway compiles policies (strict, type-checked against
the input schemas).

It also fails when a policy file adds a reason code that its _test.rego
never names: for each X.rego, every literal code in
'reasons contains "code"' or 'denials contains "code"' must appear as a
string in X_test.rego. A policy without its _test.rego has all its codes
untested.

--format json prints one JSON object; --format junit prints JUnit XML
for CI systems (untested reasons are failed test cases).`,
		Example: `  caddy tokengate policy-test
  caddy tokengate policy-test ./my-policies
  caddy tokengate policy-test bundle.tar.gz --format junit > policy-tests.xml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			location := "policies"
			if len(args) == 1 {
				location = args[0]
			}
			suite, err := policy.ReadSuite(location)
			if err != nil {
				return err
			}
			results, err := suite.Run(cmd.Context())
			if err != nil {
				return err
			}
			report := newPolicyReport(results, suite.Untested())
			switch format {
			case "json":
				err = writeJSONTo(os.Stdout, report)
			case "junit":
				err = report.writeJUnit(os.Stdout)
			default:
				err = report.writeText(os.Stdout)
			}
			if err != nil {
				return err
			}
			return report.verdict()
		},
	}, &format)
}

// withFormat adds --format to cmd, checking its value before RunE.
func withFormat(cmd *cobra.Command, format *string) *cobra.Command {
	cmd.Flags().StringVar(format, "format", "text", "output: text, json or junit")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		switch *format {
		case "text", "json", "junit":
			return nil
		}
		return fmt.Errorf("--format %q: want text, json or junit", *format)
	}
	return cmd
}

// policyReport is what policy-test found, in the shape --format json
// prints.
type policyReport struct {
	Tests    []policyTest      `json:"tests"`
	Untested []policy.Untested `json:"untested_reasons"`
	Passed   int               `json:"passed"`
	Failed   int               `json:"failed"`
}

type policyTest struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

func newPolicyReport(results []policy.TestResult, untested []policy.Untested) policyReport {
	r := policyReport{Tests: []policyTest{}, Untested: untested}
	if r.Untested == nil {
		r.Untested = []policy.Untested{}
	}
	for _, t := range results {
		r.Tests = append(r.Tests, policyTest{Name: t.Name, Passed: t.Passed, Detail: t.Detail})
		if t.Passed {
			r.Passed++
		} else {
			r.Failed++
		}
	}
	return r
}

// verdict is the command's error: failed tests, untested reasons, or no
// tests at all.
func (r policyReport) verdict() error {
	switch {
	case len(r.Tests) == 0:
		return fmt.Errorf("no policy tests found")
	case r.Failed > 0 || len(r.Untested) > 0:
		return fmt.Errorf("%d of %d policy tests failed, %d reason codes untested", r.Failed, len(r.Tests), len(r.Untested))
	}
	return nil
}

func (r policyReport) writeText(w io.Writer) error {
	for _, t := range r.Tests {
		status := "PASS"
		if !t.Passed {
			status = "FAIL"
		}
		fmt.Fprintf(w, "%s %s %s\n", status, show(t.Name), show(t.Detail))
	}
	for _, u := range r.Untested {
		fmt.Fprintf(w, "UNTESTED %s emits %q but %s never names it\n", show(u.Policy), u.Reason, show(u.Tests))
	}
	_, err := fmt.Fprintf(w, "%d passed, %d failed, %d reason codes untested\n", r.Passed, r.Failed, len(r.Untested))
	return err
}

// JUnit XML as CI systems read it: one suite, a test case per Rego test
// and per untested reason code.
type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Class   string        `xml:"classname,attr"`
	Name    string        `xml:"name,attr"`
	Failure *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
}

func (r policyReport) writeJUnit(w io.Writer) error {
	s := junitSuite{Name: "policy-test", Tests: len(r.Tests) + len(r.Untested), Failures: r.Failed + len(r.Untested)}
	for _, t := range r.Tests {
		class, name := t.Name, t.Name
		if i := strings.LastIndexByte(t.Name, '.'); i > 0 {
			class, name = t.Name[:i], t.Name[i+1:]
		}
		c := junitCase{Class: class, Name: name}
		if !t.Passed {
			c.Failure = &junitFailure{Message: t.Detail}
		}
		s.Cases = append(s.Cases, c)
	}
	for _, u := range r.Untested {
		s.Cases = append(s.Cases, junitCase{Class: u.Policy, Name: "reason " + u.Reason + " is tested",
			Failure: &junitFailure{Message: fmt.Sprintf("%s emits %q but %s never names it", u.Policy, u.Reason, u.Tests)}})
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
