package auditlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func testKey(t testing.TB, seed byte) *Key {
	k, err := ParseKey(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifier(t testing.TB, k *Key) note.Verifier {
	v, err := note.NewVerifier(k.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// witness collects the checkpoints a writer reports, as a log pipeline
// would ship them, and writes them to a file.
type witness struct {
	mu    sync.Mutex
	lines [][]byte
}

func (w *witness) hear(c Checkpoint, err error) {
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(c)
	w.mu.Lock()
	w.lines = append(w.lines, b)
	w.mu.Unlock()
}

func (w *witness) file(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "witness.jsonl")
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := os.WriteFile(path, append(bytes.Join(w.lines, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openTest(t *testing.T, path string, opts Options) (*Writer, *witness) {
	wit := new(witness)
	opts.Path = path
	if opts.Key == nil {
		opts.Key = testKey(t, 1)
	}
	opts.OnCheckpoint = wit.hear
	opts.CheckpointEvery = 1 << 62 // tests sign by MaxLines and Checkpoint
	w, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, wit
}

func writeLines(t *testing.T, w *Writer, tag string, n int) {
	t.Helper()
	for i := range n {
		line := fmt.Sprintf(`{"level":"info","logger":"tokengate.audit","msg":"decision","path":"/%s/%d"}`+"\n", tag, i)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, key *Key, files []string, extra ...string) (*Result, error) {
	t.Helper()
	cps := append([]string{files[len(files)-1] + ".checkpoints"}, extra...)
	return Verify(files, cps, verifier(t, key))
}

func mustVerify(t *testing.T, key *Key, files []string, extra ...string) *Result {
	t.Helper()
	res, err := verify(t, key, files, extra...)
	if err != nil {
		t.Fatalf("verify %v: %v", files, err)
	}
	return res
}

func expectFailure(t *testing.T, err error, want string) {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) && !isShort(err) {
		t.Fatalf("got %v, want a verification failure saying %q", err, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("failure %q does not say %q", err, want)
	}
}

func TestVerifyIntact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, _ := openTest(t, path, Options{})
	writeLines(t, w, "a", 2500)
	w.Checkpoint()
	res := mustVerify(t, testKey(t, 1), []string{path})
	if res.Lines != 2500 || res.Checkpoints != 3 {
		t.Fatalf("verified %+v, want 2500 lines and checkpoints at 1000, 2000, 2500", res)
	}
}

// editLines rewrites the lines of path with edit.
func editLines(t *testing.T, path string, edit func(lines [][]byte) [][]byte) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	lines = edit(lines)
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	forged := []byte(`{"level":"info","logger":"tokengate.audit","msg":"decision","path":"/forged"}`)
	for _, c := range []struct {
		name string
		edit func([][]byte) [][]byte
		want string
	}{
		{"flipped byte", func(l [][]byte) [][]byte { l[1499][40] ^= 1; return l }, "audit.log line 1500: changed"},
		{"removed line", func(l [][]byte) [][]byte { return append(l[:1499:1499], l[1500:]...) }, "audit.log line 1500: the line signed before it was removed"},
		{"swapped lines", func(l [][]byte) [][]byte { l[1499], l[1500] = l[1500], l[1499]; return l }, "audit.log line 1500: reordered"},
		{"inserted line", func(l [][]byte) [][]byte { return append(l[:1499:1499], append([][]byte{forged}, l[1499:]...)...) }, "audit.log line 1500: inserted"},
		{"appended line", func(l [][]byte) [][]byte { return append(l, forged) }, "audit.log line 2501: not covered by any checkpoint"},
		{"first line removed", func(l [][]byte) [][]byte { return l[1:] }, "audit.log line 1: the line signed before it was removed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w, _ := openTest(t, path, Options{})
			writeLines(t, w, "a", 2500)
			w.Checkpoint()
			editLines(t, path, c.edit)
			_, err := verify(t, testKey(t, 1), []string{path})
			expectFailure(t, err, c.want)
		})
	}
}

func TestVerifyWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, _ := openTest(t, path, Options{})
	writeLines(t, w, "a", 10)
	w.Checkpoint()
	_, err := verify(t, testKey(t, 2), []string{path})
	expectFailure(t, err, "does not verify with key tokengate-audit")
}

// TestVerifyCutTail cuts the newest lines and the checkpoints that cover
// them: the file and its own checkpoints agree again, and only a witness's
// copy of the checkpoints tells.
func TestVerifyCutTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, wit := openTest(t, path, Options{})
	writeLines(t, w, "a", 1500)
	w.Checkpoint()
	editLines(t, path, func(l [][]byte) [][]byte { return l[:1000] })
	editLines(t, path+".checkpoints", func(l [][]byte) [][]byte { return l[:1] })
	if res := mustVerify(t, testKey(t, 1), []string{path}); res.TreeSize != 1000 {
		t.Fatalf("cut file verified with %d lines", res.TreeSize)
	}
	_, err := verify(t, testKey(t, 1), []string{path}, wit.file(t))
	expectFailure(t, err, "the files end at line 1000 of the log, but checkpoint")
}

// TestWriterFollowsThePath takes the file away as rm, logrotate's create
// mode and copytruncate do: every line is still written at the path, and
// the files verify as one log.
func TestWriterFollowsThePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key})
	writeLines(t, w, "before", 10)

	// Moved away (logrotate create): lines go on into the moved file
	// until the writer next looks at it, then into a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "moved", 5)
	time.Sleep(10 * DefaultCheckEvery)
	writeLines(t, w, "moved-later", 5)
	// On a busy machine the timer that makes a look due may come late:
	// lines go on into the moved file until it has.
	written := 20
	inNewFile := func() int {
		b, _ := os.ReadFile(path) // none yet: 0
		return bytes.Count(b, []byte("\n"))
	}
	for deadline := time.Now().Add(5 * time.Second); inNewFile() < 2; time.Sleep(DefaultCheckEvery) {
		if time.Now().After(deadline) {
			t.Fatal("no line reached a new file at the path 5 s after the move")
		}
		writeLines(t, w, "moved-later", 1)
		written++
	}
	moved, now := countLines(t, path+".1"), countLines(t, path)
	if moved+now != written+1 || moved < 11 || now < 2 {
		t.Fatalf("moved file has %d lines and the new one %d, want %d lines and a continues line, the newest in the new file", moved, now, written)
	}
	w.Checkpoint()
	mustVerify(t, key, []string{path + ".1", path})

	// Copied and truncated in place.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".2", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "truncated", 5)
	w.Checkpoint()
	mustVerify(t, key, []string{path + ".1", path + ".2", path})

	// Deleted: the new file verifies on its own; with the files before
	// it, the deleted lines are missing.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "deleted", 5)
	w.Checkpoint()
	if n := countLines(t, path); n != 6 {
		t.Fatalf("file after rm has %d lines, want a continues line and 5", n)
	}
	if res := mustVerify(t, key, []string{path}); res.Lines != 5 || res.Before == 0 {
		t.Fatalf("file after rm: %+v", res)
	}
	_, err = verify(t, key, []string{path + ".1", path})
	expectFailure(t, err, "audit.log line 1: continues a log of")
}

func countLines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

func TestWriterRollsAndResumes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key, Roll: Roll{Size: 4000}})
	writeLines(t, w, "a", 200)
	rolled := RolledFiles(path)
	if len(rolled) < 3 {
		t.Fatalf("%d rolled files after 200 lines of 4000-byte files", len(rolled))
	}
	// Restarted: the tree goes on from the file's lines.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, _ = openTest(t, path, Options{Key: key, Roll: Roll{Size: 4000}})
	writeLines(t, w, "b", 30)
	w.Checkpoint()
	rolled = RolledFiles(path)
	res := mustVerify(t, key, append(rolled, path))
	if res.Checkpoints < 3 {
		t.Fatalf("%d checkpoints matched, want one per rolled file at least", res.Checkpoints)
	}
	if res.Lines != 230 {
		t.Fatalf("rolled files verified %d lines, want 230", res.Lines)
	}
	// A rolled file left out in the middle is noticed at the next one.
	_, err := verify(t, key, append(append([]string{}, rolled[0]), append(rolled[2:], path)...))
	expectFailure(t, err, filepath.Base(rolled[2])+" line 1: continues a log of")
}

func TestWriterKeepsRolledFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, _ := openTest(t, path, Options{Roll: Roll{Size: 2000, Keep: 2}})
	writeLines(t, w, "a", 200)
	rolled := RolledFiles(path)
	if len(rolled) != 2 {
		t.Fatalf("%d rolled files kept, want 2", len(rolled))
	}
	// The newest ones, which go on into the current file.
	w.Checkpoint()
	mustVerify(t, testKey(t, 1), append(rolled, path), path+".checkpoints")
}

// TestWriterFailedWrite writes to a device that takes nothing: the write
// returns the error, and no half line stays behind in a real file.
func TestWriterFailedWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	w, _ := openTest(t, path, Options{})
	if _, err := w.Write([]byte("{}\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to /dev/full: %v, want ENOSPC", err)
	}
}

// TestWriterKeepsLinesItCannotWrite puts a directory where the file was:
// writes fail, and their lines are written once a file can be made again.
func TestWriterKeepsLinesItCannotWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key})
	writeLines(t, w, "before", 3)
	w.Checkpoint() // the lines are in the file: a look found them there
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	// The first write once the timer says a look is due reaches the
	// deleted file, and the look finds the path taken: it fails, keeping
	// its line. A write before that (the timer late on a busy machine)
	// also reaches the deleted file, and the look keeps its line too.
	time.Sleep(2 * DefaultCheckEvery)
	held := 0
	hold := func() error {
		_, err := w.Write([]byte(fmt.Sprintf(`{"held":%d}`+"\n", held)))
		held++
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); hold() == nil; time.Sleep(DefaultCheckEvery / 2) {
		if time.Now().After(deadline) {
			t.Fatal("writes kept succeeding with a directory at the path")
		}
	}
	if hold() == nil {
		t.Fatal("a write succeeded after one had failed, with the directory still at the path")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "after", 1)
	w.Checkpoint()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != held+2 {
		t.Fatalf("file after the directory went: %q, want a continues line, the %d held lines and the next", lines, held)
	}
	for i := range held {
		if want := fmt.Sprintf(`{"held":%d}`, i); lines[1+i] != want {
			t.Fatalf("line %d of the file after the directory went is %q, want %q", 2+i, lines[1+i], want)
		}
	}
	mustVerify(t, key, []string{path})
}

// TestKeys reads both spellings of a signing key, many times over, since
// the base64 in a private key may hold the "+" that separates its fields.
func TestKeys(t *testing.T) {
	for i := range 200 {
		path := filepath.Join(t.TempDir(), "audit.key")
		k, err := LoadOrCreateKey(path)
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		again, err := LoadOrCreateKey(path)
		if err != nil || again.Vkey != k.Vkey {
			t.Fatalf("key %d read back: %v, %v", i, again, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v %v, want mode 0600", fi.Mode(), err)
		}
		if _, err := ReadVerifier(k.Vkey); err != nil {
			t.Fatal(err)
		}
	}
	seed := testKey(t, 7)
	if !strings.HasPrefix(seed.Vkey, KeyName+"+") || testKey(t, 7).Vkey != seed.Vkey {
		t.Fatalf("a seed gives %q, not the same tokengate-audit key each time", seed.Vkey)
	}
	if _, err := ParseKey("c2VjcmV0"); err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("a short seed: %v (must fail without quoting the key)", err)
	}
	path := filepath.Join(t.TempDir(), "open.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("a key file others can read was used")
	}
}

// TestWriterConcurrent writes from several goroutines while the timer
// signs checkpoints, as Caddy's loggers do: every line is a whole line,
// and the file verifies.
func TestWriterConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, err := Open(Options{Path: path, Key: key, CheckpointEvery: 5 * time.Millisecond, MaxLines: 300})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				if _, err := fmt.Fprintf(w, `{"g":%d,"i":%d}`+"\n", g, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if res := mustVerify(t, key, []string{path}); res.Lines != 2000 {
		t.Fatalf("verified %d lines, want 2000", res.Lines)
	}
}

// TestWriterResumesAfterCrash opens a file whose last line was cut short
// (a crash in the middle of a write): the fragment goes, the tree goes on
// from the whole lines, and the lines written before the crash but after
// the last checkpoint are covered by the next one.
func TestWriterResumesAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, err := Open(Options{Path: path, Key: key, CheckpointEvery: 1 << 62, MaxLines: 10})
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "a", 15) // a checkpoint at 10; 5 lines uncovered
	// A crash: no Close, no last checkpoint, half a line.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"level":"info","msg":"deci`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	w2, _ := openTest(t, path, Options{Key: key})
	writeLines(t, w2, "b", 3)
	w2.Checkpoint()
	if res := mustVerify(t, key, []string{path}); res.Lines != 18 {
		t.Fatalf("verified %d lines, want 18", res.Lines)
	}
	w.Close() // the first writer's goroutine; its file is the same
}

// linesOf returns the lines of path.
func linesOf(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// expectLines fails unless got holds, after a continues line, exactly
// the lines of these tags in this order, each once.
func expectLines(t *testing.T, got []string, tags map[string]int, order ...string) {
	t.Helper()
	var want []string
	for _, tag := range order {
		for i := range tags[tag] {
			want = append(want, fmt.Sprintf(`{"level":"info","logger":"tokengate.audit","msg":"decision","path":"/%s/%d"}`, tag, i))
		}
	}
	if len(got) == 0 || !strings.Contains(got[0], `"msg":"continues"`) {
		t.Fatalf("file does not start with a continues line: %q", got)
	}
	if strings.Join(got[1:], "\n") != strings.Join(want, "\n") {
		t.Fatalf("file after its continues line:\n%s\nwant:\n%s", strings.Join(got[1:], "\n"), strings.Join(want, "\n"))
	}
}

// TestWriterReplaysLinesBetweenLooks takes the file away between two
// looks at it, with lines written before and after: the lines a look has
// not yet found in place are written again where the path leads, each
// once, and the files verify as one log.
func TestWriterReplaysLinesBetweenLooks(t *testing.T) {
	key := testKey(t, 1)
	// Looks only when Checkpoint (or Close) asks for one.
	start := func(t *testing.T) (*Writer, string) {
		path := filepath.Join(t.TempDir(), "audit.log")
		w, _ := openTest(t, path, Options{Key: key, CheckEvery: 1 << 62})
		writeLines(t, w, "a", 5)
		w.Checkpoint() // a look: the a lines are leaves of this file
		writeLines(t, w, "b", 3)
		return w, path
	}
	tags := map[string]int{"b": 3, "c": 4, "d": 2}

	t.Run("rm", func(t *testing.T) {
		w, path := start(t)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, "c", 4) // into the deleted file
		w.Checkpoint()
		// The b lines were in the deleted file too, but no look had
		// found them there: they are written again, with the c lines.
		expectLines(t, linesOf(t, path), tags, "b", "c")
		res := mustVerify(t, key, []string{path})
		if res.StartSize != 5 || res.Lines != 7 {
			t.Fatalf("verified %+v, want 7 lines continuing the 5 of the deleted file", res)
		}
	})

	t.Run("moved", func(t *testing.T) {
		w, path := start(t)
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, "c", 4) // into the moved file, which keeps them
		w.Checkpoint()
		if n := countLines(t, path+".1"); n != 12 {
			t.Fatalf("moved file has %d lines, want 12", n)
		}
		writeLines(t, w, "d", 2)
		w.Checkpoint()
		expectLines(t, linesOf(t, path), tags, "d")
		if res := mustVerify(t, key, []string{path + ".1", path}); res.Lines != 14 {
			t.Fatalf("verified %d lines, want 14", res.Lines)
		}
	})

	t.Run("copytruncate", func(t *testing.T) {
		w, path := start(t)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".1", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, "c", 4) // into the emptied file
		w.Checkpoint()
		// The b lines went with the copy; the c lines stay, after a
		// continues line.
		expectLines(t, linesOf(t, path), tags, "c")
		if res := mustVerify(t, key, []string{path + ".1", path}); res.Lines != 12 {
			t.Fatalf("verified %d lines, want 12", res.Lines)
		}
	})

	// A look that finds the file deleted and cannot make a new one (a
	// directory took the path): the next Write fails, so the audit hold
	// hears of it, and every line is written once the path takes a file.
	t.Run("no file at the path", func(t *testing.T) {
		w, path := start(t)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, "c", 4)
		w.Checkpoint()
		if _, err := w.Write([]byte(`{"level":"info","logger":"tokengate.audit","msg":"decision","path":"/held/0"}` + "\n")); err == nil {
			t.Fatal("a write succeeded after a look found no file could be made at the path")
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		writeLines(t, w, "d", 2)
		w.Checkpoint()
		expectLines(t, linesOf(t, path), map[string]int{"b": 3, "c": 4, "held": 1, "d": 2}, "b", "c", "held", "d")
		mustVerify(t, key, []string{path})
	})
}

// TestWriterLooksWhenWritesStop deletes the file and writes two lines
// into it, then nothing more: the writer's own timer looks, and the lines
// reach a new file at the path without waiting for another write.
func TestWriterLooksWhenWritesStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key, CheckEvery: 5 * time.Millisecond})
	writeLines(t, w, "a", 3)
	w.Checkpoint()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeLines(t, w, "b", 2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.Count(b, []byte("\n")) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lines written into the deleted file never reached a new one")
		}
		time.Sleep(5 * time.Millisecond)
	}
	expectLines(t, linesOf(t, path), map[string]int{"b": 2}, "b")
}

// TestWriterLooksWhileWritesGoOn deletes the file while lines keep coming,
// a few a millisecond (far below the bytes that make Write look at once):
// the looks the timer paces find the file gone and the lines reach a new
// file at the path while writing goes on, and every line is in it once.
func TestWriterLooksWhileWritesGoOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	key := testKey(t, 1)
	w, _ := openTest(t, path, Options{Key: key, CheckEvery: 2 * time.Millisecond})
	writeLines(t, w, "a", 3)
	w.Checkpoint()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	written := 0
	for {
		line := fmt.Sprintf(`{"level":"info","logger":"tokengate.audit","msg":"decision","path":"/b/%d"}`+"\n", written)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		written++
		if written >= 20 {
			if n, err := os.ReadFile(path); err == nil && bytes.Count(n, []byte("\n")) > 1 {
				break // a continues line and lines: a look found the file gone
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines written over 5 s into a deleted file and none reached a new one", written)
		}
		time.Sleep(200 * time.Microsecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	expectLines(t, linesOf(t, path), map[string]int{"b": written}, "b")
	if res := mustVerify(t, key, []string{path}); res.Lines != int64(written) || res.StartSize != 3 {
		t.Fatalf("verified %+v, want %d lines after the 3 of the deleted file", res, written)
	}
}
