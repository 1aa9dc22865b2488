// Package node assembles one gateway node's parts from plain option
// values and runs their background work: the policy engine, the gate and
// its caches, the token lifecycle, the management service, the identity
// verifiers and what the management API acts on. Shared is what outlives
// one config: the opened store, its change feed's follower and the
// forgetting of changed tokens in every config's caches. The Caddy app
// decodes its config, resolves what only Caddy knows (which configs share
// a store across reloads, the logger, the clock module, placeholders, the
// data folder, the metrics registry) and hands the values here; nothing in
// this package knows Caddy exists.
package node

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/audit"
	"github.com/tokengate/caddy-tokengate/internal/console"
	"github.com/tokengate/caddy-tokengate/internal/gateway"
	"github.com/tokengate/caddy-tokengate/internal/health"
	"github.com/tokengate/caddy-tokengate/internal/identity"
	"github.com/tokengate/caddy-tokengate/internal/leaks"
	"github.com/tokengate/caddy-tokengate/internal/lifecycle"
	"github.com/tokengate/caddy-tokengate/internal/manage"
	"github.com/tokengate/caddy-tokengate/internal/notify"
	"github.com/tokengate/caddy-tokengate/internal/policy"
	"github.com/tokengate/caddy-tokengate/internal/token"
	"github.com/tokengate/caddy-tokengate/policies"
	"github.com/tokengate/caddy-tokengate/store"
)

// Defaults for the options.
const (
	DefaultMaxTTL        = 720 * time.Hour
	DefaultDecisionCache = 100000
)

// Options are one node's settings and the hooks its parts call back
// through. Zero values take the defaults.
type Options struct {
	Logger *zap.Logger
	Now    func() time.Time
	// Store is the opened token store (shared with the other configs of
	// this process that name the same data).
	Store store.Backend

	// PolicyDir is a folder of .rego policies (watched for changes), an
	// OPA bundle file or URL (polled, with the options of PolicyBundle),
	// or empty for the policies built into the binary.
	PolicyDir    string
	PolicyBundle *policy.BundleConfig
	// OnPolicyReload hears whether each change of the policy was put in
	// force; OnBundleFetch the result of each fetch of a bundle.
	OnPolicyReload func(ok bool)
	OnBundleFetch  func(result string)

	// MaxTTL caps any token's lifetime. Default DefaultMaxTTL.
	MaxTTL time.Duration
	// DecisionCacheSize is the number of decisions cached (0 disables
	// the cache). Default (nil) DefaultDecisionCache.
	DecisionCacheSize *int
	// ParseDuration reads a token's ttl as the config reads durations.
	ParseDuration func(string) (time.Duration, error)

	// Pepper and PreviousPepper are the resolved token-hash keys ("" for
	// plain SHA-256, and no rotation under way).
	Pepper, PreviousPepper string
	// OnRekey hears of each token moved from the previous pepper's hash
	// (the node logs it too).
	OnRekey func(tokenID string)

	// OIDC is the issuer people sign in with; Workloads the issuers of
	// CI and cluster workload tokens.
	OIDC      *identity.PersonConfig
	Workloads []identity.WorkloadConfig

	// AuditFailOpen lets allowed calls through, data plane and
	// management API alike, while audit lines cannot be written; without
	// it they are held (audit_unavailable).
	AuditFailOpen bool
	// Fresh, StaleReads and StoreTimeout bound how far behind the token
	// changes of other nodes the gate may answer from its caches (nil
	// Fresh: always current). ChangeLag is how far behind it may be, for
	// the gauge; nil reads 0.
	Fresh        func() bool
	ChangeLag    func() time.Duration
	StaleReads   bool
	StoreTimeout time.Duration
	// Forget drops a token changed on this node from every cache that
	// may hold it (the caches of every config on the same store).
	Forget func(*store.Token)
	// ObservePolicy and ObserveStore time the policy and store calls of
	// the request path.
	ObservePolicy func(time.Duration)
	ObserveStore  func(op string, d time.Duration)

	// Expand expands the placeholders ({env.NAME}) of the webhooks' and
	// the leak intake's URLs and secrets, as it does the peppers'
	// (ResolvePeppers); there a placeholder that is unknown or empty is
	// an error. Nil takes the values as written.
	Expand Expand
	// Webhooks receive signed events about requests and revocations;
	// OnWebhookOutcome hears how each delivery ended.
	Webhooks         []notify.HookConfig
	OnWebhookOutcome func(result string)
	// Leaks sets up the intake of secrets found in the wild; ClientAddr
	// reads a request's client address for its brake.
	Leaks      *leaks.Config
	ClientAddr func(*http.Request) string
	// Console sets up the web console (served when OIDC is set).
	Console *console.Settings
}

// Parts are one node's assembled parts.
type Parts struct {
	Store     store.Backend
	Audit     *audit.Logger
	Engine    *policy.Engine
	Gate      *gateway.Gate
	Lifecycle *lifecycle.Service
	Manage    *manage.Service
	// Hasher hashes secrets under the pepper; PreviousHasher under the
	// previous one, nil unless a rotation is under way.
	Hasher, PreviousHasher *token.Hasher
	People                 *identity.Verifier  // nil without oidc
	Workloads              *identity.Workloads // nil without workload issuers
	Webhooks               *notify.Dispatcher  // nil without webhooks
	Leaks                  *leaks.Intake

	opts       Options
	bundle     *policy.Bundle // nil unless the policy is an OPA bundle
	work       *work
	storeProbe health.StoreProbe
}

// Assemble builds the parts. It contacts nothing (validation assembles
// too, and needs no network): the identity providers are asked at Start.
func Assemble(ctx context.Context, o Options) (*Parts, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	cacheSize := DefaultDecisionCache
	if o.DecisionCacheSize != nil {
		cacheSize = *o.DecisionCacheSize
	}
	o.DecisionCacheSize = &cacheSize
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.Expand == nil {
		o.Expand = func(s string, _, _ bool) (string, error) { return s, nil }
	}
	p := &Parts{Store: o.Store, Audit: audit.New(o.Logger.Named("audit")), opts: o}
	if err := p.identity(ctx, o); err != nil {
		return nil, err
	}
	var err error
	if p.bundle, err = policy.OpenBundle(o.PolicyDir, o.PolicyBundle, o.OnBundleFetch); err != nil {
		return nil, err
	}
	if p.Engine, err = p.newEngine(ctx); err != nil {
		return nil, fmt.Errorf("loading policy from %s: %v", p.PolicySource(), err)
	}
	p.Hasher = token.NewHasher(o.Pepper)
	if o.PreviousPepper != "" {
		p.PreviousHasher = token.NewHasher(o.PreviousPepper)
	}
	p.Gate, err = gateway.New(gateway.Options{
		Store:             o.Store,
		Policy:            p.Engine,
		Hasher:            p.Hasher,
		PreviousHasher:    p.PreviousHasher,
		OnRekey:           p.tokenRekeyed,
		DecisionCacheSize: cacheSize,
		Now:               o.Now,
		Hold:              p.auditHold,
		OnStoreError: func(err error) {
			o.Logger.Error("recording token usage", zap.Error(err))
		},
		ObservePolicy: o.ObservePolicy,
		ObserveStore:  o.ObserveStore,
		Fresh:         o.Fresh,
		StaleReads:    o.StaleReads,
		StoreTimeout:  o.StoreTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("building caches: %v", err)
	}
	p.Lifecycle = &lifecycle.Service{
		Store:         o.Store,
		Hasher:        p.Hasher,
		MaxTTL:        o.MaxTTL,
		Forget:        o.Forget,
		Now:           o.Now,
		ParseDuration: o.ParseDuration,
	}
	if !p.Engine.Has(policy.AdminQuery) {
		o.Logger.Warn("the policy has no package tokengate.admin: every management action will be refused until one is added",
			zap.String("policy", p.PolicySource()))
	}
	p.Manage = &manage.Service{Tokens: p.Lifecycle, Requests: o.Store, Policy: p.Engine, Audit: p.Audit, Now: o.Now}
	if err := p.assembleServices(o); err != nil {
		return nil, err
	}
	return p, nil
}

// LogReady says in the log that the node is ready and how it is set up;
// the adapter calls it once the whole config is provisioned.
func (p *Parts) LogReady() {
	o := p.opts
	o.Logger.Info("tokengate ready",
		zap.String("policy", p.PolicySource()),
		zap.String("policy_rev", p.Engine.Revision()),
		zap.Int("decision_cache", *o.DecisionCacheSize),
		zap.Duration("max_ttl", o.MaxTTL),
		zap.Bool("pepper", o.Pepper != ""),
		zap.Bool("previous_pepper", o.PreviousPepper != ""))
}

// newEngine compiles the policy: the bundle, the folder or the built-in
// policies. Their print() output goes to logger tokengate.policy.
func (p *Parts) newEngine(ctx context.Context) (*policy.Engine, error) {
	o := p.opts
	printer := policy.WithPrintLogger(o.Logger.Named("policy"))
	if p.bundle != nil {
		return policy.NewBundleEngine(ctx, p.bundle, printer)
	}
	var source fs.FS = policies.FS
	if o.PolicyDir != "" {
		source = os.DirFS(o.PolicyDir)
	}
	return policy.NewEngine(source, printer)
}

// PolicySource names where the policy comes from, for the log.
func (p *Parts) PolicySource() string {
	switch {
	case p.bundle != nil:
		return p.bundle.String()
	case p.opts.PolicyDir == "":
		return "built-in policies"
	}
	return p.opts.PolicyDir
}

// Check refuses settings that cannot make a node. The adapter asks before
// it opens the store, so that a config with a wrong value opens nothing;
// Assemble asks again.
func (o *Options) Check() error {
	if o.DecisionCacheSize != nil && *o.DecisionCacheSize < 0 {
		return fmt.Errorf("decision_cache must be 0 or more, got %d", *o.DecisionCacheSize)
	}
	return separateIssuers(o.OIDC, o.Workloads)
}

// identity builds the verifiers of the oidc and workload issuers.
func (p *Parts) identity(ctx context.Context, o Options) error {
	now := identity.WithClock(o.Now)
	if o.OIDC != nil {
		v, err := identity.NewPerson(ctx, *o.OIDC, now)
		if err != nil {
			return fmt.Errorf("oidc: %v", err)
		}
		p.People = v
	}
	if len(o.Workloads) > 0 {
		w, err := identity.NewWorkloads(ctx, o.Workloads, now)
		if err != nil {
			return err
		}
		p.Workloads = w
	}
	return nil
}

// separateIssuers refuses an oidc issuer that is also a workload issuer.
// Workload tokens carry the audience their job asked for, so a job could
// ask for the people's client id and sign in to the management API as a
// person named by its subject.
func separateIssuers(people *identity.PersonConfig, workloads []identity.WorkloadConfig) error {
	if people == nil {
		return nil
	}
	issuer := strings.TrimSuffix(people.Issuer, "/")
	for _, w := range workloads {
		if strings.EqualFold(strings.TrimSuffix(w.Issuer, "/"), issuer) {
			return fmt.Errorf("oidc and workload %s name the same issuer %s: a workload could then sign in as a person; people and workloads need issuers of their own", w.Name, w.Issuer)
		}
	}
	return nil
}
