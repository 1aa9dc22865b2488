package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// loaded is what one read of a policy folder found.
type loaded struct {
	modules map[string]*ast.Module
	// data is the OPA data document the data files make together.
	data map[string]any
	// revision is the first 12 hex digits of a SHA-256 over the names and
	// contents of every file read.
	revision string
}

// load reads the policy files and data files under source with OPA's
// loader, so a data file lands where `opa eval -d` and `opa run` put it:
// tokengate/directory/data.json is data.tokengate.directory. withTests
// also loads the _test.rego files.
//
// Names starting with a dot are skipped, files and folders alike. That
// keeps editors' hidden files out, and it is what makes a Kubernetes
// ConfigMap mount load each file once: there every file is a symlink
// (gateway.rego -> ..data/gateway.rego) and the real copies sit in the
// hidden folders ..data and ..2026_01_02_..., which would otherwise load a
// second time and clash as duplicate rules.
func load(source fs.FS, withTests bool) (*loaded, error) {
	rec := &recordingFS{fsys: source, files: map[string][]byte{}}
	skip := func(_ string, info fs.FileInfo, depth int) bool {
		if depth == 0 {
			return false // the policy folder itself
		}
		name := info.Name()
		switch {
		case strings.HasPrefix(name, "."):
			return true
		case info.IsDir():
			return false
		case IsPolicyFile(name), isDataFile(name):
			return false
		default:
			return !(withTests && strings.HasSuffix(name, "_test.rego"))
		}
	}
	res, err := loader.NewFileLoader().
		WithFS(rec).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered([]string{"."}, skip)
	if err != nil {
		return nil, fmt.Errorf("loading policy files: %v", err)
	}
	return &loaded{modules: res.ParsedModules(), data: res.Documents, revision: rec.revision()}, nil
}

// isDataFile reports whether a file name is one the engine loads as OPA
// data: data.json or data.yaml, the names OPA bundles use.
func isDataFile(name string) bool {
	switch path.Base(name) {
	case "data.json", "data.yaml", "data.yml":
		return true
	}
	return false
}

// IsPolicyFile reports whether a file name is a policy the engine loads:
// a .rego file that is not a _test.rego file.
func IsPolicyFile(name string) bool {
	base := path.Base(name)
	return strings.HasSuffix(base, ".rego") && !strings.HasSuffix(base, "_test.rego")
}

// recordingFS keeps what the loader reads, so the revision covers exactly
// the files that made the policy, data files included.
type recordingFS struct {
	fsys  fs.FS
	files map[string][]byte
}

func (r *recordingFS) Open(name string) (fs.File, error)          { return r.fsys.Open(name) }
func (r *recordingFS) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(r.fsys, name) }
func (r *recordingFS) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(r.fsys, name) }

func (r *recordingFS) ReadFile(name string) ([]byte, error) {
	b, err := fs.ReadFile(r.fsys, name)
	if err == nil {
		r.files[name] = b
	}
	return b, err
}

func (r *recordingFS) revision() string {
	names := make([]string, 0, len(r.files))
	for name := range r.files {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(r.files[name]))
		h.Write(r.files[name])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
