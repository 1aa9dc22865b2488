package breakglass

import (
	"errors"
	"testing"
	"time"
)

func TestRecoveryNeedsTheCodeAfterTheDelay(t *testing.T) {
	var d Desk
	t0 := time.Unix(1_800_000_000, 0)
	r, code, err := d.Start(t0, "alice", "bob", "lost")
	if err != nil || code == "" || r.NotBefore != t0.Add(Delay) {
		t.Fatalf("Start: %+v %q %v", r, code, err)
	}
	if _, _, err := d.Start(t0.Add(time.Minute), "carol", "dave", "again"); !errors.Is(err, ErrPending) {
		t.Errorf("second Start while one is pending: %v", err)
	}
	if _, err := d.Confirm(t0.Add(Delay-time.Second), r.ID, code); !errors.Is(err, ErrTooEarly) {
		t.Errorf("Confirm before the delay: %v", err)
	}
	if _, err := d.Confirm(t0.Add(Delay), "bg_other", code); !errors.Is(err, ErrUnknown) {
		t.Errorf("Confirm of another id: %v", err)
	}
	if _, err := d.Confirm(t0.Add(Delay), r.ID, code+"x"); !errors.Is(err, ErrCode) {
		t.Errorf("Confirm with a wrong code: %v", err)
	}
	got, err := d.Confirm(t0.Add(Delay), r.ID, code)
	if err != nil || got.Requester != "alice" || got.Approver != "bob" || got.Reason != "lost" {
		t.Fatalf("Confirm: %+v %v", got, err)
	}
	if _, err := d.Confirm(t0.Add(Delay), r.ID, code); !errors.Is(err, ErrUnknown) {
		t.Errorf("a code works twice: %v", err)
	}
}

func TestThreeWrongCodesCancel(t *testing.T) {
	var d Desk
	t0 := time.Unix(1_800_000_000, 0)
	r, code, _ := d.Start(t0, "alice", "bob", "lost")
	for i := range maxTries {
		if _, err := d.Confirm(t0.Add(Delay), r.ID, "guess"); !errors.Is(err, ErrCode) {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if _, err := d.Confirm(t0.Add(Delay), r.ID, code); !errors.Is(err, ErrUnknown) {
		t.Errorf("the right code after %d wrong ones: %v, want the recovery cancelled", maxTries, err)
	}
	if _, _, err := d.Start(t0.Add(Delay), "alice", "bob", "again"); err != nil {
		t.Errorf("Start after a cancelled recovery: %v", err)
	}
}

func TestRecoveryExpires(t *testing.T) {
	var d Desk
	t0 := time.Unix(1_800_000_000, 0)
	r, code, _ := d.Start(t0, "alice", "bob", "lost")
	late := t0.Add(Delay + Window + time.Second)
	if _, err := d.Confirm(late, r.ID, code); !errors.Is(err, ErrExpired) {
		t.Errorf("Confirm after the window: %v", err)
	}
	if _, _, err := d.Start(late, "alice", "bob", "again"); err != nil {
		t.Errorf("Start after an expired recovery: %v", err)
	}
}
