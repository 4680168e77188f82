package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/cms-pcl/spyagency/internal/redact"
)

// looksSecret says whether a key that the configuration does not know was probably meant to carry a
// secret inline. Keys ending in _file or _env name where a secret is, which is the allowed way.
func looksSecret(key string) bool {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_env") {
		return false
	}
	for _, w := range []string{"password", "passwd", "secret", "token", "apikey", "api_key", "credential", "private_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// secretHint says which keys to use instead of an inline secret, naming this block's own *_file and
// *_env keys when it has them.
func secretHint(key string, fields map[string]int) string {
	for _, base := range []string{key, "token", "password"} {
		_, f := fields[base+"_file"]
		_, e := fields[base+"_env"]
		if f && e {
			return fmt.Sprintf("put it in a file named by %s_file or in an environment variable named by %s_env", base, base)
		}
	}
	return "put it in a file or an environment variable and name that with a *_file or *_env key"
}

// urlPassword says whether a URL or DSN carries a password in its user information.
func urlPassword(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return false
	}
	_, has := u.User.Password()
	return has
}

// readSecret reads a secret from the file (first) or the environment variable named; "" when neither is
// configured. lookupEnv is os.LookupEnv outside tests.
func readSecret(what, file, env string, lookupEnv func(string) (string, bool)) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: reading secret: %w", what, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s: secret file %s is empty", what, file)
		}
		return s, nil
	}
	if env != "" {
		if lookupEnv == nil {
			lookupEnv = os.LookupEnv
		}
		s, ok := lookupEnv(env)
		if !ok || strings.TrimSpace(s) == "" {
			return "", fmt.Errorf("%s: environment variable %s is not set", what, env)
		}
		return strings.TrimSpace(s), nil
	}
	return "", nil
}

// Token returns the source's token from TokenFile or TokenEnv, "" when neither is set. lookupEnv is
// os.LookupEnv when nil.
func (s Source) Token(lookupEnv func(string) (string, bool)) (string, error) {
	return readSecret("token", s.TokenFile, s.TokenEnv, lookupEnv)
}

// ConnString returns the DSN with the password from PasswordFile or PasswordEnv put in (PostgreSQL), so
// that the password is never in the file. lookupEnv is os.LookupEnv when nil.
func (s Store) ConnString(lookupEnv func(string) (string, bool)) (string, error) {
	pw, err := readSecret("store password", s.PasswordFile, s.PasswordEnv, lookupEnv)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return s.DSN, nil
	}
	if !isPostgres(s.DSN) {
		return "", errors.New("store: a password is configured but the DSN is not a postgres:// URL")
	}
	u, err := url.Parse(s.DSN)
	if err != nil {
		return "", fmt.Errorf("store: bad DSN: %w", err)
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw)
	return u.String(), nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Redacted is a copy of the configuration safe to print: any password left in a URL is masked. The
// file cannot hold secrets, but a DSN given on the command line might.
func (c *Config) Redacted() *Config {
	r := *c
	r.Store.DSN = redact.URL(r.Store.DSN)
	for _, s := range r.Sources.list() {
		s.src.URL = redact.URL(s.src.URL)
		s.src.DSN = redact.URL(s.src.DSN)
	}
	r.Server.PublicURL = redact.URL(r.Server.PublicURL)
	return &r
}

// Secret reads a webhook target's shared secret from its file or environment variable.
func (t PushTarget) Secret(lookupEnv func(string) (string, bool)) ([]byte, error) {
	s, err := readSecret("steering target "+t.Name, t.SecretFile, t.SecretEnv, lookupEnv)
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, fmt.Errorf("steering target %s: no secret configured", t.Name)
	}
	return []byte(s), nil
}

// ConnString is an sql target's DSN with its password, if one is configured, put in.
func (t PushTarget) ConnString(lookupEnv func(string) (string, bool)) (string, error) {
	return Store{DSN: t.DSN, PasswordFile: t.PasswordFile, PasswordEnv: t.PasswordEnv}.ConnString(lookupEnv)
}
