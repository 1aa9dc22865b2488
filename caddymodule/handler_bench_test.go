package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/node"
	"github.com/tokengate/caddy-tokengate/internal/testutil/benchdata"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/store"
)

// BenchmarkServeHTTP calls Handler.ServeHTTP directly, without listeners,
// with a next handler that does nothing: what tokengate adds to a request,
// and nothing else. The App is provisioned for real (bbolt file, embedded
// policy, caches) in a bare caddy.Context; the handler's Provision needs a
// loaded Caddy config to find the app, so its two lines are done by hand.
//
// The request, its replacer and its variables are built once, as Caddy's
// server builds them; each iteration puts the credential back (the handler
// strips it) and drops the request id, so every call generates a new one
// as a new request would (the audit line and any error body carry it).
//
//   - cached: token and decision caches hit. Target <= 2 µs, <= 10 allocs.
//   - uncached: decision_cache 0, the policy runs on every call. Target
//     <= 25 µs.
//   - audit=off: the audit logger routed nowhere (zap.NewNop, as Caddy
//     does when no log includes tokengate.audit); audit=json: Caddy's JSON
//     encoder writing to io.Discard, so the line is built and encoded but
//     the cost of the file write is left out.
func BenchmarkServeHTTP(b *testing.B) {
	for _, c := range []struct {
		name          string
		decisionCache int
		audit         *zap.Logger
	}{
		{"cached/audit=off", node.DefaultDecisionCache, zap.NewNop()},
		{"cached/audit=json", node.DefaultDecisionCache, jsonDiscardLogger()},
		{"uncached/audit=off", 0, zap.NewNop()},
		{"uncached/audit=json", 0, jsonDiscardLogger()},
	} {
		b.Run(c.name, func(b *testing.B) {
			h, secret := newBenchHandler(b, c.decisionCache, c.audit)
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
			w := &discardWriter{header: make(http.Header)}
			credential := []string{"Bearer " + secret}
			r := withCaddyContext(httptest.NewRequest(http.MethodGet, "http://api.example.com/billing/invoices", nil))
			vars := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
			serve := func() {
				// What a new request would bring: the credential (the
				// handler strips it) and no request id yet.
				r.Header["Authorization"] = credential
				delete(vars, "uuid")
				if err := h.ServeHTTP(w, r, next); err != nil {
					b.Fatal(err)
				}
				if w.status != 0 {
					b.Fatalf("refused with %d", w.status)
				}
			}
			// Let the decision cache admit its first entry (ristretto
			// admits asynchronously).
			serve()
			time.Sleep(20 * time.Millisecond)
			b.ReportAllocs()
			defer benchdata.MeasureCPU(b)()
			for b.Loop() {
				serve()
			}
		})
	}
}

// withCaddyContext gives r what Caddy's server puts in every request's
// context before the handlers run: variables (with the client IP), the
// access log's extra fields, and a replacer with the HTTP placeholders.
func withCaddyContext(r *http.Request) *http.Request {
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{
		caddyhttp.ClientIPVarKey: "127.0.0.1",
	})
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, new(caddyhttp.ExtraLogFields))
	r = r.WithContext(ctx)
	caddyhttp.NewTestReplacer(r)
	return r
}

func newBenchHandler(b *testing.B, decisionCache int, auditLog *zap.Logger) (*Handler, string) {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	raw, _ := json.Marshal(map[string]string{"backend": "bolt", "path": filepath.Join(b.TempDir(), "tokens.db")})
	app := &App{StoreRaw: raw, DecisionCache: &decisionCache}
	// Without a loaded config, ctx.Logger() is a development logger on
	// stderr, whose lines would land in the middle of the benchmark's
	// result lines.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		b.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = devNull
	err = app.Provision(ctx)
	os.Stderr = stderr
	devNull.Close()
	if err != nil {
		b.Fatal(err)
	}
	app.audit = audit.New(auditLog)
	if err := app.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = app.Stop() })

	secret := token.NewSecret()
	hash := token.NewHasher("").Hash(secret)
	now := time.Now()
	err = app.store.Create(context.Background(), &store.Token{
		ID: token.NewID(), Hash: hash[:], Owner: "team-1", Purpose: "benchmark",
		Scopes: []string{"billing:read"}, Services: []string{"billing"},
		NotBefore: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, CreatedBy: "bench",
	})
	if err != nil {
		b.Fatal(err)
	}
	h := &Handler{Service: "billing", Header: "Authorization", app: app, logger: zap.NewNop()}
	return h, secret
}

// jsonDiscardLogger encodes like a Caddy `format json` log and throws the
// bytes away.
func jsonDiscardLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel)).Named(audit.LoggerName)
}

type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
