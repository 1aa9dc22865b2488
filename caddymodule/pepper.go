package caddymodule

import (
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// resolvePepper expands the placeholders of the configured pepper. No
// pepper configured means plain SHA-256. A configured one that expands to
// nothing (an unset variable, a missing file) is an error: falling back to
// plain SHA-256 would make this node hash differently from its peers and
// turn every token unknown, or silently drop the protection the operator
// asked for. The errors never contain the pepper, only placeholder names.
func resolvePepper(configured string) (string, error) {
	if configured == "" {
		return "", nil
	}
	repl := caddy.NewReplacer()
	if _, err := repl.ReplaceOrErr(configured, false, true); err != nil {
		// Not echoed: the unknown "placeholder" may be part of a literal
		// pepper.
		return "", errors.New("tokengate: pepper has a placeholder Caddy does not know or does not close, such as a misspelt {env.NAME}; write literal braces as \\{ and \\}")
	}
	pepper, err := repl.ReplaceOrErr(configured, true, false)
	if err != nil {
		// The error names the empty placeholder, such as {env.TOKENGATE_PEPPER}.
		return "", fmt.Errorf("tokengate: pepper is configured but resolves to an empty value (%v); set it, or remove the pepper option to hash with plain SHA-256", err)
	}
	if strings.TrimSpace(pepper) == "" {
		return "", errors.New("tokengate: pepper is configured but resolves to an empty value (only white space); set it, or remove the pepper option to hash with plain SHA-256")
	}
	return pepper, nil
}
