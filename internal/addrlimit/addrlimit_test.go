package addrlimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLimitPerAddressAndWindow(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	l := New(3, time.Minute, c.now)
	for i := range 3 {
		if v, _ := l.Attempt("192.0.2.1"); !v.Allowed {
			t.Fatalf("attempt %d refused within the limit", i+1)
		}
	}
	v, _ := l.Attempt("192.0.2.1")
	if v.Allowed || !v.Audit || v.RetryAfter != time.Minute {
		t.Fatalf("first attempt past the limit: %+v, want refused, audited, retry after 60s", v)
	}
	c.t = c.t.Add(20*time.Second + time.Millisecond)
	for range 5 {
		if v, _ := l.Attempt("192.0.2.1"); v.Allowed || v.Audit || v.RetryAfter != 40*time.Second {
			t.Fatalf("later refusal: %+v, want refused, counted only, retry after 40s", v)
		}
	}
	if v, _ := l.Attempt("192.0.2.2"); !v.Allowed {
		t.Fatal("another address shares the budget")
	}

	// The window ends: the address may try again, and the five counted
	// refusals come back as one summary.
	c.t = c.t.Add(40 * time.Second)
	v, done := l.Attempt("192.0.2.1")
	if !v.Allowed {
		t.Fatalf("refused in a new window: %+v", v)
	}
	if len(done) != 1 || done[0].Addr != "192.0.2.1" || done[0].Refused != 5 || !done[0].To.Equal(done[0].From.Add(time.Minute)) {
		t.Fatalf("summaries %+v, want one for 192.0.2.1 counting 5", done)
	}
	if _, again := l.Attempt("192.0.2.1"); len(again) != 0 {
		t.Fatalf("summary given twice: %+v", again)
	}
}

func TestEndedWindowsOfSilentAddressesAreSummarised(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	l := New(1, time.Minute, c.now)
	for range 4 {
		l.Attempt("198.51.100.7")
	}
	c.t = c.t.Add(2 * time.Minute)
	_, done := l.Attempt("203.0.113.9")
	if len(done) != 1 || done[0].Addr != "198.51.100.7" || done[0].Refused != 2 {
		t.Fatalf("summaries %+v, want 198.51.100.7 with 2 counted refusals", done)
	}
	if len(l.windows) != 1 {
		t.Fatalf("%d windows kept, want only the new address's", len(l.windows))
	}
}

func TestFlushReportsOpenWindows(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	l := New(1, time.Hour, c.now)
	for range 3 {
		l.Attempt("192.0.2.1")
	}
	if done := l.Flush(); len(done) != 1 || done[0].Refused != 1 {
		t.Fatalf("flush %+v, want one summary counting 1", done)
	}
	if done := l.Flush(); len(done) != 0 {
		t.Fatalf("second flush %+v", done)
	}
}

func TestTableIsBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	l := New(5, time.Minute, c.now)
	l.maxAddrs = 10
	for i := range 10 {
		if v, _ := l.Attempt(fmt.Sprintf("192.0.2.%d", i)); !v.Allowed {
			t.Fatal("refused below the bound")
		}
	}
	if v, _ := l.Attempt("192.0.2.200"); v.Allowed {
		t.Fatal("a new address was let in with the table full")
	}
	c.t = c.t.Add(time.Minute)
	if v, _ := l.Attempt("192.0.2.200"); !v.Allowed {
		t.Fatal("the table was not freed once the windows ended")
	}
}

func TestKeyGroupsIPv6By64(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAttemptLimitOr(t *testing.T) {
	var none *AttemptLimit
	if n, w := none.Or(30, time.Minute); n != 30 || w != time.Minute {
		t.Errorf("nil limit: %d %s, want the defaults", n, w)
	}
	if n, w := (&AttemptLimit{Attempts: 5}).Or(30, time.Minute); n != 5 || w != time.Minute {
		t.Errorf("attempts only: %d %s", n, w)
	}
	if n, w := (&AttemptLimit{Attempts: 5, Window: duration.Duration(time.Hour)}).Or(30, time.Minute); n != 5 || w != time.Hour {
		t.Errorf("both set: %d %s", n, w)
	}
}
