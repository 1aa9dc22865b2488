package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// DefaultBundleTimeout bounds one bundle download, from the request to the
// last byte, so a server that stalls cannot hold a poll forever.
const DefaultBundleTimeout = 30 * time.Second

// maxManifestRevision bounds the manifest revision carried into
// policy_rev, which every audit line and decision cache key holds.
const maxManifestRevision = 64

// verifyKeyID names the one configured key. Verification always uses it,
// whatever key id a bundle's signature claims, so a bundle cannot pick its
// own key.
const verifyKeyID = "tokengate"

// BundleOptions says how a bundle is checked and fetched.
type BundleOptions struct {
	// VerifyKey is the PEM public key (or certificate) signed bundles are
	// verified with, as `opa build --signing-key` signs them. With a key,
	// an unsigned bundle is refused; without one, a signed bundle is
	// refused, as its signature could not be checked.
	VerifyKey []byte
	// VerifyAlg is the signing algorithm, RS256 by default: one of the
	// RSA (RS*, PS*) or ECDSA (ES*) algorithms OPA signs with.
	VerifyAlg string
	// Timeout bounds one download; DefaultBundleTimeout when zero.
	Timeout time.Duration
	// MaxBytes bounds the bundle as read (gzipped), and
	// MaxUncompressedBytes what it inflates to; both are enforced while
	// reading, before the bundle is unpacked or its signature checked.
	// DefaultMaxBundleBytes and DefaultMaxBundleUncompressedBytes when
	// zero.
	MaxBytes, MaxUncompressedBytes int64
	// Fetched, when set, hears the outcome of every fetch of the bundle,
	// for the metrics: FetchOK (new bytes read), FetchUnchanged (a 304, or
	// the same bytes again) or FetchFailed (nothing read: the file or
	// service could not be read, or OPA's downloader refused the answer).
	Fetched func(result string)
}

// The outcomes BundleOptions.Fetched hears.
const (
	FetchOK        = "ok"
	FetchUnchanged = "unchanged"
	FetchFailed    = "failed"
)

// fetchError is a bundle that could not be fetched at all, as opposed to
// one that was fetched and then refused.
type fetchError struct{ error }

func (e fetchError) Unwrap() error { return e.error }

// IsFetchFailure reports whether err, from PollBundle's report, means the
// bundle could not be fetched (the policy in force was not challenged),
// rather than that a fetched bundle was refused.
func IsFetchFailure(err error) bool { return errors.As(err, new(fetchError)) }

// Bundle is an OPA bundle, as `opa build` writes it: a .tar.gz file, or
// the URL of a bundle service serving one. Remote bundles are downloaded
// with OPA's bundle downloader, so the service sees what OPA itself sends
// (If-None-Match with the last ETag, Prefer with the bundle modes) and a
// 304 costs no parse.
type Bundle struct {
	location string
	verify   *bundle.VerificationConfig
	timeout  time.Duration
	limits   sizeLimits
	fetched  func(result string)
	// downloader is nil for a file.
	downloader *download.Downloader
	updates    chan download.Update

	mu   sync.Mutex // one fetch at a time
	seen string     // content hash of the last bundle read
}

// IsBundleURL reports whether a policy location names a bundle service
// rather than a file or folder.
func IsBundleURL(location string) bool {
	return strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://")
}

// NewBundle checks the options and prepares location (a file path or an
// http(s) URL) for fetching. It fetches nothing yet.
func NewBundle(location string, o BundleOptions) (*Bundle, error) {
	b := &Bundle{location: location, timeout: o.Timeout, fetched: o.Fetched,
		limits: sizeLimits{compressed: o.MaxBytes, uncompressed: o.MaxUncompressedBytes}}
	if b.timeout <= 0 {
		b.timeout = DefaultBundleTimeout
	}
	if b.limits.compressed <= 0 {
		b.limits.compressed = DefaultMaxBundleBytes
	}
	if b.limits.uncompressed <= 0 {
		b.limits.uncompressed = DefaultMaxBundleUncompressedBytes
	}
	if len(o.VerifyKey) > 0 {
		var err error
		if b.verify, err = verification(o.VerifyKey, o.VerifyAlg); err != nil {
			return nil, err
		}
	} else if o.VerifyAlg != "" {
		return nil, errors.New("a verification algorithm was given without a verification key")
	}
	if IsBundleURL(location) {
		if err := b.remote(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// String is the location for logs: a URL's query (where a presigned URL
// keeps its signature) is left out.
func (b *Bundle) String() string {
	if u, err := url.Parse(b.location); err == nil && IsBundleURL(b.location) {
		u.RawQuery, u.ForceQuery = "", false
		return u.String()
	}
	return b.location
}

// verification builds OPA's verification config for one public key.
func verification(key []byte, alg string) (*bundle.VerificationConfig, error) {
	if alg == "" {
		alg = "RS256"
	}
	if !keys.IsSupportedAlgorithm(alg) {
		return nil, fmt.Errorf("unsupported bundle signing algorithm %q", alg)
	}
	if strings.HasPrefix(alg, "HS") {
		return nil, fmt.Errorf("bundle signing algorithm %s needs the signing secret on every gateway; sign with a key pair (RS256, PS256, ES256, ...)", alg)
	}
	block, _ := pem.Decode(key)
	if block == nil {
		return nil, errors.New("the verification key is not PEM")
	}
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		_, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		_, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		_, err = x509.ParseCertificate(block.Bytes)
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			// Never echo the block: it is a secret that should not be here.
			return nil, errors.New("the verification key is a private key; give the gateway only the public key")
		}
		return nil, fmt.Errorf("the verification key is a PEM %q block, want PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the verification key: %v", err)
	}
	kc := &keys.Config{Key: string(pem.EncodeToMemory(block)), Algorithm: alg}
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{verifyKeyID: kc}, verifyKeyID, "", nil), nil
}

// remote prepares OPA's downloader for a bundle URL. It runs in manual
// trigger mode: the poller (poll.go) decides when to fetch, so each fetch
// can carry its own deadline and stop with the Caddy config.
func (b *Bundle) remote() error {
	u, err := url.Parse(b.location)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bundle URL %q is not a URL with a host", b.String())
	}
	if u.User != nil {
		return errors.New("the bundle URL carries credentials: they would be logged with it")
	}
	path := strings.TrimPrefix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	secs := int64(math.Ceil(b.timeout.Seconds()))
	conf, err := json.Marshal(map[string]any{
		"url":                             u.Scheme + "://" + u.Host,
		"response_header_timeout_seconds": secs,
		"credentials":                     map[string]any{"plugin": boundedPluginName},
	})
	if err != nil {
		return err
	}
	bounded := boundedPlugin{limits: b.limits}
	client, err := rest.New(conf, nil, rest.Logger(logging.NewNoOpLogger()),
		rest.AuthPluginLookup(func(string) rest.HTTPAuthPlugin { return bounded }))
	if err != nil {
		return fmt.Errorf("bundle service %s: %v", b.String(), err)
	}
	trigger := plugins.TriggerManual
	dc := download.Config{Trigger: &trigger}
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return err
	}
	b.updates = make(chan download.Update, 1)
	b.downloader = download.New(dc, client, path).
		WithBundleVerificationConfig(b.verify).
		WithBundlePersistence(true). // keeps the raw bytes, for the content hash
		WithSizeLimitBytes(b.limits.uncompressed).
		WithBundleParserOpts(ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}).
		WithCallback(func(_ context.Context, u download.Update) error {
			b.updates <- u
			return nil
		})
	return nil
}

// fetch reads the bundle. It returns nil and no error when the bundle is
// unchanged: the server answered 304, or sent the same bytes again.
func (b *Bundle) fetch(ctx context.Context) (*loaded, error) {
	l, err := b.fetchOnce(ctx)
	if b.fetched != nil {
		switch {
		case errors.As(err, new(fetchError)):
			b.fetched(FetchFailed)
		case err == nil && l == nil:
			b.fetched(FetchUnchanged)
		default:
			b.fetched(FetchOK)
		}
	}
	return l, err
}

func (b *Bundle) fetchOnce(ctx context.Context) (*loaded, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if b.downloader == nil {
		raw, err := b.readFile()
		if err != nil {
			return nil, fetchError{fmt.Errorf("reading bundle: %v", err)}
		}
		return b.read(raw, func() (bundle.Bundle, error) {
			return bundle.NewReader(bytes.NewReader(raw)).
				WithSizeLimitBytes(b.limits.uncompressed).
				WithRegoVersion(ast.RegoV1).
				WithProcessAnnotations(true).
				WithBundleVerificationConfig(b.verify).
				Read()
		})
	}
	// Trigger can return on ctx before the download ends; the update
	// comes all the same (a cancelled request fails at once), and waiting
	// for it keeps one download at a time.
	_ = b.downloader.Trigger(ctx)
	u := <-b.updates
	if u.Error != nil {
		if ctx.Err() != nil {
			return nil, fetchError{fmt.Errorf("downloading bundle: no complete answer within %v", b.timeout)}
		}
		return nil, fetchError{fmt.Errorf("downloading bundle: %v", u.Error)}
	}
	if u.Bundle == nil {
		return nil, nil
	}
	raw, err := io.ReadAll(u.Raw)
	if err != nil {
		return nil, fetchError{fmt.Errorf("downloading bundle: %v", err)}
	}
	return b.read(raw, func() (bundle.Bundle, error) { return *u.Bundle, nil })
}

// boundedPluginName names, in the rest client's config, the HTTP client
// that bounds bundle sizes (boundedPlugin).
const boundedPluginName = "tokengate_bounded_bundle"

// readFile reads the bundle file within the size limits.
func (b *Bundle) readFile() ([]byte, error) {
	f, err := os.Open(b.location)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return b.limits.readBounded(f)
}

// read turns the bundle parse returns into what the engine compiles,
// unless raw is what was read last time.
func (b *Bundle) read(raw []byte, parse func() (bundle.Bundle, error)) (*loaded, error) {
	sum := sha256.Sum256(raw)
	hash := hex.EncodeToString(sum[:])[:12]
	if hash == b.seen {
		return nil, nil
	}
	b.seen = hash
	bb, err := parse()
	if err != nil {
		return nil, fmt.Errorf("reading bundle: %v", err)
	}
	return fromBundle(bb, hash)
}

// fromBundle takes what the engine needs from a bundle, refusing what it
// could not honour. Test files are left out, as they are from a folder,
// so a bundle and the folder it was built from compile the same.
func fromBundle(b bundle.Bundle, hash string) (*loaded, error) {
	if b.Type() == bundle.DeltaBundleType {
		return nil, errors.New("delta bundles are not supported: serve a snapshot bundle")
	}
	if len(b.WasmModules) > 0 || len(b.PlanModules) > 0 {
		return nil, errors.New("the bundle holds Wasm or plan modules, which tokengate does not evaluate: build it with the default target (rego)")
	}
	rev := b.Manifest.Revision
	if len(rev) > maxManifestRevision || strings.ContainsFunc(rev, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, fmt.Errorf("the manifest revision must be at most %d printable ASCII characters without spaces", maxManifestRevision)
	}
	if rev != "" {
		rev += "+"
	}
	l := &loaded{modules: map[string]*ast.Module{}, data: b.Data, revision: rev + hash}
	for _, m := range b.Modules {
		if IsPolicyFile(m.Path) {
			l.modules[m.Path] = m.Parsed
		}
	}
	return l, nil
}

// NewBundleEngine fetches the bundle and compiles it; it fails when the
// bundle cannot be fetched, verified or compiled. PollBundle keeps it
// current.
//
// The revision of a bundle's policy is the manifest's revision, a plus
// sign and the first 12 hex digits of a SHA-256 over the bundle file, so
// two builds that kept the manifest revision still differ:
// "2026-01-05.3+9f2c4a1b7e3d". Without a manifest revision it is the 12
// digits alone, shaped like a folder's revision.
func NewBundleEngine(ctx context.Context, b *Bundle, opts ...Option) (*Engine, error) {
	e := &Engine{}
	for _, o := range opts {
		o(e)
	}
	src, err := b.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := e.install(src); err != nil {
		return nil, err
	}
	return e, nil
}
