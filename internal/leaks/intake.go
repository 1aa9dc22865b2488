package leaks

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/reason"
)

// MaxBody bounds a report's body. GitHub's alerts are a few KB; a
// gitleaks report of MaxFindings findings fits.
const MaxBody = 1 << 20

// Default brake on the intake endpoints: attempts per client address and
// window. GitHub sends from a handful of addresses, in small batches.
const (
	DefaultAttempts = 60
	DefaultWindow   = time.Minute
)

// Actors of the lines and records of reports that carry no credential
// but a signature.
const (
	GitHubActor  = "github"         // partner alerts
	WebhookActor = "github-webhook" // an organisation's secret_scanning_alert webhook
)

// Trail writes the intake's leak.reported lines: manage.Service, the one
// writer of action lines.
type Trail interface {
	// LeakReported writes the line of an attempt taken in; summary says
	// what it found, in counts.
	LeakReported(ctx context.Context, actor, clientIP, summary string)
	// LeakRefused writes the line of attempts refused with r; refused is
	// how many attempts the line stands for (0 leaves it out).
	LeakRefused(ctx context.Context, actor, clientIP string, r *reason.Refusal, refused int)
}

// Intake serves the leak endpoints. Each handler takes one attempt from
// the client's address, bounds the body, checks the sender (signature,
// HMAC, or the admin policy through the caller), and only then reads the
// findings: a flood of unsigned or garbage reports never reaches the
// store. Every attempt writes one leak.reported line, refusals included
// (past the brake's limit, one line per address and window, as addrlimit
// counts them).
type Intake struct {
	Ledger Ledger
	Trail  Trail
	Brake  *addrlimit.Limiter
	Now    func() time.Time
	// ClientAddr is the client's address as the server resolved it
	// (trusted proxies applied).
	ClientAddr func(*http.Request) string
	// GitHubKeys verifies partner alerts; nil refuses them (404).
	GitHubKeys *Keys
	// WebhookSecret verifies X-Hub-Signature-256 of the
	// secret_scanning_alert webhook; empty refuses it (404).
	WebhookSecret []byte
	// OnError hears about technical failures (answered 503), for the
	// operator's log.
	OnError func(route string, err error)
}

// attempt is one call to an intake endpoint, as its audit line tells it.
type attempt struct {
	in    *Intake
	w     http.ResponseWriter
	r     *http.Request
	actor string
	addr  string
}

func (in *Intake) start(w http.ResponseWriter, r *http.Request, actor string) (*attempt, bool) {
	a := &attempt{in: in, w: w, r: r, actor: actor, addr: addrlimit.Key(in.ClientAddr(r))}
	v, ended := in.Brake.Attempt(a.addr)
	for _, s := range ended {
		in.Trail.LeakRefused(context.Background(), "-", s.Addr, reason.Newf(reason.RateLimited, "%d more leak reports refused between %s and %s",
			s.Refused, s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339)), s.Refused)
	}
	if !v.Allowed {
		w.Header().Set("Retry-After", strconv.Itoa(int(v.RetryAfter/time.Second)))
		throttled := reason.New(reason.RateLimited, "too many leak reports from this address; retry after the time Retry-After says")
		if v.Audit {
			a.refuse(throttled)
		} else {
			writeProblem(w, throttled)
		}
		return nil, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.refuse(reason.New(reason.MethodNotAllowedCode, "use POST"))
		return nil, false
	}
	return a, true
}

// body reads the request body, at most MaxBody bytes.
func (a *attempt) body() ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(a.w, a.r.Body, MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		a.refuse(reason.Newf(reason.BodyTooLarge, "a report is at most %d bytes", MaxBody))
		return nil, false
	case err != nil:
		a.refuse(reason.New(reason.BodyUnreadable, "the body could not be read"))
		return nil, false
	}
	return data, true
}

// refuse answers r as a problem and writes the refused line.
func (a *attempt) refuse(r *reason.Refusal) {
	a.in.Trail.LeakRefused(a.r.Context(), a.actor, a.addr, r, refusedCount(r))
	writeProblem(a.w, r)
}

// refusedCount is 1 on the one line of a throttled attempt, as
// addrlimit's lines count; other refusals leave it out.
func refusedCount(r *reason.Refusal) int {
	if r.Code == reason.RateLimited {
		return 1
	}
	return 0
}

// process runs the findings (a dry run only resolves them) and writes
// the success line; false after it answered a store failure.
func (a *attempt) process(source string, findings []Finding, dryRun bool) ([]Result, Tally, bool) {
	var results []Result
	var tally Tally
	var err error
	if dryRun {
		results, tally, err = Resolve(a.r.Context(), a.in.Ledger, findings, a.in.Now())
	} else {
		results, tally, err = Process(a.r.Context(), a.in.Ledger, a.actor, source, findings, a.in.Now())
	}
	if err != nil {
		if a.in.OnError != nil {
			a.in.OnError(a.r.URL.Path, err)
		}
		writeProblem(a.w, reason.New(reason.StoreUnavailable, "the token store could not be read; retry later"))
		return nil, nil, false
	}
	text := summary(source, len(findings), tally)
	if dryRun {
		text = "dry run, nothing revoked: " + text
	}
	a.in.Trail.LeakReported(a.r.Context(), a.actor, a.addr, text)
	return results, tally, true
}

// summary is the audit reason of a processed report: counts only, never
// a secret.
func summary(source string, n int, t Tally) string {
	text := fmt.Sprintf("%d findings from %s: %d exposed, %d already exposed, %d inactive, %d unknown, %d malformed",
		n, cmp.Or(source, "unnamed source"), t[Exposed], t[AlreadyExposed], t[Inactive], t[Unknown], t[Malformed])
	if t[Live] > 0 {
		text += fmt.Sprintf(", %d live", t[Live])
	}
	return text
}

// gitHubLabel is one entry of the answer to a partner alert, in the shape
// GitHub's false-positive feedback reads. The token goes back as its
// SHA-256 (token_hash), which GitHub accepts in place of token_raw, so
// the answer never carries a secret.
type gitHubLabel struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// ServeGitHub serves POST /v1/leaks/github: GitHub's secret scanning
// partner alerts. A body whose signature does not verify is 401 and
// changes nothing; a verified one is answered with a label per token. A
// replayed alert finds its tokens exposed already: it is labelled as
// before, audited, and changes nothing.
func (in *Intake) ServeGitHub(w http.ResponseWriter, r *http.Request) {
	a, ok := in.start(w, r, GitHubActor)
	if !ok {
		return
	}
	if in.GitHubKeys == nil {
		a.refuse(reason.New(reason.LeaksGitHubOff, "this gateway takes no GitHub partner alerts (no github_keys configured)"))
		return
	}
	keyID, sig := r.Header.Get("Github-Public-Key-Identifier"), r.Header.Get("Github-Public-Key-Signature")
	if keyID == "" || sig == "" {
		a.refuse(reason.New(reason.SignatureMissing, "Github-Public-Key-Identifier and Github-Public-Key-Signature are required"))
		return
	}
	body, ok := a.body()
	if !ok {
		return
	}
	switch err := in.GitHubKeys.Verify(r.Context(), body, keyID, sig); {
	case errors.Is(err, ErrUnknownKey):
		a.refuse(reason.New(reason.KeyUnknown, "no GitHub key has that identifier"))
		return
	case errors.Is(err, ErrBadSignature):
		a.refuse(reason.New(reason.SignatureInvalid, "the signature does not verify"))
		return
	case err != nil:
		if in.OnError != nil {
			in.OnError(r.URL.Path, err)
		}
		writeProblem(w, reason.New(reason.KeysUnavailable, "GitHub's keys could not be read; retry later"))
		return
	}
	findings, err := GitHubAlert(body)
	if err != nil {
		a.refuse(reason.New(reason.ReportInvalid, err.Error()))
		return
	}
	results, _, ok := a.process(GitHubActor, findings, false)
	if !ok {
		return
	}
	labels := make([]gitHubLabel, len(findings))
	for i, f := range findings {
		sum := sha256.Sum256([]byte(f.Secret))
		labels[i] = gitHubLabel{TokenHash: hex.EncodeToString(sum[:]), TokenType: f.Type, Label: results[i].Outcome.Label()}
	}
	writeJSON(w, http.StatusOK, labels)
}

// ServeReport serves POST /v1/leaks from a caller with a credential,
// named actor. authorize asks the admin policy (report_leak, or read for
// a dry run, which revokes nothing) and returns an error to refuse: 403.
// The answer is each finding's outcome.
func (in *Intake) ServeReport(w http.ResponseWriter, r *http.Request, actor string, authorize func(ctx context.Context, dryRun bool) error) {
	a, ok := in.start(w, r, actor)
	if !ok {
		return
	}
	body, ok := a.body()
	if !ok {
		return
	}
	report, err := ParseReport(body)
	if err != nil {
		a.refuse(reason.New(reason.ReportInvalid, err.Error()))
		return
	}
	if err := authorize(r.Context(), report.DryRun); err != nil {
		var refused *reason.Refusal
		if errors.As(err, &refused) {
			a.refuse(&reason.Refusal{Code: refused.AllReasons()[0], Class: reason.Forbidden, Detail: "refused by the admin policy"})
			return
		}
		if in.OnError != nil {
			in.OnError(r.URL.Path, err)
		}
		writeProblem(w, reason.New(reason.PolicyUnavailable, "the admin policy could not decide; retry later"))
		return
	}
	source := cmp.Or(strings.TrimSpace(report.Source), "report")
	results, tally, ok := a.process(source, report.Findings, report.DryRun)
	if !ok {
		return
	}
	out := api.LeakResult{Results: make([]api.LeakOutcome, len(results)), Counts: map[string]int{}}
	for i, res := range results {
		out.Results[i] = api.LeakOutcome{Outcome: string(res.Outcome), Label: res.Outcome.Label(), TokenID: res.TokenID, State: res.State}
	}
	for o, n := range tally {
		out.Counts[string(o)] = n
	}
	writeJSON(w, http.StatusOK, out)
}

// ServeWebhook serves GitHub's secret_scanning_alert webhook, which an
// organisation sends for its private repositories, signed with the
// shared secret (X-Hub-Signature-256: sha256=<hex HMAC of the body>).
// Other events (ping included) are acknowledged and ignored.
func (in *Intake) ServeWebhook(w http.ResponseWriter, r *http.Request) {
	a, ok := in.start(w, r, WebhookActor)
	if !ok {
		return
	}
	if len(in.WebhookSecret) == 0 {
		a.refuse(reason.New(reason.LeaksWebhookOff, "this gateway takes no GitHub webhooks (no webhook_secret configured)"))
		return
	}
	body, ok := a.body()
	if !ok {
		return
	}
	if !validHubSignature(in.WebhookSecret, body, r.Header.Get("X-Hub-Signature-256")) {
		a.refuse(reason.New(reason.SignatureInvalid, "X-Hub-Signature-256 does not verify"))
		return
	}
	event := r.Header.Get("X-GitHub-Event")
	if event != "secret_scanning_alert" {
		what := "event " + cmp.Or(safeWord(event), "unnamed") + " ignored"
		in.Trail.LeakReported(r.Context(), WebhookActor, a.addr, what)
		writeJSON(w, http.StatusAccepted, map[string]string{"ignored": what})
		return
	}
	_, findings, err := AlertWebhook(body)
	if err != nil {
		a.refuse(reason.New(reason.ReportInvalid, err.Error()))
		return
	}
	_, tally, ok := a.process(WebhookActor, findings, false)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"counts": tally})
}

// IsWebhook tells a GitHub webhook delivery (signed, no credential) from
// a report carrying a credential, on POST /v1/leaks.
func IsWebhook(r *http.Request) bool { return r.Header.Get("X-Hub-Signature-256") != "" }

func validHubSignature(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// safeWord keeps an echoed header to a short word.
func safeWord(s string) string {
	if len(s) > 40 || strings.ContainsFunc(s, func(r rune) bool { return !(r == '_' || r == '-' || r >= 'a' && r <= 'z') }) {
		return "unknown"
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeProblem answers r as problem details, with the status of its class.
func writeProblem(w http.ResponseWriter, r *reason.Refusal) {
	status := r.Class.Status()
	body, _ := json.Marshal(api.ErrorBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: r.Detail, Reason: r.Code})
	w.Header().Set("Content-Type", api.ProblemType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
