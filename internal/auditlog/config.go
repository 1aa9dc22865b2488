package auditlog

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/caddy-tokengate/internal/duration"
)

// Config is the audit file's options as an operator writes them: the JSON
// of the log writer caddy.logging.writers.tokengate_audit, which embeds
// it.
type Config struct {
	// The audit file. Placeholders such as {env.*} are replaced.
	Filename string `json:"filename"`
	// The Ed25519 key signing checkpoints: the base64 of a 32-byte seed,
	// or a signed-note private key, usually {env.TOKENGATE_AUDIT_KEY}.
	// Default: a key generated once in Caddy's data dir
	// (tokengate/audit.key, mode 0600).
	SigningKey string `json:"signing_key,omitempty"`
	// How often a checkpoint is signed while lines are added; default
	// 1s. One is also signed every 1000 lines.
	CheckpointEvery duration.Duration `json:"checkpoint_every,omitempty"`
	// Rolling, as Caddy's file writer: on by default, at 100 MiB,
	// keeping 10 files for 90 days. Rolled files stay uncompressed so
	// that verify reads them. The size is in bytes (Caddy's writer
	// rounds it up to whole MiB).
	Roll          *bool `json:"roll,omitempty"`
	RollSize      int64 `json:"roll_size,omitempty"`
	RollKeep      int   `json:"roll_keep,omitempty"`
	RollKeepDays  int   `json:"roll_keep_days,omitempty"`
	RollLocalTime bool  `json:"roll_local_time,omitempty"`
}

// Options is what Open takes to write the file c names: checkpoints
// signed with key, each reported to onCheckpoint. Rolling is on unless c
// turns it off, with Caddy's defaults for what c leaves unset.
func (c Config) Options(key *Key, onCheckpoint func(Checkpoint, error)) Options {
	roll := Roll{LocalTime: c.RollLocalTime}
	if c.Roll == nil || *c.Roll {
		roll = Roll{
			Size: c.RollSize, Keep: c.RollKeep, KeepFor: time.Duration(c.RollKeepDays) * 24 * time.Hour,
			LocalTime: c.RollLocalTime,
		}.OrDefaults()
	}
	return Options{
		Path:            c.Filename,
		Key:             key,
		CheckpointEvery: time.Duration(c.CheckpointEvery),
		Roll:            roll,
		OnCheckpoint:    onCheckpoint,
	}
}

// ParseCheckpointEvery reads checkpoint_every as an operator writes it
// ("250ms", "1m"): a positive duration.
func ParseCheckpointEvery(s string) (time.Duration, error) {
	d, err := duration.Parse(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("checkpoint_every must be a positive duration, got %q", s)
	}
	return d, nil
}

// LogCheckpoint logs a signed checkpoint for witnesses on witnesses, the
// logger named CheckpointLogger. When err says one could not be written,
// it logs that on errs instead: the next checkpoint covers its lines.
func LogCheckpoint(witnesses, errs *zap.Logger, c Checkpoint, err error) {
	if err != nil {
		errs.Error("audit checkpoint not written; the next one covers its lines", zap.Error(err))
		return
	}
	witnesses.Info(CheckpointMsg,
		zap.Int("schema", c.Schema),
		zap.String("file", c.File),
		zap.Int64("tree_size", c.TreeSize),
		zap.Int64("from", c.From),
		zap.String("checkpoint", c.Note),
	)
}
