// Package scan finds tokengate secrets in files and in git history,
// offline: a string is a secret when it passes the format's checksum
// (internal/token), which random text does once in four billion tries, so
// no regular expression and no lookup is needed to tell.
//
// The hot path is bytes.Index for the prefix "tg_" and, at each hit, a
// check of the 36 bytes after it; text without "tg_" costs one pass of
// bytes.Index, which is vectorised.
package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/tokengate/caddy-tokengate/internal/token"
)

// Finding is one secret found: where, never what (Secret stays in memory
// for whoever reports it, and is never printed).
type Finding struct {
	Path string
	Line int
	// Commit is the commit that added the line, for a finding in git
	// history; empty for a file on disk.
	Commit string
	Secret string
}

// Where is the finding's location as people read it: path:line, and the
// commit for history.
func (f Finding) Where() string {
	s := f.Path + ":" + strconv.Itoa(f.Line)
	if f.Commit != "" {
		s += " (commit " + f.Commit + ")"
	}
	return s
}

var prefix = []byte(token.Prefix)

// Secrets calls found for every secret in text, with its offset and the
// 1-based line it starts on.
func Secrets(text []byte, found func(offset, line int, secret string)) {
	line, counted := 1, 0 // text[:counted] has line-1 newlines
	for i := 0; ; {
		j := bytes.Index(text[i:], prefix)
		if j < 0 {
			return
		}
		at := i + j
		i = at + len(prefix)
		if at+token.SecretLen > len(text) {
			continue
		}
		candidate := text[at : at+token.SecretLen]
		if token.Check(string(candidate)) != nil {
			continue
		}
		line += bytes.Count(text[counted:at], []byte{'\n'})
		counted = at
		found(at, line, string(candidate))
	}
}

// chunkSize is how much of a file is read at once; overlap carries the
// tail of one chunk into the next, so a secret across the boundary is
// found (and found once: only secrets starting before the tail count).
const (
	chunkSize = 4 << 20
	overlap   = token.SecretLen - 1
)

// Reader finds the secrets in r, named path in the findings.
func Reader(path string, r io.Reader, found func(Finding)) error {
	return readChunks(path, r, chunkSize, found)
}

func readChunks(path string, r io.Reader, size int, found func(Finding)) error {
	buf := make([]byte, size+overlap)
	carried, line := 0, 1
	for {
		n, err := io.ReadFull(r, buf[carried:])
		end := carried + n
		last := err != nil
		// Secrets starting in buf[:limit] are this chunk's; the ones
		// starting later are found again, whole, in the next chunk.
		limit := end
		if !last && end > overlap {
			limit = end - overlap
		}
		Secrets(buf[:end], func(offset, l int, secret string) {
			if offset < limit {
				found(Finding{Path: path, Line: line + l - 1, Secret: secret})
			}
		})
		if last {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
		line += bytes.Count(buf[:limit], []byte{'\n'})
		carried = copy(buf, buf[limit:end])
	}
}

// Files finds the secrets in every regular file under root (root itself
// when it is a file). Symbolic links are not followed, and .git folders
// are left to History.
func Files(root string, found func(Finding)) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return Reader(path, f, found)
	})
}

// IsRepository reports whether dir is the top of a git work tree or a
// bare repository, whose history History can read.
func IsRepository(dir string) bool {
	if info, err := os.Stat(filepath.Join(dir, ".git")); err == nil && (info.IsDir() || info.Mode().IsRegular()) {
		return true
	}
	_, err := os.Stat(filepath.Join(dir, "HEAD"))
	_, err2 := os.Stat(filepath.Join(dir, "objects"))
	return err == nil && err2 == nil
}

// History finds the secrets added by any commit of any ref of the
// repository at dir, by reading `git log -p --all` (the git command must
// be installed): every line a commit added, with its path and line number
// in that commit, so a secret deleted since is still found where it was
// added. Binary files are skipped, as git log shows no diff for them.
func History(dir string, found func(Finding)) error {
	cmd := exec.Command("git", "-C", dir, "log", "-p", "--all", "--no-color", "--no-ext-diff", "--no-textconv",
		"--format=commit %H", "--unified=0", "--diff-filter=AMRC")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running git log in %s: %v", dir, err)
	}
	parseErr := parseLog(dir, out, found)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git log in %s: %v: %s", dir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return parseErr
}

// parseLog reads `git log -p --format='commit %H' --unified=0`: commit
// lines, diff headers, hunk headers (@@ -a,b +c,d @@) that say where the
// added lines start, and the lines themselves.
func parseLog(dir string, r io.Reader, found func(Finding)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var commit, path string
	next := 0 // line number of the next added line in the file after the commit
	for sc.Scan() {
		l := sc.Bytes()
		switch {
		case bytes.HasPrefix(l, []byte("commit ")):
			commit, path = string(l[len("commit "):]), ""
		case bytes.HasPrefix(l, []byte("+++ ")):
			path = ""
			if p, ok := bytes.CutPrefix(l, []byte("+++ b/")); ok {
				path = filepath.Join(dir, string(p))
			}
		case bytes.HasPrefix(l, []byte("@@ ")):
			next = hunkStart(l)
		case len(l) > 0 && l[0] == '+' && path != "":
			added := l[1:]
			if bytes.Contains(added, prefix) {
				line := next
				Secrets(added, func(_, _ int, secret string) {
					found(Finding{Path: path, Line: line, Commit: commit, Secret: secret})
				})
			}
			next++
		}
	}
	return sc.Err()
}

// hunkStart reads c from a hunk header "@@ -a,b +c,d @@".
func hunkStart(l []byte) int {
	_, rest, ok := bytes.Cut(l, []byte(" +"))
	if !ok {
		return 0
	}
	end := bytes.IndexAny(rest, ", ")
	if end < 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(rest[:end]))
	return n
}
