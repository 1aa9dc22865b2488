// Package caddymodule plugs tokengate into Caddy: the tokengate app (shared
// state), the tokengate handler (data plane), the admin endpoint routes and
// the `caddy tokengate` command. It is the only package that knows Caddy
// exists; the logic lives under internal/.
package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/api"
	"github.com/tokengate/caddy-tokengate/internal/addrlimit"
	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/health"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/mgmtapi"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults for the app's options.
const (
	DefaultMaxTTL        = 720 * time.Hour
	DefaultDecisionCache = 100000
)

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
	PolicyBundle *PolicyBundle `json:"policy_bundle,omitempty"`
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
	Webhooks []Webhook `json:"webhooks,omitempty"`
	// ExchangeLimit brakes the token exchange, which takes no credential:
	// attempts per client address and window. Default 30 a minute.
	ExchangeLimit *AttemptLimit `json:"exchange_limit,omitempty"`
	// Leaks configures the intake of secrets found in the wild: GitHub's
	// partner alerts and webhook, and the brake on reports.
	Leaks *Leaks `json:"leaks,omitempty"`
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
	Console *ConsoleConfig `json:"console,omitempty"`

	// ClockRaw is the time source, a module in the tokengate.clocks
	// namespace; default the system clock. Tests and simulations plug in
	// a clock they move instead of sleeping.
	ClockRaw json.RawMessage `json:"clock,omitempty" caddy:"namespace=tokengate.clocks inline_key=source"`

	rt         *runtime // shared with the other configs on the same store
	rtKey      string
	store      store.Backend
	engine     *policy.Engine
	bundle     *policy.Bundle // nil unless the policy is an OPA bundle
	gate       *gateway.Gate
	lifecycle  *lifecycle.Service
	manage     *manage.Service
	audit      *audit.Logger
	logger     *zap.Logger
	now        func() time.Time
	people     *identity.Verifier  // nil without oidc
	workloads  *identity.Workloads // nil without workloads
	webhooks   *notify.Dispatcher  // nil without webhooks
	storeProbe *health.StoreProbe
	node       *mgmtapi.Node // what the management API acts on
	leaks      *leaks.Intake // the intake of secrets found in the wild

	stop    context.CancelFunc
	running *sync.WaitGroup
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

// Provision opens the store, compiles the policy and builds the caches.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.audit = audit.New(a.logger.Named("audit"))
	a.now = time.Now
	if a.ClockRaw != nil {
		mod, err := ctx.LoadModule(a, "ClockRaw")
		if err != nil {
			return fmt.Errorf("loading clock: %v", err)
		}
		a.now = mod.(Clock).Now
	}
	a.storeProbe = new(health.StoreProbe)
	if a.MaxTTL <= 0 {
		a.MaxTTL = caddy.Duration(DefaultMaxTTL)
	}
	cacheSize := DefaultDecisionCache
	if a.DecisionCache != nil {
		cacheSize = *a.DecisionCache
	}
	if cacheSize < 0 {
		return fmt.Errorf("decision_cache must be 0 or more, got %d", cacheSize)
	}
	if a.CensusInterval < 0 || (a.CensusInterval > 0 && time.Duration(a.CensusInterval) < minCensusInterval) {
		return fmt.Errorf("census_interval must be %s or more, got %s", minCensusInterval, time.Duration(a.CensusInterval))
	}
	pepper, previousPepper, err := resolvePeppers(a.Pepper, a.PreviousPepper)
	if err != nil {
		return err
	}
	if err := a.provisionIdentity(ctx); err != nil {
		return err
	}
	if a.webhooks, err = a.provisionWebhooks(); err != nil {
		return err
	}

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
		return newRuntime(s), nil
	})
	if err != nil {
		return fmt.Errorf("opening token store: %v", err)
	}
	a.rtKey, a.rt = key, val.(*runtime)
	a.store = a.rt.store

	if a.bundle, err = a.policyBundle(); err != nil {
		return err
	}
	// The policies' print() output, as logger tokengate.policy.
	printer := policy.WithPrintLogger(a.logger.Named("policy"))
	if a.bundle != nil {
		a.engine, err = policy.NewBundleEngine(ctx, a.bundle, printer)
	} else {
		var source fs.FS = policies.FS
		if a.PolicyDir != "" {
			source = os.DirFS(a.PolicyDir)
		}
		a.engine, err = policy.NewEngine(source, printer)
	}
	if err != nil {
		return fmt.Errorf("loading policy from %s: %v", a.policySource(), err)
	}

	hasher := token.NewHasher(pepper)
	var previousHasher *token.Hasher
	if previousPepper != "" {
		previousHasher = token.NewHasher(previousPepper)
	}
	if err := metrics.Register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	a.gate, err = gateway.New(gateway.Options{
		Store:             a.store,
		Policy:            a.engine,
		Hasher:            hasher,
		PreviousHasher:    previousHasher,
		OnRekey:           a.tokenRekeyed,
		DecisionCacheSize: cacheSize,
		Now:               a.now,
		Hold:              a.auditHold,
		OnStoreError: func(err error) {
			a.logger.Error("recording token usage", zap.Error(err))
		},
		ObservePolicy: metrics.PolicyEvaluated,
		ObserveStore:  metrics.StoreCalled,
		Fresh:         a.fresh,
		StaleReads:    a.StaleReads == "allow",
		StoreTimeout:  a.maxStaleness(),
	})
	if err != nil {
		return fmt.Errorf("building caches: %v", err)
	}
	a.lifecycle = &lifecycle.Service{
		Store:  a.store,
		Hasher: hasher,
		MaxTTL: time.Duration(a.MaxTTL),
		Audit:  a.audit,
		Forget: a.rt.forget,
		Now:    a.now,
		// A ttl reads as the Caddyfile's max_ttl does: 30d too.
		ParseDuration: caddy.ParseDuration,
	}
	if !a.engine.Has(policy.AdminQuery) {
		a.logger.Warn("the policy has no package tokengate.admin: every management action will be refused until one is added",
			zap.String("policy", a.policySource()))
	}
	a.rt.attach(a)
	a.manage = &manage.Service{Tokens: a.lifecycle, Requests: a.store, Policy: a.engine, Audit: a.audit, Now: a.now}
	if a.manage.ConsoleURL, err = a.consoleURL(); err != nil {
		return err
	}
	if a.webhooks != nil {
		a.manage.Events = a.webhooks
	}
	if a.leaks, err = a.provisionLeaks(hasher, previousHasher); err != nil {
		return err
	}
	a.node = a.managementNode()
	a.logger.Info("tokengate ready",
		zap.String("policy", a.policySource()),
		zap.String("policy_rev", a.engine.Revision()),
		zap.Int("decision_cache", cacheSize),
		zap.Duration("max_ttl", time.Duration(a.MaxTTL)),
		zap.Bool("pepper", pepper != ""),
		zap.Bool("previous_pepper", previousPepper != ""))
	return nil
}

// managementNode is what the management API acts on in this app.
func (a *App) managementNode() *mgmtapi.Node {
	limit := cmp.Or(a.ExchangeLimit, &AttemptLimit{})
	n := &mgmtapi.Node{
		Manage: a.manage, Audit: a.audit, Store: a.store, Logger: a.logger, Now: a.now,
		MaxTTL: time.Duration(a.MaxTTL), ParseDuration: caddy.ParseDuration,
		AuditFailOpen: a.AuditFailOpen, AuditHold: a.auditHold,
		BreakGlass:    &a.rt.breakGlass,
		BreakGlassDir: breakGlassDir(),
		People:        a.people, Workloads: a.workloads,
		ExchangeBrake: addrlimit.New(cmp.Or(limit.Attempts, DefaultExchangeAttempts),
			cmp.Or(time.Duration(limit.Window), DefaultExchangeWindow), a.now),
		Leaks: a.leaks,
	}
	if a.OIDC != nil {
		n.SignIn = &api.SignInConfig{Issuer: a.OIDC.Issuer, ClientID: a.OIDC.Audience}
	}
	return n
}

// breakGlassDir is where the break-glass confirmation codes are written:
// Caddy's data folder, readable by the Caddy service's user only.
func breakGlassDir() string { return filepath.Join(caddy.AppDataDir(), "tokengate", "break-glass") }

func (a *App) policySource() string {
	if a.bundle != nil {
		return a.bundle.String()
	}
	if a.PolicyDir == "" {
		return "built-in policies"
	}
	return a.PolicyDir
}

// Start runs the background work: batched usage recording and the policy
// folder watcher. Cross-node cache invalidation runs in the runtime.
func (a *App) Start() error {
	// A store that opens on first use (bolt, so that validation needs no
	// file lock) is opened here, so that a held lock fails the start.
	if o, ok := a.store.(interface{ Open() error }); ok {
		if err := o.Open(); err != nil {
			return fmt.Errorf("opening token store: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	a.running = new(sync.WaitGroup)
	a.goRun(func() { a.gate.Run(ctx) })
	if a.bundle != nil {
		a.goRun(func() { a.pollBundle(ctx) })
	} else if a.PolicyDir != "" {
		err := a.engine.Watch(ctx, a.PolicyDir, func(rev string, err error) {
			metrics.PolicyReloaded(err == nil)
			if err != nil {
				a.logger.Error("policy change refused; previous policy stays in force",
					zap.String("policy", a.PolicyDir), zap.String("policy_rev", a.engine.Revision()), zap.Error(err))
				return
			}
			a.logger.Info("policy reloaded", zap.String("policy", a.PolicyDir), zap.String("policy_rev", rev))
		})
		if err != nil {
			cancel()
			return err
		}
	}
	a.goRun(func() { a.watchAudit(ctx) })
	a.goRun(func() { metrics.RunCensus(ctx, a.census()) })
	if a.webhooks != nil {
		a.webhooks.Start()
		a.goRun(func() { a.sweepLapses(ctx) })
	}
	a.goRun(func() { a.discoverIssuers(ctx) })
	return nil
}

// provisionIdentity builds the verifiers of the oidc and workload issuers.
// It does not contact them (validation provisions too, and needs no
// network); see discoverIssuers.
func (a *App) provisionIdentity(ctx caddy.Context) error {
	if err := a.separateIssuers(); err != nil {
		return err
	}
	now := identity.WithClock(a.now)
	if a.OIDC != nil {
		v, err := identity.NewPerson(ctx, *a.OIDC, now)
		if err != nil {
			return fmt.Errorf("oidc: %v", err)
		}
		a.people = v
	}
	if len(a.Workloads) > 0 {
		w, err := identity.NewWorkloads(ctx, a.Workloads, now)
		if err != nil {
			return err
		}
		a.workloads = w
	}
	return nil
}

// separateIssuers refuses an oidc issuer that is also a workload issuer.
// Workload tokens carry the audience their job asked for, so a job could
// ask for the people's client id and sign in to the management API as a
// person named by its subject.
func (a *App) separateIssuers() error {
	if a.OIDC == nil {
		return nil
	}
	people := strings.TrimSuffix(a.OIDC.Issuer, "/")
	for _, w := range a.Workloads {
		if strings.EqualFold(strings.TrimSuffix(w.Issuer, "/"), people) {
			return fmt.Errorf("oidc and workload %s name the same issuer %s: a workload could then sign in as a person; people and workloads need issuers of their own", w.Name, w.Issuer)
		}
	}
	return nil
}

// discoverIssuers fetches each issuer's discovery document once at start,
// so that a typo or an unreachable provider shows in the log at once. A
// failure does not stop Caddy: the verifiers retry on later calls and
// refuse tokens with issuer_unavailable meanwhile (fail closed), and a
// provider that comes back is used without a reload.
func (a *App) discoverIssuers(ctx context.Context) {
	for _, v := range a.issuers() {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := v.Discover(dctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			a.logger.Warn("identity provider not reachable; its tokens are refused until it is",
				zap.String("issuer", v.Issuer()), zap.Error(err))
		}
	}
}

func (a *App) goRun(f func()) {
	a.running.Add(1)
	go func() {
		defer a.running.Done()
		f()
	}()
}

// Stop ends the background work, flushing usage records first. It runs
// before Caddy releases the store.
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
		a.running.Wait()
	}
	// Last, so that what the stopped work published is still delivered.
	if a.webhooks != nil {
		a.webhooks.Stop()
	}
	return nil
}

// Cleanup releases the caches and this config's hold on the runtime.
func (a *App) Cleanup() error {
	if a.node != nil {
		a.node.FlushBrake()
	}
	if a.rt != nil {
		a.rt.detach(a)
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
