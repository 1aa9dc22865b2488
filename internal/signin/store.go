// Package signin is the CLI's OpenID Connect sign-in: the authorization
// code flow with PKCE and a loopback redirect (RFC 8252), the device
// authorization grant (RFC 8628), the refresh of an expiring ID token and
// the file that keeps the tokens between runs. The ID token it gets is what
// the CLI sends to a management API as its bearer credential.
package signin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Session is one sign-in to one management API: the tokens the IdP issued
// and what is needed to refresh them.
type Session struct {
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	Scopes       []string  `json:"scopes,omitempty"`
	IDToken      string    `json:"id_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"` // the ID token's exp
	Subject      string    `json:"subject,omitempty"`
}

// file is what the credentials file holds, sessions keyed by API URL.
type file struct {
	Sessions map[string]Session `json:"sessions"`
}

// Store is the credentials file. It holds bearer credentials, so it is
// written with mode 0600 in a folder with mode 0700, atomically (a
// crash leaves the old file or the new one, never half of one), and it is
// not read when others may read it too.
type Store struct {
	Path string
}

// DefaultStore is the credentials file in the user's config folder:
// $XDG_CONFIG_HOME/tokengate/credentials.json on Linux,
// ~/Library/Application Support/tokengate/credentials.json on macOS,
// %AppData%\tokengate\credentials.json on Windows.
func DefaultStore() (*Store, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("finding the config folder for the sign-in: %v", err)
	}
	return &Store{Path: filepath.Join(dir, "tokengate", "credentials.json")}, nil
}

// Key is how an API URL is filed: scheme and host in lower case, no
// trailing slash, so that https://GW.example.com/ and
// https://gw.example.com name one sign-in.
func Key(api string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(api))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return "", fmt.Errorf("API URL %q is not an http(s) URL such as https://gw.example.com", api)
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	return u.String(), nil
}

// Load returns the session kept for api, and false when there is none.
func (s *Store) Load(api string) (Session, bool, error) {
	key, err := Key(api)
	if err != nil {
		return Session{}, false, err
	}
	f, err := s.read()
	if err != nil {
		return Session{}, false, err
	}
	sess, ok := f.Sessions[key]
	return sess, ok, nil
}

// Save keeps sess as the session for api, replacing any other.
func (s *Store) Save(api string, sess Session) error {
	key, err := Key(api)
	if err != nil {
		return err
	}
	f, err := s.read()
	if err != nil {
		return err
	}
	f.Sessions[key] = sess
	return s.write(f)
}

// Delete forgets the session for api; it reports whether there was one.
func (s *Store) Delete(api string) (Session, bool, error) {
	key, err := Key(api)
	if err != nil {
		return Session{}, false, err
	}
	f, err := s.read()
	if err != nil {
		return Session{}, false, err
	}
	sess, ok := f.Sessions[key]
	if !ok {
		return Session{}, false, nil
	}
	delete(f.Sessions, key)
	return sess, true, s.write(f)
}

func (s *Store) read() (file, error) {
	f := file{Sessions: map[string]Session{}}
	fh, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("reading the sign-in: %v", err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return f, fmt.Errorf("reading the sign-in: %v", err)
	}
	// Like ssh with a private key: tokens that others could read may have
	// been copied already, so they are not used, and the user hears why.
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return f, fmt.Errorf("%s is readable by other users (mode %04o); remove it and sign in again, or chmod 600 it", s.Path, info.Mode().Perm())
	}
	if err := json.NewDecoder(fh).Decode(&f); err != nil {
		return f, fmt.Errorf("reading the sign-in %s: %v (remove the file and sign in again)", s.Path, err)
	}
	if f.Sessions == nil {
		f.Sessions = map[string]Session{}
	}
	return f, nil
}

// write replaces the file: a temporary file beside it, written, synced and
// renamed over it, so that readers see the old file or the new one.
func (s *Store) write(f file) error {
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %v", dir, err)
	}
	// The folder is tokengate's own: keep it private even when it was
	// made by hand with the usual 0755.
	if err := os.Chmod(dir, 0o700); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("making %s private: %v", dir, err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.json")
	if err != nil {
		return fmt.Errorf("saving the sign-in: %v", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing left to remove
	// CreateTemp makes the file 0600 already; say so explicitly, since
	// nothing else keeps the tokens private.
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return fmt.Errorf("saving the sign-in: %v", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the sign-in: %v", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving the sign-in: %v", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving the sign-in: %v", err)
	}
	if err := os.Rename(tmp.Name(), s.Path); err != nil {
		return fmt.Errorf("saving the sign-in: %v", err)
	}
	return nil
}

// DeleteAll forgets every session and returns them, by API URL.
func (s *Store) DeleteAll() (map[string]Session, error) {
	f, err := s.read()
	if err != nil || len(f.Sessions) == 0 {
		return nil, err
	}
	gone := f.Sessions
	f.Sessions = map[string]Session{}
	return gone, s.write(f)
}
