package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// cachedPool is a one-connection pool on a fresh file with a table t(k, v) of n rows, and a way to
// see how many statements its connection keeps.
func cachedPool(t *testing.T, n int) (*sql.DB, func() int) {
	t.Helper()
	db, err := openCached("sqlite", "file:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t (v)"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := db.ExecContext(ctx, "INSERT INTO t (k, v) VALUES (?, ?)", i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() int {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var k int
		conn.Raw(func(dc any) error { k = len(dc.(*cachedConn).stmts); return nil })
		return k
	}
	return db, kept
}

// A statement run again and again is kept prepared and gives each call its own arguments' answer;
// one run once or twice is not kept.
func TestStmtCacheKeepsRepeatedStatements(t *testing.T) {
	t.Parallel()
	db, kept := cachedPool(t, 50) // the INSERT ran 50 times: kept
	if got := kept(); got != 1 {
		t.Fatalf("after 50 INSERTs and one script, %d statements kept, want 1 (the INSERT)", got)
	}
	for i := range 20 {
		var v string
		if err := db.QueryRowContext(t.Context(), "SELECT v FROM t WHERE k = ?", i).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint("v", i); v != want {
			t.Fatalf("k=%d: got %q, want %q", i, v, want)
		}
	}
	if _, err := db.ExecContext(t.Context(), "UPDATE t SET v = 'x' WHERE k = 0"); err != nil {
		t.Fatal(err)
	}
	if got := kept(); got != 2 {
		t.Fatalf("%d statements kept, want 2 (the INSERT and the repeated SELECT, not the single UPDATE)", got)
	}
	// An Exec of a kept INSERT still reports its effect, and a failing one its error.
	res, err := db.ExecContext(t.Context(), "INSERT INTO t (k, v) VALUES (?, ?)", 1000, "new")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.LastInsertId(); id != 1000 {
		t.Fatalf("last insert id %d, want 1000", id)
	}
	if _, err := db.ExecContext(t.Context(), "INSERT INTO t (k, v) VALUES (?, ?)", 1000, "dup"); err == nil {
		t.Fatal("a duplicate key through the kept INSERT did not fail")
	}
	if _, err := db.ExecContext(t.Context(), "INSERT INTO t (k, v) VALUES (?, ?)", 1001, "after"); err != nil {
		t.Fatalf("the kept INSERT after a failure: %v", err)
	}
}

// The same text asked again while its rows are open (a nested read) runs uncached beside it, and
// neither iteration is disturbed.
func TestStmtCacheNestedUseOfOneText(t *testing.T) {
	t.Parallel()
	db, _ := cachedPool(t, 10)
	ctx := t.Context()
	const q = "SELECT k FROM t WHERE k >= ? ORDER BY k"
	for range cacheAfter + 1 { // kept from here on
		rows, err := db.QueryContext(ctx, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	tx, err := db.BeginTx(ctx, nil) // one connection: the inner query runs on the same one
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seen, inner int
	for outer.Next() {
		var k int
		if err := outer.Scan(&k); err != nil {
			t.Fatal(err)
		}
		if k != seen {
			t.Fatalf("outer row %d is k=%d", seen, k)
		}
		seen++
		in, err := tx.QueryContext(ctx, q, k)
		if err != nil {
			t.Fatal(err)
		}
		for in.Next() {
			inner++
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if seen != 10 || inner != 55 {
		t.Fatalf("outer saw %d rows, inner %d; want 10 and 55", seen, inner)
	}
}

// A query whose context ends mid-read leaves its kept statement usable by the next call.
func TestStmtCacheAfterCanceledQuery(t *testing.T) {
	t.Parallel()
	db, _ := cachedPool(t, 200)
	const q = "SELECT k FROM t WHERE k >= ? ORDER BY k"
	for range cacheAfter + 1 {
		rows, err := db.QueryContext(t.Context(), q, 0)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	ctx, cancel := context.WithCancel(t.Context())
	rows, err := db.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	cancel()
	for rows.Next() {
	}
	rows.Close()
	var n int
	rows, err = db.QueryContext(t.Context(), q, 150)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if n != 50 {
		t.Fatalf("after a canceled read the kept statement gave %d rows, want 50", n)
	}
}

// A store whose connections keep statements closes cleanly and opens again: the statements are
// finalized before their connection.
func TestStmtCacheStoreClosesAndReopens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.db")
	for range 2 {
		s, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if err := s.SetSetting(t.Context(), "k", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := s.Setting(t.Context(), "k"); err != nil || !ok || v != fmt.Sprint(i) {
				t.Fatalf("setting after write %d: %q %v %v", i, v, ok, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("closing a store with kept statements: %v", err)
		}
	}
}
