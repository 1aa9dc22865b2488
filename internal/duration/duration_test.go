package duration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestUnmarshalJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"12h"`:         12 * time.Hour,
		`"300ms"`:       300 * time.Millisecond,
		`"1d"`:          24 * time.Hour,
		`"1.5d"`:        36 * time.Hour,
		`"2d6h"`:        54 * time.Hour,
		`"1h1d"`:        25 * time.Hour,
		`"-1d"`:         -24 * time.Hour,
		`3600000000000`: time.Hour,
		`0`:             0,
	} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v, want %v", in, time.Duration(d), err, want)
		}
	}
	for _, in := range []string{`"soon"`, `"d"`, `"1x"`, `""`, `1.5`, `true`, `"` + strings.Repeat("0", 1023) + `1h"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%q accepted as %v", in, time.Duration(d))
		}
	}
}

func TestMarshalJSONWritesNanoseconds(t *testing.T) {
	b, err := json.Marshal(struct {
		D Duration `json:"d"`
	}{Duration(250 * time.Millisecond)})
	if err != nil || string(b) != `{"d":250000000}` {
		t.Fatalf("%s %v", b, err)
	}
	var back struct {
		D Duration `json:"d"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.D != Duration(250*time.Millisecond) {
		t.Fatalf("read back %v %v", time.Duration(back.D), err)
	}
}
