package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/store"
)

func TestOpenRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A later spyagency migrated the schema further.
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied) VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err = Open(ctx, dsn, Options{})
	if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), "schema version 9999") || !strings.Contains(err.Error(), "newer spyagency") {
		t.Fatalf("open of a newer schema: %v, want an Invalid error naming version 9999", err)
	}
}

func TestOpenMigratesOnceWhenReplicasStartTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dsn, Options{})
			if err == nil {
				_ = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := migrations()
	if n != len(ms) {
		t.Fatalf("%d migrations recorded, want %d (each once)", n, len(ms))
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		dsn  string
		code apperr.Code
		want string
	}{
		{"sqlite:/tmp/x.db", apperr.Invalid, "postgres://"},
		{"postgres://u:secret@[::1:5432/db", apperr.Invalid, "cannot parse"},
		// Port 1 on loopback: nothing listens there.
		{"postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", apperr.Unavailable, "cannot connect"},
	} {
		_, err := Open(ctx, tc.dsn, Options{})
		if apperr.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %s: %v, want %s saying %q", tc.dsn, err, tc.code, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("open %s: the error shows the password: %v", tc.dsn, err)
		}
	}
}

func TestOpenWithoutASchemaToUse(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), pgtest.WithParam(pgtest.DSN(t), "search_path", "no_such_schema_here"), Options{})
	if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(err.Error(), "no schema") {
		t.Fatalf("open with a search_path naming no schema: %v, want Invalid saying so", err)
	}
}

// PostgreSQL refuses text that SQLite keeps (a NUL byte, invalid UTF-8): the caller gets Invalid, not
// an internal error.
func TestTextPostgreSQLRefuses(t *testing.T) {
	t.Parallel()
	s := openSchema(t, Options{})
	ctx := context.Background()
	for _, v := range []string{"a\x00b", "\xff\xfe"} {
		err := s.SetSetting(ctx, "k", v)
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("setting %q: %v, want Invalid", v, err)
		}
		err = s.AppendAudit(ctx, store.AuditEntry{Actor: "jdoe", Action: "hold", Detail: v})
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("audit detail %q: %v, want Invalid", v, err)
		}
	}
}

func TestLikePattern(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Collisions*": "Collisions%",
		"HI?5":        "HI_5",
		"a%b_c\\*":    `a\%b\_c\\%`,
		"[x]*":        "[x]%",
	} {
		if got := likePattern(in); got != want {
			t.Errorf("likePattern(%q) = %q, want %q", in, got, want)
		}
	}
}
