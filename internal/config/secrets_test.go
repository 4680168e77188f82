package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestSourceToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := env(map[string]string{"TOK": "from-env"})
	for _, tc := range []struct {
		name    string
		src     Source
		want    string
		wantErr string
	}{
		{"none", Source{}, "", ""},
		{"file, trimmed", Source{TokenFile: file}, "s3cret", ""},
		{"file wins over env", Source{TokenFile: file, TokenEnv: "TOK"}, "s3cret", ""},
		{"env", Source{TokenEnv: "TOK"}, "from-env", ""},
		{"env unset", Source{TokenEnv: "NOPE"}, "", "NOPE is not set"},
		{"file missing", Source{TokenFile: filepath.Join(dir, "absent")}, "", "no such file"},
		{"file empty", Source{TokenFile: empty}, "", "is empty"},
	} {
		got, err := tc.src.Token(vars)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Token = %q, %v; want %q, error containing %q", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestStoreConnString(t *testing.T) {
	t.Parallel()
	vars := env(map[string]string{"PW": "p@ss word"})
	for _, tc := range []struct {
		name    string
		store   Store
		want    string
		wantErr bool
	}{
		{"sqlite untouched", Store{DSN: "sqlite:/tmp/a.db"}, "sqlite:/tmp/a.db", false},
		{"postgres without password", Store{DSN: "postgres://u@h:5432/db"}, "postgres://u@h:5432/db", false},
		{"password put in, escaped", Store{DSN: "postgres://u@h:5432/db?sslmode=require", PasswordEnv: "PW"},
			"postgres://u:p%40ss%20word@h:5432/db?sslmode=require", false},
		{"password for sqlite", Store{DSN: "sqlite:/tmp/a.db", PasswordEnv: "PW"}, "", true},
		{"password unset", Store{DSN: "postgres://u@h/db", PasswordEnv: "NOPE"}, "", true},
	} {
		got, err := tc.store.ConnString(vars)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: ConnString = %q, %v; want %q (error %v)", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Store.DSN = "postgres://u:hunter2@h/db"
	c.Sources.OMS.URL = "https://u:hunter3@cmsoms.cern.ch/"
	out := c.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, "hunter3") {
		t.Errorf("String shows a password:\n%s", out)
	}
	if c.Store.DSN != "postgres://u:hunter2@h/db" {
		t.Error("Redacted changed the original")
	}
	if !strings.Contains(out, "postgres://u:xxxxx@h/db") {
		t.Errorf("String lost the DSN:\n%s", out)
	}
}

func TestLooksSecret(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{
		"password": true, "client_secret": true, "token": true, "api_key": true, "DB_PASSWD": true,
		"token_file": false, "password_env": false, "url": false, "interval": false,
	} {
		if got := looksSecret(key); got != want {
			t.Errorf("looksSecret(%q) = %v, want %v", key, got, want)
		}
	}
}
