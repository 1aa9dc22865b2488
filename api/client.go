package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/textcheck"
)

// Client calls one tokengate endpoint: a management API (NewRemote) or
// the local operator's routes on Caddy's admin endpoint (a Client with
// BaseURL ending in /tokengate and an HTTP client that dials the admin
// address). Every method is one route.
type Client struct {
	// BaseURL is where the routes start, such as https://gw.example.com/v1
	// or http://127.0.0.1:2019/tokengate.
	BaseURL string
	// Header is sent with every request (Authorization, Origin).
	Header http.Header
	// HTTP sends the requests; nil means a client with a 30 s timeout.
	HTTP *http.Client
}

// NewRemote returns a client of the management API served at api (scheme
// and host, without /v1), calling as the holder of secret: a management
// token or an ID token. With secret "" it sends no credential, for the
// routes served without one.
func NewRemote(api, secret string) *Client {
	c := &Client{BaseURL: strings.TrimSuffix(api, "/") + "/v1", Header: http.Header{}}
	if secret != "" {
		c.Header.Set("Authorization", "Bearer "+secret)
	}
	return c
}

// Error is a refusal from the API: its status and reason code. Body holds
// the answer when it was not the API's JSON (a proxy's error page).
type Error struct {
	Status  int
	Reason  string
	Message string
	Body    string
}

// Error reads "reason: message", with every non-printable character
// escaped: the text comes from the server, and from whoever typed it.
func (e *Error) Error() string {
	switch {
	case e.Reason != "" && e.Message != "":
		return textcheck.Printable(e.Reason) + ": " + textcheck.Printable(e.Message)
	case e.Reason != "":
		return textcheck.Printable(e.Reason)
	}
	return textcheck.Printable(strings.TrimSpace(fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)))
}

// Reason is the API's reason code of err, or "" when err is no refusal.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// maxAnswer bounds what the client reads of an answer: a token inventory
// runs to a few MB at most.
const maxAnswer = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	_, err := c.doHeader(ctx, method, path, body, out)
	return err
}

// list reads every page of a listing, following the Link rel="next" the
// server sets while more items follow.
func list[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	var all []T
	for {
		var page []T
		h, err := c.doHeader(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		cursor := nextCursor(h.Get("Link"))
		if cursor == "" {
			return all, nil
		}
		q.Set("cursor", cursor)
	}
}

// nextCursor is the cursor of the rel="next" link in a Link header, or "".
func nextCursor(link string) string {
	for _, l := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(l), ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err == nil {
			return u.Query().Get("cursor")
		}
	}
	return ""
}

func (c *Client) doHeader(ctx context.Context, method, path string, body, out any) (http.Header, error) {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %v", textcheck.Printable(resp.Request.URL.Redacted()), err)
	}
	return resp.Header, nil
}

// send makes one call and returns the answer when it is not a refusal;
// a refusal is an *Error. The caller closes the answer's body.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(b)
	}
	target := c.BaseURL + path
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling %s: %w", textcheck.Printable(req.URL.Redacted()), err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := &Error{Status: resp.StatusCode}
		var b ErrorBody
		if json.Unmarshal(raw, &b) == nil && b.Reason != "" {
			e.Reason, e.Message = b.Reason, b.Detail
		} else {
			e.Body = string(raw)
		}
		return nil, e
	}
	return resp, nil
}

func tokenPath(id, action string) string {
	p := "/tokens/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

func requestPath(id, action string) string {
	p := "/requests/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

// SignInConfig returns how people sign in to this management API (no
// credential needed); an *Error with reason signin_not_configured when the
// gateway has no oidc issuer.
func (c *Client) SignInConfig(ctx context.Context) (SignInConfig, error) {
	var out SignInConfig
	return out, c.do(ctx, http.MethodGet, "/auth/oidc", nil, &out)
}

// Bootstrap creates the first two management tokens (admin endpoint only).
func (c *Client) Bootstrap(ctx context.Context, b BootstrapRequest) (BootstrapResult, error) {
	var out BootstrapResult
	return out, c.do(ctx, http.MethodPost, "/bootstrap", b, &out)
}

// Backup copies a consistent snapshot of the bolt store to w, and returns
// the bytes written (admin endpoint only). A copy shorter than the
// snapshot the server announced is an error.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("the backup ended after %d of %d bytes", n, resp.ContentLength)
	}
	return n, err
}

// StartBreakGlass begins the recovery of lost bootstrap secrets (admin
// endpoint only).
func (c *Client) StartBreakGlass(ctx context.Context, b BreakGlassStart) (BreakGlassPending, error) {
	var out BreakGlassPending
	return out, c.do(ctx, http.MethodPost, "/break-glass", b, &out)
}

// ConfirmBreakGlass completes recovery id with its code: the new
// management tokens, their secrets shown once (admin endpoint only).
func (c *Client) ConfirmBreakGlass(ctx context.Context, id, code string) (BootstrapResult, error) {
	var out BootstrapResult
	return out, c.do(ctx, http.MethodPost, "/break-glass/"+url.PathEscape(id)+"/confirm", BreakGlassConfirm{Code: code}, &out)
}

// Issue issues a token directly (admin endpoint only).
func (c *Client) Issue(ctx context.Context, spec TokenSpec) (IssuedToken, error) {
	var out IssuedToken
	return out, c.do(ctx, http.MethodPost, "/tokens", spec, &out)
}

// Request asks for a token; the outcome carries the secret only if the
// policy approved it at once.
func (c *Client) Request(ctx context.Context, spec TokenSpec) (RequestOutcome, error) {
	var out RequestOutcome
	return out, c.do(ctx, http.MethodPost, "/requests", spec, &out)
}

// Approve approves someone else's request; the answer holds no secret.
func (c *Client) Approve(ctx context.Context, id, reason string) (RequestOutcome, error) {
	var out RequestOutcome
	return out, c.do(ctx, http.MethodPost, requestPath(id, "approve"), ReasonBody{Reason: reason}, &out)
}

// Deny denies someone else's request.
func (c *Client) Deny(ctx context.Context, id, reason string) (RequestOutcome, error) {
	var out RequestOutcome
	return out, c.do(ctx, http.MethodPost, requestPath(id, "deny"), ReasonBody{Reason: reason}, &out)
}

// Claim takes the secret of the caller's approved request, once.
func (c *Client) Claim(ctx context.Context, id string) (RequestOutcome, error) {
	var out RequestOutcome
	return out, c.do(ctx, http.MethodPost, requestPath(id, "claim"), nil, &out)
}

// GetRequest shows one token request.
func (c *Client) GetRequest(ctx context.Context, id string) (RequestView, error) {
	var out RequestView
	return out, c.do(ctx, http.MethodGet, requestPath(id, ""), nil, &out)
}

// ListRequests lists token requests in state, all of them when state is
// "", every page.
func (c *Client) ListRequests(ctx context.Context, state string) ([]RequestView, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	return list[RequestView](ctx, c, "/requests", q)
}

// TokenFilter narrows a token listing; empty fields match everything.
type TokenFilter struct {
	Owner, Service, State string
}

// ListTokens lists tokens, never their secrets.
func (c *Client) ListTokens(ctx context.Context, f TokenFilter) ([]TokenView, error) {
	q := url.Values{}
	for k, v := range map[string]string{"owner": f.Owner, "service": f.Service, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return list[TokenView](ctx, c, "/tokens", q)
}

// GetToken shows one token.
func (c *Client) GetToken(ctx context.Context, id string) (TokenView, error) {
	var out TokenView
	return out, c.do(ctx, http.MethodGet, tokenPath(id, ""), nil, &out)
}

// Rotate issues a successor secret; the old one works for grace (a Go
// duration, "" for the server's default).
func (c *Client) Rotate(ctx context.Context, id, grace string) (IssuedToken, error) {
	var out IssuedToken
	return out, c.do(ctx, http.MethodPost, tokenPath(id, "rotate"), RotateBody{Grace: grace}, &out)
}

// Revoke revokes a token at once.
func (c *Client) Revoke(ctx context.Context, id, reason string) (TokenView, error) {
	var out TokenView
	return out, c.do(ctx, http.MethodPost, tokenPath(id, "revoke"), ReasonBody{Reason: reason}, &out)
}

// Report returns the hygiene report; tokens unused for unusedDays count
// as unused.
func (c *Client) Report(ctx context.Context, unusedDays int) (Report, error) {
	var out Report
	return out, c.do(ctx, http.MethodGet, "/report?unused_days="+strconv.Itoa(unusedDays), nil, &out)
}

// Check dry-runs a gateway decision for a stored token, without using it.
func (c *Client) Check(ctx context.Context, r CheckRequest) (CheckResult, error) {
	var out CheckResult
	return out, c.do(ctx, http.MethodPost, "/check", r, &out)
}

// ReportLeaks sends secrets found in the wild to POST /v1/leaks: each one
// that opens a live token revokes it (unless r.DryRun).
func (c *Client) ReportLeaks(ctx context.Context, r LeakReport) (LeakResult, error) {
	var out LeakResult
	return out, c.do(ctx, http.MethodPost, "/leaks", r, &out)
}
