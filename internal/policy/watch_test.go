package policy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// watched starts the real watcher on dir and returns a function that
// reports the reasons of a sample call under the policy in force.
func watched(t *testing.T, dir string) (*Engine, func() []string) {
	t.Helper()
	e, err := NewEngine(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := e.Watch(ctx, dir, func(string, error) {}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return e, func() []string {
		return decide(t, e, sampleToken(now), Request{Method: "GET"}, "billing", now).Reasons
	}
}

// waitFor polls until reasons() is want, for at most 10 seconds.
func waitFor(t *testing.T, what string, reasons func() []string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(reasons(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: reasons still %v, want %v", what, reasons(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openPolicy refuses nothing, in the partial-set form that other files
// can add reasons to.
const openPolicy = "package tokengate.gateway\nreasons contains \"never\" if input.now < 0\n"

func deny(code string) string {
	return "package tokengate.gateway\nreasons contains \"" + code + "\"\n"
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestWatchFollowsSubFolders(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "gateway.rego", openPolicy)
	mkdir(t, filepath.Join(dir, "rules"))
	writePolicy(t, dir, "rules/extra.rego", openPolicy)
	_, reasons := watched(t, dir)
	waitFor(t, "start", reasons)

	writePolicy(t, dir, "rules/extra.rego", deny("sub_folder_edit"))
	waitFor(t, "an edit in a sub-folder", reasons, "sub_folder_edit")

	// A folder created after the watch began is watched too.
	mkdir(t, filepath.Join(dir, "team/billing"))
	writePolicy(t, dir, "team/billing/data.json", `{"blocked": true}`)
	writePolicy(t, dir, "team/billing/block.rego", "package tokengate.gateway\nreasons contains \"blocked\" if data.team.billing.blocked\n")
	waitFor(t, "a new sub-folder", reasons, "blocked", "sub_folder_edit")
	writePolicy(t, dir, "team/billing/data.json", `{"blocked": false}`)
	waitFor(t, "a data edit in the new sub-folder", reasons, "sub_folder_edit")
}

// `mv new policies`: the folder is replaced by another one; the watcher
// follows to the new folder, and keeps following edits there.
func TestWatchFollowsAReplacedFolder(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "policies")
	mkdir(t, dir)
	writePolicy(t, dir, "gateway.rego", openPolicy)
	_, reasons := watched(t, dir)

	next := filepath.Join(parent, "policies.new")
	mkdir(t, filepath.Join(next, "sub"))
	writePolicy(t, next, "gateway.rego", deny("replaced"))
	writePolicy(t, next, "sub/more.rego", openPolicy)
	if err := os.Rename(dir, filepath.Join(parent, "policies.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replaced folder", reasons, "replaced")

	writePolicy(t, dir, "sub/more.rego", deny("edited_after"))
	waitFor(t, "an edit in the new folder", reasons, "edited_after", "replaced")
	// The old folder, still on disk, no longer counts.
	writePolicy(t, filepath.Join(parent, "policies.old"), "gateway.rego", deny("old"))
	writePolicy(t, dir, "gateway.rego", openPolicy)
	waitFor(t, "an edit after an edit of the old folder", reasons, "edited_after")
}

// A Kubernetes ConfigMap mount: every file is a symlink through ..data
// to a hidden, timestamped folder, and an update swaps ..data atomically.
// Each file loads once, and the swap reloads.
func TestWatchFollowsAConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, gateway, data string) {
		mkdir(t, filepath.Join(dir, name, "tokengate"))
		writePolicy(t, dir, name+"/gateway.rego", gateway)
		writePolicy(t, dir, name+"/tokengate/data.json", data)
	}
	// A default rule loaded twice is a compile error, so this fails
	// unless each file loads once.
	gateway := "package tokengate.gateway\ndefault scope := \"none\"\nreasons contains data.tokengate.reason\n"
	version("..2026_12_01_10_00_00.1", gateway, `{"reason": "first"}`)
	for _, link := range [][2]string{
		{"..2026_12_01_10_00_00.1", "..data"},
		{"..data/gateway.rego", "gateway.rego"},
		{"..data/tokengate", "tokengate"},
	} {
		if err := os.Symlink(link[0], filepath.Join(dir, link[1])); err != nil {
			t.Fatal(err)
		}
	}
	_, reasons := watched(t, dir)
	waitFor(t, "start", reasons, "first")

	// What the kubelet does: write the new version beside the old, point
	// a new link at it, rename that over ..data, remove the old version.
	version("..2026_12_01_10_05_00.2", gateway, `{"reason": "second"}`)
	if err := os.Symlink("..2026_12_01_10_05_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_12_01_10_00_00.1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ..data swap", reasons, "second")
}
