// Package caddymodule plugs tokengate into Caddy: the tokengate app (shared
// state), the tokengate handler (data plane), the admin endpoint routes and
// the `caddy tokengate` command. It is the only package that knows Caddy
// exists; the logic lives under internal/.
package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
	"github.com/tokengate/caddy-tokengate/internal/node"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `tokengate` Caddy app. It owns what every tokengate handler
// and the management endpoints share: the token store, the policy engine,
// the caches and the audit logger. It is the global Caddyfile option
// `tokengate { ... }`; docs/caddyfile.md lists every option with its
// default, and a test keeps that page in step with the parsers.
type App struct {
	// The token store module; default tokengate.stores.bolt.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=tokengate.stores inline_key=backend"`
	// Folder of .rego policies (reloaded on change), an OPA bundle file
	// (.tar.gz, as `opa build` writes it) or the http(s) URL of an OPA
	// bundle service. Empty uses the policies built into the binary.
	PolicyDir string `json:"policy,omitempty"`
	// Polling and signature verification of a policy given as an OPA
	// bundle.
	PolicyBundle *policy.BundleConfig `json:"policy_bundle,omitempty"`
	// Cap on any token's lifetime. Default 720h.
	MaxTTL caddy.Duration `json:"max_ttl,omitempty"`
	// Number of decisions cached. Default 100000; 0 disables the cache.
	DecisionCache *int `json:"decision_cache,omitempty"`
	// How often the store is counted for the token gauges (tokens by
	// state, expiring soon, pending requests). Each count reads every
	// token record in bolt, one GROUP BY in PostgreSQL. Default 30s; at
	// least 1s.
	CensusInterval caddy.Duration `json:"census_interval,omitempty"`
	// Key for HMAC-SHA256 token hashes. Placeholders such as
	// {env.TOKENGATE_PEPPER} are expanded; one that expands to nothing
	// refuses to start rather than fall back to plain SHA-256. Changing it
	// makes every existing token unknown unless the old value is kept as
	// previous_pepper for a while.
	Pepper string `json:"pepper,omitempty"`
	// The pepper being rotated out, with the same placeholder rules. A
	// secret unknown under pepper is looked up under this one and, when
	// found, re-keyed to pepper's hash, so it keeps working once this is
	// removed. Tokens not used while it is set become unknown when it is.
	// Refused when equal to pepper.
	PreviousPepper string `json:"previous_pepper,omitempty"`
	// Let allowed calls through while their audit lines cannot be
	// written (a full disk, a deleted audit file). Default false: such
	// calls get 503 audit_unavailable until lines are written again.
	AuditFailOpen bool `json:"audit_fail_open,omitempty"`
	// The OpenID provider people sign in with: the management API then
	// also takes their ID tokens as bearer credentials.
	OIDC *identity.PersonConfig `json:"oidc,omitempty"`
	// Issuers of CI and cluster workload tokens, for token exchange.
	Workloads []identity.WorkloadConfig `json:"workloads,omitempty"`
	// Receivers of signed events about requests and revocations, so that
	// approvers hear about a pending request.
	Webhooks []notify.HookConfig `json:"webhooks,omitempty"`
	// ExchangeLimit brakes the token exchange, which takes no credential:
	// attempts per client address and window. Default 30 a minute.
	ExchangeLimit *addrlimit.AttemptLimit `json:"exchange_limit,omitempty"`
	// Leaks configures the intake of secrets found in the wild: GitHub's
	// partner alerts and webhook, and the brake on reports.
	Leaks *leaks.Config `json:"leaks,omitempty"`
	// MaxStaleness bounds how far behind the token changes of other nodes
	// this node may answer from its caches: once the store's change feed
	// has not confirmed within it that every change was seen, calls read
	// the store (503 store_unavailable while it cannot be read). Default 2s.
	MaxStaleness caddy.Duration `json:"max_staleness,omitempty"`
	// StaleReads "allow" keeps answering read-only calls (GET, HEAD,
	// OPTIONS under a <service>:read decision) from the caches while
	// stale. Default: not allowed.
	StaleReads string `json:"stale_reads,omitempty"`
	// Console sets up the web console (served with oidc).
	Console *console.Settings `json:"console,omitempty"`

	// ClockRaw is the time source, a module in the tokengate.clocks
	// namespace; default the system clock. Tests and simulations plug in
	// a clock they move instead of sleeping.
	ClockRaw json.RawMessage `json:"clock,omitempty" caddy:"namespace=tokengate.clocks inline_key=source"`

	rt    *node.Shared // shared with the other configs on the same store
	rtKey string
	// parts are the node's parts, assembled from this config; the fields
	// below are the ones the adapters use, taken from them.
	parts  *node.Parts
	store  store.Backend
	gate   *gateway.Gate
	manage *manage.Service
	audit  *audit.Logger
	logger *zap.Logger
	now    func() time.Time
	node   *mgmtapi.Node // what the management API acts on
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tokengate",
		New: func() caddy.Module { return new(App) },
	}
}

// StoreModule is implemented by the modules in the tokengate.stores
// namespace, which may live outside this repository: the store contract
// and its conformance suite are the public packages store and
// store/storetest. The app, not the module, opens the store, so that
// configs on the same data share one handle across a reload.
type StoreModule interface {
	// StoreKey names the data the store holds (a file, a database, ...):
	// configs whose modules return the same key share one opened store.
	// It must not contain a secret such as a password.
	StoreKey() string
	// OpenStore opens the store. It is called once per key while any
	// config uses it (the module is provisioned first); the store is
	// closed when the last such config is cleaned up.
	OpenStore(ctx caddy.Context) (store.Backend, error)
}

// Provision decodes the config, resolves what Caddy knows (the clock
// module, the store shared across reloads, the metrics registry, the data
// folder) and assembles the node's parts from it.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.now = time.Now
	if a.ClockRaw != nil {
		mod, err := ctx.LoadModule(a, "ClockRaw")
		if err != nil {
			return fmt.Errorf("loading clock: %v", err)
		}
		a.now = mod.(Clock).Now
	}
	if a.CensusInterval < 0 || (a.CensusInterval > 0 && time.Duration(a.CensusInterval) < minCensusInterval) {
		return fmt.Errorf("census_interval must be %s or more, got %s", minCensusInterval, time.Duration(a.CensusInterval))
	}
	// Secrets and URLs in the config may name {env.*} and {file.*}.
	expand := caddy.NewReplacer().ReplaceOrErr
	pepper, previousPepper, err := node.ResolvePeppers(a.Pepper, a.PreviousPepper, expand)
	if err != nil {
		return err
	}
	opts := node.Options{
		Logger: a.logger, Now: a.now,
		PolicyDir: a.PolicyDir, PolicyBundle: a.PolicyBundle,
		OnPolicyReload: metrics.PolicyReloaded, OnBundleFetch: metrics.BundleFetched,
		MaxTTL: time.Duration(a.MaxTTL), DecisionCacheSize: a.DecisionCache,
		// A ttl reads as the Caddyfile's max_ttl does: 30d too.
		ParseDuration: caddy.ParseDuration,
		Pepper:        pepper, PreviousPepper: previousPepper, OnRekey: func(string) { metrics.Rekeyed() },
		OIDC: a.OIDC, Workloads: a.Workloads,
		AuditFailOpen: a.AuditFailOpen,
		StaleReads:    a.StaleReads == "allow", StoreTimeout: a.maxStaleness(),
		ObservePolicy: metrics.PolicyEvaluated, ObserveStore: metrics.StoreCalled,
		Expand:   expand,
		Webhooks: a.Webhooks, OnWebhookOutcome: metrics.WebhookOutcome,
		Leaks: a.Leaks, ClientAddr: caddyHost{}.ClientIP,
		Console: a.Console,
	}
	if err := opts.Check(); err != nil {
		return err
	}
	if err := a.openRuntime(ctx); err != nil {
		return err
	}
	opts.Store, opts.Forget, opts.ChangeLag = a.store, a.rt.Forget, a.rt.Lag
	opts.Fresh = func() bool { return a.rt.Fresh(opts.StoreTimeout) }
	if err := metrics.Register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	if a.parts, err = node.Assemble(ctx, opts); err != nil {
		return err
	}
	p := a.parts
	a.gate, a.manage, a.audit = p.Gate, p.Manage, p.Audit
	a.rt.Attach(p)
	a.node = p.ManagementNode(node.Management{
		BreakGlass: &a.rt.BreakGlass, BreakGlassDir: breakGlassDir(),
		ExchangeLimit: a.ExchangeLimit,
	})
	p.LogReady()
	return nil
}

// openRuntime loads the store module and takes this config's hold on the
// runtime of its data: opened by the first config that names it, shared
// with the others until the last one is cleaned up.
func (a *App) openRuntime(ctx caddy.Context) error {
	if a.StoreRaw == nil {
		a.StoreRaw = json.RawMessage(`{"backend":"bolt"}`)
	}
	mod, err := ctx.LoadModule(a, "StoreRaw")
	if err != nil {
		return fmt.Errorf("loading token store: %v", err)
	}
	sm := mod.(StoreModule)
	key := sm.StoreKey()
	val, _, err := runtimes.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := sm.OpenStore(ctx)
		if err != nil {
			return nil, err
		}
		return runtime{node.NewShared(s, metrics)}, nil
	})
	if err != nil {
		return fmt.Errorf("opening token store: %v", err)
	}
	a.rtKey, a.rt = key, val.(runtime).Shared
	a.store = a.rt.Store()
	return nil
}

// breakGlassDir is where the break-glass confirmation codes are written:
// Caddy's data folder, readable by the Caddy service's user only.
func breakGlassDir() string { return filepath.Join(caddy.AppDataDir(), "tokengate", "break-glass") }

// Start runs the node's background work (node.Parts.Start) and the
// census of this config's store for the token gauges. Cross-node cache
// invalidation runs in the runtime.
func (a *App) Start() error {
	if err := a.parts.Start(); err != nil {
		return err
	}
	a.parts.Go(func(ctx context.Context) { metrics.RunCensus(ctx, a.census()) })
	return nil
}

// Stop ends the background work, flushing usage records and delivering
// queued webhooks first. It runs before Caddy releases the store.
func (a *App) Stop() error {
	if a.parts != nil {
		a.parts.Stop()
	}
	return nil
}

// Cleanup releases the caches and this config's hold on the runtime.
func (a *App) Cleanup() error {
	if a.node != nil {
		a.node.FlushBrake()
	}
	if a.rt != nil && a.parts != nil {
		a.rt.Detach(a.parts)
	}
	if a.gate != nil {
		a.gate.Close()
	}
	if a.rtKey != "" {
		_, err := runtimes.Delete(a.rtKey)
		return err
	}
	return nil
}

// Clock is implemented by the modules in the tokengate.clocks namespace:
// a time source the app reads instead of the system clock.
type Clock interface {
	Now() time.Time
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
