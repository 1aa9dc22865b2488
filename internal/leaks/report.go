package leaks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Finding is one secret a scanner reports, with where it was found.
type Finding struct {
	// Secret is the string found. It is checked offline, hashed and
	// dropped: it never reaches a log, an answer or the store.
	Secret string
	// Type is the scanner's name for what it found (GitHub's token type,
	// gitleaks' rule id); echoed in GitHub's answer.
	Type string
	// URL is where the secret was found: a link, or file:line@commit.
	URL string
}

// MaxFindings bounds one report. GitHub sends alerts in small batches;
// a larger report is split by its sender.
const MaxFindings = 1000

// ErrInvalidReport is a body that is none of the accepted shapes. The
// message says what was wrong without quoting the body.
var ErrInvalidReport = errors.New("invalid leak report")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidReport, fmt.Sprintf(format, args...))
}

// GitHubAlert reads the body of a GitHub secret scanning partner alert: a
// JSON array of {token, type, url, source}. source (content, commit,
// pull_request_description, ...) says what GitHub scanned; it joins the
// URL so the record says where to look.
func GitHubAlert(body []byte) ([]Finding, error) {
	var alert []struct {
		Token  string `json:"token"`
		Type   string `json:"type"`
		URL    string `json:"url"`
		Source string `json:"source"`
	}
	if err := json.Unmarshal(body, &alert); err != nil {
		return nil, invalidf("not a JSON array of {token, type, url, source}")
	}
	if err := checkCount(len(alert)); err != nil {
		return nil, err
	}
	out := make([]Finding, len(alert))
	for i, a := range alert {
		out[i] = Finding{Secret: a.Token, Type: a.Type, URL: a.URL}
	}
	return out, nil
}

// Report is what POST /v1/leaks was given: the findings and who found
// them.
type Report struct {
	Source   string
	Findings []Finding
	// DryRun asks what the secrets are without revoking anything.
	DryRun bool
}

// ParseReport reads the body of POST /v1/leaks, either shape:
//
//	{"source": "...", "url": "...", "secrets": ["tg_...", ...], "dry_run": false}
//	[{"RuleID": "...", "Secret": "...", "File": "...", "StartLine": 3, "Commit": "..."}, ...]
//
// The second is gitleaks' JSON report (--report-format json), whose
// source is "gitleaks". Which one it is follows from the first byte.
func ParseReport(body []byte) (Report, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return Report{}, invalidf("empty body")
	}
	switch trimmed[0] {
	case '{':
		return parsePlain(body)
	case '[':
		return parseGitleaks(body)
	}
	return Report{}, invalidf(`expected {"source", "url", "secrets"} or a gitleaks JSON report`)
}

func parsePlain(body []byte) (Report, error) {
	var r struct {
		Source  string   `json:"source"`
		URL     string   `json:"url"`
		Secrets []string `json:"secrets"`
		DryRun  bool     `json:"dry_run"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Report{}, invalidf(`expected {"source", "url", "secrets": [...]}`)
	}
	if len(r.Secrets) == 0 {
		return Report{}, invalidf("secrets is empty")
	}
	if err := checkCount(len(r.Secrets)); err != nil {
		return Report{}, err
	}
	out := Report{Source: r.Source, Findings: make([]Finding, len(r.Secrets)), DryRun: r.DryRun}
	for i, s := range r.Secrets {
		out.Findings[i] = Finding{Secret: s, URL: r.URL}
	}
	return out, nil
}

// gitleaksFinding is the part of a gitleaks finding a report uses.
type gitleaksFinding struct {
	RuleID    string `json:"RuleID"`
	Secret    string `json:"Secret"`
	Match     string `json:"Match"`
	File      string `json:"File"`
	StartLine int    `json:"StartLine"`
	Commit    string `json:"Commit"`
}

func parseGitleaks(body []byte) (Report, error) {
	var findings []gitleaksFinding
	if err := json.Unmarshal(body, &findings); err != nil {
		return Report{}, invalidf("not a gitleaks JSON report")
	}
	if err := checkCount(len(findings)); err != nil {
		return Report{}, err
	}
	out := Report{Source: "gitleaks", Findings: make([]Finding, len(findings))}
	for i, f := range findings {
		secret := f.Secret
		if secret == "" {
			secret = f.Match
		}
		where := f.File
		if f.StartLine > 0 {
			where += ":" + strconv.Itoa(f.StartLine)
		}
		if f.Commit != "" {
			where += "@" + f.Commit
		}
		out.Findings[i] = Finding{Secret: secret, Type: f.RuleID, URL: where}
	}
	return out, nil
}

// AlertWebhook reads GitHub's secret_scanning_alert webhook, which an
// organisation sends for its private repositories. GitHub leaves the
// secret itself out of the webhook; a forwarder that looked the alert up
// (GET /repos/{owner}/{repo}/secret-scanning/alerts/{number}, which has
// it) puts it in alert.secret. Actions other than created and reopened,
// and alerts without a secret, carry nothing to revoke: they return no
// findings.
func AlertWebhook(body []byte) (action string, findings []Finding, err error) {
	var hook struct {
		Action string `json:"action"`
		Alert  struct {
			Secret     string `json:"secret"`
			SecretType string `json:"secret_type"`
			HTMLURL    string `json:"html_url"`
		} `json:"alert"`
	}
	if err := json.Unmarshal(body, &hook); err != nil {
		return "", nil, invalidf("not a secret_scanning_alert webhook")
	}
	if (hook.Action != "created" && hook.Action != "reopened") || hook.Alert.Secret == "" {
		return hook.Action, nil, nil
	}
	return hook.Action, []Finding{{Secret: hook.Alert.Secret, Type: hook.Alert.SecretType, URL: hook.Alert.HTMLURL}}, nil
}

func checkCount(n int) error {
	if n > MaxFindings {
		return invalidf("%d findings in one report; at most %d", n, MaxFindings)
	}
	return nil
}
