package console

import (
	"io/fs"
	"regexp"
	"testing"

	"github.com/tokengate/caddy-tokengate/policies"
)

// TestEveryPersonNeededCodeHasWords keeps the request page's explanations
// in step with the shipped admin policy: every code its person_needed rule
// can give has a sentence here (a missing one would show as a bare rule
// name), and no sentence is left for a code the policy no longer gives.
func TestEveryPersonNeededCodeHasWords(t *testing.T) {
	rule := regexp.MustCompile(`person_needed contains "([a-z_]+)"`)
	given := map[string]bool{}
	err := fs.WalkDir(policies.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(policies.FS, name)
		for _, m := range rule.FindAllSubmatch(src, -1) {
			given[string(m[1])] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(given) == 0 {
		t.Fatal("the shipped policies give no person_needed code: the pattern no longer matches them")
	}
	for code := range given {
		if _, ok := personNeededText[code]; !ok {
			t.Errorf("the admin policy gives person_needed %q, which the console has no words for", code)
		}
	}
	for code := range personNeededText {
		if !given[code] {
			t.Errorf("the console has words for person_needed %q, which the shipped policy never gives", code)
		}
	}
}
