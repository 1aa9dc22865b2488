package node

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// Expand expands the placeholders of a configured value, as the server's
// replacer does: with errOnUnknown it fails on a placeholder it does not
// know or that does not close; with errOnEmpty it fails, naming the
// placeholder, on one that expands to nothing.
type Expand func(value string, errOnEmpty, errOnUnknown bool) (string, error)

// ResolvePeppers resolves the pepper and, while a rotation is under way,
// the previous one, expanding their placeholders with expand. The two must
// differ: the same pepper twice would make the fallback lookup a second
// copy of the first, and most likely means the new pepper was never put in
// place.
func ResolvePeppers(configured, previous string, expand Expand) (pepper, previousPepper string, err error) {
	if pepper, err = resolvePepper("pepper", configured, expand); err != nil {
		return "", "", err
	}
	if previousPepper, err = resolvePepper("previous_pepper", previous, expand); err != nil {
		return "", "", err
	}
	if previousPepper != "" && subtle.ConstantTimeCompare([]byte(pepper), []byte(previousPepper)) == 1 {
		return "", "", errors.New("tokengate: previous_pepper is the same as pepper; set pepper to the new value, or remove previous_pepper")
	}
	return pepper, previousPepper, nil
}

// resolvePepper expands the placeholders of the configured pepper (option
// names the option in errors: pepper or previous_pepper). No pepper
// configured means plain SHA-256. A configured one that expands to nothing
// (an unset variable, a missing file) is an error: falling back to plain
// SHA-256 would make this node hash differently from its peers and turn
// every token unknown, or silently drop the protection the operator asked
// for. The errors never contain the pepper, only placeholder names.
func resolvePepper(option, configured string, expand Expand) (string, error) {
	if configured == "" {
		return "", nil
	}
	if _, err := expand(configured, false, true); err != nil {
		// Not echoed: the unknown "placeholder" may be part of a literal
		// pepper.
		return "", fmt.Errorf("tokengate: %s has a placeholder Caddy does not know or does not close, such as a misspelt {env.NAME}; write literal braces as \\{ and \\}", option)
	}
	pepper, err := expand(configured, true, false)
	if err != nil {
		// The error names the empty placeholder, such as {env.TOKENGATE_PEPPER}.
		return "", fmt.Errorf("tokengate: %s is configured but resolves to an empty value (%v); set it, or remove the %s option%s", option, err, option, withoutIt[option])
	}
	if strings.TrimSpace(pepper) == "" {
		return "", fmt.Errorf("tokengate: %s is configured but resolves to an empty value (only white space); set it, or remove the %s option%s", option, option, withoutIt[option])
	}
	return pepper, nil
}

// withoutIt ends the empty-value errors: what removing each option means.
var withoutIt = map[string]string{
	"pepper":          " to hash with plain SHA-256",
	"previous_pepper": " once no token is keyed under it",
}

// tokenRekeyed records that the gateway moved a token from the previous
// pepper's hash to the current one's: the operator watches these lines and
// tokengate_tokens_rekeyed_total (OnRekey) to judge when previous_pepper
// can go.
func (p *Parts) tokenRekeyed(tokenID string) {
	if p.opts.OnRekey != nil {
		p.opts.OnRekey(tokenID)
	}
	p.opts.Logger.Info("token re-keyed under the current pepper", zap.String("token_id", tokenID))
}
