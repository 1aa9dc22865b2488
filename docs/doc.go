// Package docs holds tokengate's guides (the Markdown files beside this
// one) and the tests that keep them true: the Caddyfile reference against
// the parsers, every relative link and anchor, the README's length and
// set-up commands. It has no code to import.
package docs
