package policy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"

	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// Default bounds on a bundle. Real tokengate bundles are kilobytes; the
// bounds are there so that a bundle nobody has verified yet (signatures
// are checked after it is unpacked) cannot take the gateway's memory: a
// gzip bomb of a megabyte inflates to gigabytes.
const (
	DefaultMaxBundleBytes             = 16 << 20
	DefaultMaxBundleUncompressedBytes = 64 << 20
)

// sizeLimits are a bundle's bounds, compressed (as read from the file or
// the wire) and uncompressed (the tar archive gzip holds).
type sizeLimits struct {
	compressed, uncompressed int64
}

// readBounded reads a gzipped bundle from r, refusing it as soon as it
// passes the compressed bound, then inflates it once into nothing,
// refusing it as soon as it passes the uncompressed bound: memory stays
// at the compressed bytes plus gzip's window, and OPA, which inflates the
// bundle again to unpack it, is given only what fits.
func (l sizeLimits) readBounded(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, l.compressed+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > l.compressed {
		return nil, fmt.Errorf("bundle is larger than max_bundle_bytes (%d bytes)", l.compressed)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("bundle is not gzip: %v", err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(gz, l.uncompressed+1))
	if err != nil {
		return nil, fmt.Errorf("bundle is not valid gzip: %v", err)
	}
	if n > l.uncompressed {
		return nil, fmt.Errorf("bundle inflates to more than max_bundle_uncompressed_bytes (%d bytes)", l.uncompressed)
	}
	return raw, nil
}

// boundedPlugin is the rest client's HTTP client for a bundle service:
// OPA's default client, whose transport hands OPA's downloader a bundle
// body only once readBounded accepted it. OPA's downloader inflates the
// body as it reads it, with a bound per file only; this puts the bounds
// in front of it, on the public extension point OPA's rest client offers.
type boundedPlugin struct{ limits sizeLimits }

func (p boundedPlugin) NewClient(c rest.Config) (*http.Client, error) {
	tlsConfig, err := rest.DefaultTLSConfig(c)
	if err != nil {
		return nil, err
	}
	hc := rest.DefaultRoundTripperClient(tlsConfig, *c.ResponseHeaderTimeoutSeconds)
	hc.Transport = boundedTransport{next: hc.Transport, limits: p.limits}
	return hc, nil
}

func (boundedPlugin) Prepare(*http.Request) error { return nil }

type boundedTransport struct {
	next   http.RoundTripper
	limits sizeLimits
}

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	raw, err := t.limits.readBounded(resp.Body)
	if err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	return resp, nil
}
