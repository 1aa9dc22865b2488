package node

import (
	"errors"
	"strings"
	"testing"
)

// expandEnv stands in for the server's replacer: {env.NAME} is looked up
// in env, any other placeholder is unknown, and an open brace that does
// not close is an error.
func expandEnv(env map[string]string) Expand {
	return func(value string, errOnEmpty, errOnUnknown bool) (string, error) {
		var out strings.Builder
		for {
			open := strings.IndexByte(value, '{')
			if open < 0 {
				out.WriteString(value)
				return out.String(), nil
			}
			end := strings.IndexByte(value[open:], '}')
			if end < 0 {
				return "", errors.New("unclosed placeholder")
			}
			name := value[open+1 : open+end]
			v := env[strings.TrimPrefix(name, "env.")]
			if !strings.HasPrefix(name, "env.") {
				if errOnUnknown {
					return "", errors.New("unrecognized placeholder {" + name + "}")
				}
			} else if v == "" && errOnEmpty {
				return "", errors.New("evaluated placeholder {" + name + "} is empty")
			}
			out.WriteString(value[:open] + v)
			value = value[open+end+1:]
		}
	}
}

// TestResolvePeppers: a configured pepper is expanded; one that expands
// to nothing, to white space or through an unknown placeholder refuses to
// start with an error naming the option (and the empty placeholder) but
// never the value; no pepper is plain SHA-256; the previous pepper is
// checked the same way and must differ from the pepper.
func TestResolvePeppers(t *testing.T) {
	const secret = "pepper-9f2c-the-operator-keeps-secret"
	expand := expandEnv(map[string]string{"PEPPER": secret, "OLD": "old-" + secret, "SAME": secret, "BLANK": " \t\n"})

	if p, prev, err := ResolvePeppers("", "", expand); err != nil || p != "" || prev != "" {
		t.Errorf("no pepper: %q %q %v, want plain SHA-256", p, prev, err)
	}
	if p, prev, err := ResolvePeppers("{env.PEPPER}", "{env.OLD}", expand); err != nil || p != secret || prev != "old-"+secret {
		t.Errorf("peppers from the environment: %q %q %v", p, prev, err)
	}
	if p, _, err := ResolvePeppers("literal-"+secret, "", expand); err != nil || p != "literal-"+secret {
		t.Errorf("literal pepper: %q %v", p, err)
	}

	for _, c := range []struct{ pepper, previous, want string }{
		{"{env.UNSET}", "", "tokengate: pepper is configured but resolves to an empty value (evaluated placeholder {env.UNSET} is empty); set it, or remove the pepper option to hash with plain SHA-256"},
		{"{env.BLANK}", "", "tokengate: pepper is configured but resolves to an empty value (only white space); set it, or remove the pepper option to hash with plain SHA-256"},
		{"{evn.PEPPER}", "", "tokengate: pepper has a placeholder Caddy does not know or does not close, such as a misspelt {env.NAME}; write literal braces as \\{ and \\}"},
		{"{env.PEPPER", "", "tokengate: pepper has a placeholder Caddy does not know"},
		{"{env.PEPPER}", "{env.UNSET}", "tokengate: previous_pepper is configured but resolves to an empty value (evaluated placeholder {env.UNSET} is empty); set it, or remove the previous_pepper option once no token is keyed under it"},
		{"{env.PEPPER}", "{env.SAME}", "tokengate: previous_pepper is the same as pepper; set pepper to the new value, or remove previous_pepper"},
	} {
		_, _, err := ResolvePeppers(c.pepper, c.previous, expand)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("pepper %q, previous %q: %v, want %q", c.pepper, c.previous, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the pepper: %v", err)
		}
	}
}
