package auditlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// Roll are the rolling options, as Caddy's file writer names them. A
// rolled file keeps its lines uncompressed, so that verify reads it as is.
type Roll struct {
	// Size is the size in bytes past which the file is rolled; 0 never.
	Size int64
	// Keep is how many rolled files stay; 0 keeps all.
	Keep int
	// KeepFor is how long rolled files stay; 0 keeps them.
	KeepFor time.Duration
	// LocalTime names rolled files in local time rather than UTC.
	LocalTime bool
}

// OrDefaults is r with the defaults of Caddy's file writer in place of its
// zero fields: rolled at 100 MiB, 10 files kept for 90 days.
func (r Roll) OrDefaults() Roll {
	if r.Size <= 0 {
		r.Size = 100 << 20
	}
	if r.Keep == 0 {
		r.Keep = 10
	}
	if r.KeepFor == 0 {
		r.KeepFor = 90 * 24 * time.Hour
	}
	return r
}

// The rolling options as an operator writes them (roll_size, roll_keep,
// roll_keep_for), checked here so that the Caddyfile parser only reads
// them.

// ParseRollSize reads a size such as "100MiB" or "50MB", in bytes.
func ParseRollSize(s string) (int64, error) {
	size, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("parsing roll_size: %v", err)
	}
	if size == 0 || size > 1<<62 {
		return 0, fmt.Errorf("roll_size must be more than 0, got %q", s)
	}
	return int64(size), nil
}

// ParseRollKeep reads how many rolled files to keep.
func ParseRollKeep(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("roll_keep must be a count, got %q", s)
	}
	return n, nil
}

// RollKeepDays is how long to keep rolled files in whole days, as Caddy's
// writer counts it, rounded up.
func RollKeepDays(d time.Duration) (int, error) {
	if d < 0 {
		return 0, fmt.Errorf("roll_keep_for must be a duration, got %s", d)
	}
	return int((d + 24*time.Hour - 1) / (24 * time.Hour)), nil
}

// ParseRollKeepFor reads how long to keep rolled files, such as "48h" or
// "90d", in whole days as RollKeepDays counts them.
func ParseRollKeepFor(s string) (int, error) {
	d, err := duration.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("roll_keep_for must be a duration, got %q", s)
	}
	return RollKeepDays(d)
}

// backupTime is the time in a rolled file's name, as lumberjack and
// Caddy's writer spell it, so the names sort in the order of the files.
const backupTime = "2006-01-02T15-04-05.000"

func (w *Writer) rollDue(n int) bool {
	size := w.opts.Roll.Size
	return size > 0 && w.offset > 0 && w.offset+int64(n) > size && w.fi.Mode().IsRegular()
}

// roll signs a checkpoint so that the full file ends covered, moves it to
// its rolled name and opens a new file, which starts with a continues
// line. A failed rename keeps the file: rolling saves space, it does not
// decide whether a line is recorded.
func (w *Writer) roll() {
	w.sign()                                       // reported after the write, with the lock released
	now := w.opts.Now().Truncate(time.Millisecond) // as the name has it
	if !w.opts.Roll.LocalTime {
		now = now.UTC()
	}
	// Names sort in the order of the files, which verify takes: a roll
	// in the same millisecond as the last (or after the clock went back)
	// takes the next millisecond after it.
	if rolled := RolledFiles(w.opts.Path); len(rolled) > 0 {
		if last, ok := w.rolledAt(rolled[len(rolled)-1], now.Location()); ok && !now.After(last) {
			now = last.Add(time.Millisecond)
		}
	}
	if err := os.Rename(w.opts.Path, w.backupName(now)); err != nil {
		return
	}
	w.f.Close()
	w.f = nil
	w.prune(now)
}

func (w *Writer) backupName(t time.Time) string {
	dir, name := filepath.Split(w.opts.Path)
	ext := filepath.Ext(name)
	return filepath.Join(dir, strings.TrimSuffix(name, ext)+"-"+t.Format(backupTime)+ext)
}

// RolledFiles lists the rolled files of path, oldest first.
func RolledFiles(path string) []string {
	dir, name := filepath.Split(path)
	ext := filepath.Ext(name)
	prefix, suffix := strings.TrimSuffix(name, ext)+"-", ext
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		stamp := strings.TrimSuffix(strings.TrimPrefix(n, prefix), suffix)
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) || len(stamp) != len(backupTime) {
			continue
		}
		if _, err := time.Parse(backupTime, stamp); err != nil {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out
}

// rolledAt is the time in a rolled file's name.
func (w *Writer) rolledAt(file string, loc *time.Location) (time.Time, bool) {
	dir, name := filepath.Split(w.opts.Path)
	ext := filepath.Ext(name)
	prefix := filepath.Join(dir, strings.TrimSuffix(name, ext)+"-")
	t, err := time.ParseInLocation(backupTime, strings.TrimSuffix(strings.TrimPrefix(file, prefix), ext), loc)
	return t, err == nil
}

// prune removes rolled files beyond Keep and older than KeepFor.
func (w *Writer) prune(now time.Time) {
	files := RolledFiles(w.opts.Path)
	for i, f := range files {
		t, _ := w.rolledAt(f, now.Location())
		tooMany := w.opts.Roll.Keep > 0 && len(files)-i > w.opts.Roll.Keep
		tooOld := w.opts.Roll.KeepFor > 0 && now.Sub(t) > w.opts.Roll.KeepFor
		if tooMany || tooOld {
			_ = os.Remove(f)
		}
	}
}
