package steer

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
)

type tableRow struct {
	run     int64
	ready   bool
	state   string
	version int64
	reason  string
	decided time.Time
}

func readTable(t *testing.T, db *sql.DB, table string) []tableRow {
	t.Helper()
	rows, err := db.Query("SELECT run, ready, state, version, reason, decided FROM " + table + " ORDER BY run")
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	var out []tableRow
	for rows.Next() {
		var r tableRow
		var decided any
		if err := rows.Scan(&r.run, &r.ready, &r.state, &r.version, &r.reason, &decided); err != nil {
			t.Fatal(err)
		}
		switch v := decided.(type) {
		case time.Time:
			r.decided = v
		case string:
			if r.decided, err = time.Parse(time.RFC3339Nano, v); err != nil {
				t.Fatalf("decided %q: %v", v, err)
			}
		default:
			t.Fatalf("decided is a %T", decided)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func delivery(run uint32, version int64, state pcl.Readiness, releasable bool) Delivery {
	return Delivery{Key: IdempotencyKey(run, version), Decision: pcl.Decision{Run: run, Version: version, State: state,
		Releasable: releasable, Reason: fmt.Sprintf("v%d %s", version, state), Decided: t0.Add(time.Duration(version) * time.Minute)}}
}

// checkNewerWins is the SQL target's contract on any database: the newest version of a run stays, a
// redelivery or an older version arriving late changes nothing.
func checkNewerWins(t *testing.T, tg *SQLTarget, db *sql.DB) {
	ctx := context.Background()
	if err := tg.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tg.CreateTable(ctx); err != nil {
		t.Fatalf("second CreateTable: %v", err)
	}
	if err := tg.Check(ctx); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		d    Delivery
		want tableRow // the row of run 100 afterwards
	}{
		{delivery(100, 2, pcl.ReadinessWaiting, false), tableRow{100, false, "waiting", 2, "v2 waiting", t0.Add(2 * time.Minute)}},
		{delivery(100, 1, pcl.ReadinessReady, true), tableRow{100, false, "waiting", 2, "v2 waiting", t0.Add(2 * time.Minute)}},
		{delivery(100, 3, pcl.ReadinessReady, true), tableRow{100, true, "ready", 3, "v3 ready", t0.Add(3 * time.Minute)}},
		{delivery(100, 3, pcl.ReadinessReady, true), tableRow{100, true, "ready", 3, "v3 ready", t0.Add(3 * time.Minute)}},
		{delivery(100, 2, pcl.ReadinessHeld, false), tableRow{100, true, "ready", 3, "v3 ready", t0.Add(3 * time.Minute)}},
	}
	for i, s := range steps {
		if err := tg.Deliver(ctx, s.d); err != nil {
			t.Fatalf("step %d: deliver %s: %v", i, s.d.Key, err)
		}
		rows := readTable(t, db, tg.Table())
		if len(rows) != 1 {
			t.Fatalf("step %d: %d rows, want 1", i, len(rows))
		}
		got := rows[0]
		if !got.decided.Equal(s.want.decided) {
			t.Errorf("step %d (%s): decided %s, want %s", i, s.d.Key, got.decided, s.want.decided)
		}
		got.decided = s.want.decided
		if got != s.want {
			t.Errorf("step %d (%s): row %+v, want %+v", i, s.d.Key, got, s.want)
		}
	}
	if err := tg.Deliver(ctx, delivery(101, 1, pcl.ReadinessOngoing, false)); err != nil {
		t.Fatal(err)
	}
	if rows := readTable(t, db, tg.Table()); len(rows) != 2 || rows[1].run != 101 || rows[1].ready {
		t.Errorf("rows %+v, want run 101 added, not ready", rows)
	}
}

func TestSQLTargetSQLite(t *testing.T) {
	t.Parallel()
	for _, table := range []string{"", "main.t0_readiness"} {
		t.Run("table "+table, func(t *testing.T) {
			t.Parallel()
			tg, err := OpenSQLTarget("t0db", "sqlite:"+filepath.Join(t.TempDir(), "tier0.db"), table)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tg.Close() })
			if table == "" && tg.Table() != DefaultTable {
				t.Errorf("default table %q", tg.Table())
			}
			checkNewerWins(t, tg, tg.o.DB)
		})
	}
}

func TestSQLTargetPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	// Own names, in case the server is a shared one from $SPYAGENCY_TEST_POSTGRES.
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	schema := "t0_" + suffix
	for _, table := range []string{"spyagency_readiness_" + suffix, schema + ".spyagency_readiness"} {
		t.Run(table, func(t *testing.T) {
			tg, err := OpenSQLTarget("t0db", dsn, table)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tg.Close() })
			db := tg.o.DB
			if strings.Contains(table, ".") {
				if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE") })
			} else {
				t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + table) })
			}
			checkNewerWins(t, tg, db)
			var typ string
			if err := db.QueryRowContext(ctx, "SELECT pg_typeof(decided)::text FROM "+table+" LIMIT 1").Scan(&typ); err != nil || typ != "timestamp with time zone" {
				t.Errorf("decided column type %q (%v), want timestamptz", typ, err)
			}
		})
	}
}

// TestSQLTargetFromOutbox pushes decisions from the store's outbox into the table through a Pusher.
func TestSQLTargetFromOutbox(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	st := openStore(t, clk)
	tg, err := OpenSQLTarget("t0db", "sqlite:"+filepath.Join(t.TempDir(), "tier0.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	if err := tg.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	decide(t, st, t0, 100, pcl.ReadinessWaiting, false, "t0db")
	decide(t, st, t0, 101, pcl.ReadinessReady, true, "t0db")
	clk.Advance(time.Minute)
	decide(t, st, clk.Now(), 100, pcl.ReadinessReady, true, "t0db")
	p, err := NewPusher(PusherOptions{Outbox: st, Target: tg, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows := readTable(t, tg.o.DB, DefaultTable)
	if len(rows) != 2 || rows[0].version != 2 || !rows[0].ready || rows[1].run != 101 || !rows[1].ready {
		t.Errorf("table %+v, want run 100 at v2 ready and run 101 ready", rows)
	}
	if left, _ := st.PendingOutbox(context.Background(), "t0db", clk.Now(), 0); len(left) != 0 {
		t.Errorf("still pending: %+v", left)
	}
}

func TestSQLTargetRefuses(t *testing.T) {
	t.Parallel()
	for _, table := range []string{"x; DROP TABLE y", "1abc", "a.b.c", "spy agency", `"quoted"`} {
		if _, err := DDL(DialectPostgres, table); err == nil {
			t.Errorf("table name %q accepted", table)
		}
	}
	if _, err := DDL("oracle", "t"); err == nil {
		t.Error("unknown dialect accepted")
	}
	for _, dsn := range []string{"mysql://x", "sqlite:", "t0.db", "https://user:pw@host/db"} {
		_, err := OpenSQLTarget("t0db", dsn, "")
		if err == nil {
			t.Errorf("DSN %q accepted", dsn)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("DSN error shows the password: %v", err)
		}
	}
	tg, err := OpenSQLTarget("t0db", "sqlite:"+filepath.Join(t.TempDir(), "tier0.db"), "missing_table")
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if err := tg.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "missing_table") {
		t.Errorf("Check on a missing table: %v", err)
	}
	if err := tg.Deliver(context.Background(), delivery(100, 1, pcl.ReadinessReady, true)); err == nil || isPermanent(err) {
		t.Errorf("upsert into a missing table: %v, want a retryable error (a DBA may still create it)", err)
	}
}
