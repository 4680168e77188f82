package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestMigrateTokensOutOfSettings: tokens made before migration 0008 (kept in the settings table as
// token/<hash> → JSON) move to the token table with their hash, scope, creation and expiry, so that
// every token in use keeps working; a second token of the same name keeps working under a new name.
func TestMigrateTokensOutOfSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spyagency.db")
	db := storeAtVersion(t, path, 5)
	for _, kv := range [][2]string{
		{"token/aa11", `{"name":"tier0-prod","scope":"steer","created":"2026-01-10T08:00:00.5Z","expires":"2026-02-09T08:00:00Z"}`},
		{"token/bb22", `{"name":"calib-shifter","scope":"operate","created":"2026-01-11T08:00:00Z"}`},
		{"token/cc33", `{"name":"calib-shifter","scope":"read","created":"2026-01-12T08:00:00Z"}`},
		{"token/dd44", `not json`},
		{"release.in_order", "true"},
	} {
		if _, err := db.Exec("INSERT INTO settings (key, value, updated) VALUES (?, ?, 1)", kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open a version 5 store: %v", err)
	}
	defer s.Close()
	prod, err := s.TokenByHash(ctx, "aa11")
	if err != nil {
		t.Fatal(err)
	}
	if prod.Name != "tier0-prod" || prod.Scope != "steer" ||
		!prod.Created.Equal(time.Date(2026, 1, 10, 8, 0, 0, 5e8, time.UTC)) || !prod.Expires.Equal(time.Date(2026, 2, 9, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("moved token = %+v", prod)
	}
	first, _ := s.TokenByHash(ctx, "bb22")
	second, _ := s.TokenByHash(ctx, "cc33")
	if first.Name != "calib-shifter" || !first.Expires.IsZero() || second.Name != "calib-shifter-old-cc33" || second.Scope != "read" {
		t.Errorf("two tokens of one name moved as %+v and %+v", first, second)
	}
	if _, ok, _ := s.Setting(ctx, "token/aa11"); ok {
		t.Error("the old token setting is still there")
	}
	if v, ok, _ := s.Setting(ctx, "release.in_order"); !ok || v != "true" {
		t.Error("a setting that is no token was lost")
	}
}

// TestMigrationsApplyAVersionBelowTheHighest: versions are handed out to work done in parallel, so a
// file may hold a higher version than one that lands later; opening it applies the missing one.
func TestMigrationsApplyAVersionBelowTheHighest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spyagency.db")
	db := storeAtVersion(t, path, 1<<30)
	// Forget migration 0005 as if it had landed after the file reached the highest version.
	if _, err := db.Exec("DELETE FROM schema_migrations WHERE version = 5"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ALTER TABLE cursors DROP COLUMN view"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open a file that lacks a middle version: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.reader.QueryRow("SELECT count(*) FROM schema_migrations WHERE version = 5").Scan(&n); err != nil || n != 1 {
		t.Errorf("version 5 applied %d times (%v)", n, err)
	}
	if _, err := s.reader.Query("SELECT view FROM cursors"); err != nil {
		t.Errorf("the missing migration did not run: %v", err)
	}
}
