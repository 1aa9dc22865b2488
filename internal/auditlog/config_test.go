package auditlog

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// TestConfigJSON reads the writer's options under the names the Caddy
// config has always used for them.
func TestConfigJSON(t *testing.T) {
	var c Config
	err := json.Unmarshal([]byte(`{"filename":"/var/log/audit.log","signing_key":"{env.K}","checkpoint_every":"1d",
		"roll":false,"roll_size":65536,"roll_keep":3,"roll_keep_days":2,"roll_local_time":true}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Filename != "/var/log/audit.log" || c.SigningKey != "{env.K}" || c.CheckpointEvery != duration.Duration(24*time.Hour) ||
		c.Roll == nil || *c.Roll || c.RollSize != 65536 || c.RollKeep != 3 || c.RollKeepDays != 2 || !c.RollLocalTime {
		t.Fatalf("read %+v", c)
	}
}

func TestConfigOptions(t *testing.T) {
	key := testKey(t, 1)
	on, off := true, false
	cases := map[string]struct {
		c    Config
		want Roll
	}{
		"defaults": {Config{}, Roll{Size: 100 << 20, Keep: 10, KeepFor: 90 * 24 * time.Hour}},
		"set": {Config{RollSize: 4096, RollKeep: 3, RollKeepDays: 2, RollLocalTime: true},
			Roll{Size: 4096, Keep: 3, KeepFor: 48 * time.Hour, LocalTime: true}},
		"roll on":  {Config{Roll: &on, RollKeep: 1}, Roll{Size: 100 << 20, Keep: 1, KeepFor: 90 * 24 * time.Hour}},
		"roll off": {Config{Roll: &off, RollSize: 4096, RollLocalTime: true}, Roll{LocalTime: true}},
	}
	for name, tc := range cases {
		tc.c.Filename, tc.c.CheckpointEvery = "/var/log/audit.log", duration.Duration(250*time.Millisecond)
		got := tc.c.Options(key, nil)
		if got.Path != "/var/log/audit.log" || got.Key != key || got.CheckpointEvery != 250*time.Millisecond || got.Roll != tc.want {
			t.Errorf("%s: options %+v, roll want %+v", name, got, tc.want)
		}
	}
	reported := false
	Config{}.Options(key, func(Checkpoint, error) { reported = true }).OnCheckpoint(Checkpoint{}, nil)
	if !reported {
		t.Error("OnCheckpoint is not the one given")
	}
}

func TestLogCheckpoint(t *testing.T) {
	witnessCore, witnessed := observer.New(zapcore.InfoLevel)
	errCore, errs := observer.New(zapcore.InfoLevel)
	witnesses, errLog := zap.New(witnessCore), zap.New(errCore)

	LogCheckpoint(witnesses, errLog, Checkpoint{Schema: 2, File: "/var/log/audit.log", TreeSize: 12, From: 10, Note: "signed note"}, nil)
	if got := witnessed.AllUntimed(); len(got) != 1 || got[0].Message != CheckpointMsg || errs.Len() != 0 {
		t.Fatalf("witnessed %v, errors %v", got, errs.AllUntimed())
	} else {
		want := map[string]any{"schema": int64(2), "file": "/var/log/audit.log", "tree_size": int64(12), "from": int64(10), "checkpoint": "signed note"}
		fields := got[0].ContextMap()
		if len(fields) != len(want) {
			t.Errorf("fields %v, want %v", fields, want)
		}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("field %s = %v (%T), want %v", k, fields[k], fields[k], v)
			}
		}
	}

	LogCheckpoint(witnesses, errLog, Checkpoint{}, errors.New("disk full"))
	if witnessed.Len() != 1 {
		t.Error("a checkpoint not written was logged for witnesses")
	}
	if got := errs.AllUntimed(); len(got) != 1 || got[0].Level != zapcore.ErrorLevel ||
		got[0].Message != "audit checkpoint not written; the next one covers its lines" || got[0].ContextMap()["error"] != "disk full" {
		t.Errorf("errors %v", got)
	}
}
