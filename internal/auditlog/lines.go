package auditlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The two kinds of line this package writes besides the audit lines
// themselves. Both are JSON objects shaped like the audit lines (level, ts,
// logger, msg, schema), so that a pipeline reading one reads all, and both
// are described in internal/audit/audit.schema.json.

// ContinuesMsg is the msg of the first line of a file that continues a
// tree begun in earlier files (rolled, or moved or deleted by someone
// else). It is not a leaf: it carries the tree's size and right edge, so
// that the file verifies on its own and after its predecessor.
const ContinuesMsg = "continues"

// CheckpointLogger and CheckpointMsg name a signed checkpoint, as appended
// to <file>.checkpoints and logged for witnesses.
const (
	CheckpointLogger = "tokengate.checkpoint"
	CheckpointMsg    = "checkpoint"
	auditLogger      = "tokengate.audit"
	schemaVersion    = 2
)

// prefixLen is how much of each leaf hash a checkpoint lists, to name the
// first line that differs. The signed root proves the lines; the prefixes
// only point at where they went wrong, so eight bytes is plenty.
const prefixLen = 8

type continuesLine struct {
	Level    string   `json:"level"`
	TS       float64  `json:"ts"`
	Logger   string   `json:"logger"`
	Msg      string   `json:"msg"`
	Schema   int      `json:"schema"`
	TreeSize int64    `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

func marshalContinues(t *tree, now time.Time) []byte {
	l := continuesLine{Level: "info", TS: unixSeconds(now), Logger: auditLogger, Msg: ContinuesMsg, Schema: schemaVersion, TreeSize: t.size, Hashes: make([]string, len(t.frontier))}
	for i, h := range t.frontier {
		l.Hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	b, _ := json.Marshal(l)
	return append(b, '\n')
}

// parseContinues returns the tree a continues line describes; ok is false
// for every other line. An audit line never has this msg, and the cheap
// test keeps verification at hashing speed.
func parseContinues(line []byte) (t tree, ok bool, err error) {
	if !bytes.Contains(line, []byte(`"msg":"`+ContinuesMsg+`"`)) {
		return tree{}, false, nil
	}
	var l continuesLine
	if err := json.Unmarshal(line, &l); err != nil || l.Logger != auditLogger || l.Msg != ContinuesMsg {
		return tree{}, false, nil
	}
	t.size = l.TreeSize
	for _, s := range l.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return tree{}, true, errors.New("continues line with a malformed hash")
		}
		t.frontier = append(t.frontier, tlog.Hash(b))
	}
	if !validFrontier(t.size, t.frontier) {
		return tree{}, true, fmt.Errorf("continues line: %d hashes cannot describe a tree of %d lines", len(t.frontier), t.size)
	}
	return t, true, nil
}

// Checkpoint is one signed checkpoint and the leaf hash prefixes of the
// lines it adds to the previous one.
type Checkpoint struct {
	Level    string  `json:"level"`
	TS       float64 `json:"ts"`
	Logger   string  `json:"logger"`
	Msg      string  `json:"msg"`
	Schema   int     `json:"schema"`
	File     string  `json:"file"`
	TreeSize int64   `json:"tree_size"`
	// From is the tree size of the checkpoint before, for Leaves.
	From int64 `json:"from"`
	// Leaves holds the first bytes of the hashes of lines From+1 ..
	// TreeSize, base64. Only the .checkpoints file carries it.
	Leaves string `json:"leaves,omitempty"`
	// Note is the C2SP tlog-checkpoint as a signed note: origin, size,
	// root hash, a blank line, the signature.
	Note string `json:"checkpoint"`
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// signCheckpoint signs the checkpoint of t.
func signCheckpoint(t *tree, key *Key) (string, error) {
	root := t.root()
	text := fmt.Sprintf("%s\n%d\n%s\n", KeyName, t.size, base64.StdEncoding.EncodeToString(root[:]))
	msg, err := note.Sign(&note.Note{Text: text}, key.Signer)
	return string(msg), err
}

// openCheckpoint checks a checkpoint's signature and returns its size and
// root.
func openCheckpoint(signed string, v note.Verifier) (size int64, root tlog.Hash, err error) {
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		return 0, root, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != KeyName {
		return 0, root, errors.New("not a tokengate audit checkpoint")
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return 0, root, errors.New("checkpoint with a malformed tree size")
	}
	b, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(b) != tlog.HashSize {
		return 0, root, errors.New("checkpoint with a malformed root hash")
	}
	return size, tlog.Hash(b), nil
}
