package auditlog

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestSharedOpensOnceClosesLast holds one file from two holders, as two
// loaded configs do across a reload: the Writer is opened by the first,
// stays open while either holds it, is closed (its lines covered by a
// checkpoint) by the last, and a later holder opens it again, continuing
// the same tree.
func TestSharedOpensOnceClosesLast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	var files Files
	f := files.For(path)
	if files.For(path) != f || files.For(path+".other") == f {
		t.Fatal("For does not give one Shared per path")
	}
	opened := 0
	open := func() (*Writer, error) {
		opened++
		return Open(Options{Path: path, Key: key, CheckpointEvery: time.Hour})
	}
	write := func(line string) error {
		_, err := f.Write([]byte(line + "\n"))
		return err
	}

	for range 2 {
		if err := f.Acquire(open); err != nil {
			t.Fatal(err)
		}
	}
	if opened != 1 {
		t.Fatalf("opened %d times for two holders, want once", opened)
	}
	if err := write(`{"n":1}`); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if err := write(`{"n":2}`); err != nil {
		t.Fatalf("write with one holder left: %v", err)
	}
	if err := f.Close(); err != nil || write(`{"n":3}`) != nil {
		t.Fatal("Close closed the file while it is held")
	}
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if err := write(`{"n":4}`); !errors.Is(err, ErrReleased) {
		t.Fatalf("write after the last release: %v, want ErrReleased", err)
	}
	if res := mustVerify(t, key, []string{path}); res.Lines != 3 {
		t.Fatalf("verified %d lines after the last release, want 3", res.Lines)
	}

	if err := f.Acquire(open); err != nil {
		t.Fatal(err)
	}
	if err := write(`{"n":5}`); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if opened != 2 {
		t.Fatalf("opened %d times, want again for the holder after the last release", opened)
	}
	if res := mustVerify(t, key, []string{path}); res.Lines != 4 {
		t.Fatalf("verified %d lines, want 4 in one tree", res.Lines)
	}
}

func TestRollOptions(t *testing.T) {
	if got := (Roll{}).OrDefaults(); got != (Roll{Size: 100 << 20, Keep: 10, KeepFor: 90 * 24 * time.Hour}) {
		t.Errorf("defaults: %+v", got)
	}
	set := Roll{Size: 1 << 20, Keep: 2, KeepFor: time.Hour, LocalTime: true}
	if got := set.OrDefaults(); got != set {
		t.Errorf("OrDefaults changed options set: %+v", got)
	}
	for s, want := range map[string]int64{"64KiB": 64 << 10, "1MB": 1_000_000, "100MiB": 100 << 20} {
		if got, err := ParseRollSize(s); err != nil || got != want {
			t.Errorf("ParseRollSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"0", "-1", "lots", "9EiB"} {
		if _, err := ParseRollSize(s); err == nil {
			t.Errorf("ParseRollSize(%q) accepted", s)
		}
	}
	if n, err := ParseRollKeep("3"); err != nil || n != 3 {
		t.Errorf("ParseRollKeep(3) = %d, %v", n, err)
	}
	for _, s := range []string{"-1", "many", ""} {
		if _, err := ParseRollKeep(s); err == nil {
			t.Errorf("ParseRollKeep(%q) accepted", s)
		}
	}
	for d, want := range map[time.Duration]int{0: 0, time.Minute: 1, 24 * time.Hour: 1, 25 * time.Hour: 2, 48 * time.Hour: 2} {
		if got, err := RollKeepDays(d); err != nil || got != want {
			t.Errorf("RollKeepDays(%s) = %d, %v; want %d", d, got, err, want)
		}
	}
	if _, err := RollKeepDays(-time.Hour); err == nil {
		t.Error("RollKeepDays accepted a negative duration")
	}
	for s, want := range map[string]int{"48h": 2, "25h": 2, "90d": 90, "1.5d": 2, "0s": 0} {
		if got, err := ParseRollKeepFor(s); err != nil || got != want {
			t.Errorf("ParseRollKeepFor(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for s, msg := range map[string]string{
		"soon": `roll_keep_for must be a duration, got "soon"`,
		"-1h":  `roll_keep_for must be a duration, got -1h0m0s`,
	} {
		if _, err := ParseRollKeepFor(s); err == nil || err.Error() != msg {
			t.Errorf("ParseRollKeepFor(%q): %v, want %s", s, err, msg)
		}
	}
	if d, err := ParseCheckpointEvery("250ms"); err != nil || d != 250*time.Millisecond {
		t.Errorf("ParseCheckpointEvery(250ms) = %s, %v", d, err)
	}
	if d, err := ParseCheckpointEvery("1d"); err != nil || d != 24*time.Hour {
		t.Errorf("ParseCheckpointEvery(1d) = %s, %v", d, err)
	}
	for _, s := range []string{"0s", "-1s", "soon", ""} {
		want := fmt.Sprintf("checkpoint_every must be a positive duration, got %q", s)
		if _, err := ParseCheckpointEvery(s); err == nil || err.Error() != want {
			t.Errorf("ParseCheckpointEvery(%q): %v, want %s", s, err, want)
		}
	}
}

// TestLoadKey takes the key set, or the one kept in the data dir, the same
// one on every load.
func TestLoadKey(t *testing.T) {
	set := testKey(t, 7)
	// A malformed setting is refused, not replaced by the kept key.
	if _, err := LoadKey("PRIVATE+KEY+", t.TempDir()); err == nil {
		t.Fatal("LoadKey accepted a malformed key")
	}
	dir := t.TempDir()
	first, err := LoadKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadKey("", dir)
	if err != nil || again.Vkey != first.Vkey {
		t.Fatalf("the kept key changed between loads: %v", err)
	}
	if first.Vkey == set.Vkey {
		t.Fatal("the generated key is the test key")
	}
	seed := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=" // 32 bytes of 7, as testKey(t, 7)
	got, err := LoadKey(seed, dir)
	if err != nil || got.Vkey != set.Vkey {
		t.Fatalf("LoadKey of a set seed: %v, %v", got, err)
	}
}
