package postgres

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// TestRetentionMeasure measures what retention saves on a store the agency wrote: set
// SPYAGENCY_RETENTION_DB to a SQLite store (e.g. a demo's spyagency-demo.db). It copies it, compacts
// every released run in the copy, and reports the bytes per released run before and after (after
// VACUUM) and the compaction's cost per run; then it loads the same runs into PostgreSQL and does the
// same there (pg_total_relation_size of the schema's tables, after VACUUM FULL). It is a measurement,
// not a check, and is skipped without the variable (docs/benchmarks.md).
func TestRetentionMeasure(t *testing.T) {
	src := os.Getenv("SPYAGENCY_RETENTION_DB")
	if src == "" {
		t.Skip("SPYAGENCY_RETENTION_DB not set")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, src, path)
	lite, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	released, err := lite.RunStates(ctx, store.RunQuery{Readiness: "released", Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	all, err := lite.RunStates(ctx, store.RunQuery{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store: %d runs, %d released", len(all), len(released))
	liteSize := func() int64 {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var size int64
		if _, err := db.Exec("VACUUM"); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").Scan(&size); err != nil {
			t.Fatal(err)
		}
		return size
	}

	// PostgreSQL: the same runs, observations, decisions and final states.
	dsn := pgtest.Schema(t)
	pg, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, rs := range all {
		obs, err := lite.Observations(ctx, store.ObservationQuery{Runs: []uint32{rs.Run}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range obs {
			obs[i].Seq = 0
		}
		if _, err := pg.AppendObservations(ctx, obs); err != nil {
			t.Fatal(err)
		}
		ds, err := lite.Decisions(ctx, rs.Run)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			st := rs // every version with the final state: the state rows hold only the latest anyway
			st.Decision = d
			if _, err := pg.SaveDecision(ctx, store.DecisionWrite{Decision: d, State: st}); err != nil {
				t.Fatal(err)
			}
		}
		if len(ds) == 0 {
			if err := pg.PutRunState(ctx, rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pgSize := func() int64 {
		if _, err := conn.Exec(ctx, "VACUUM FULL"); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for _, st := range []struct {
		name string
		s    store.Store
		size func() int64
	}{{"sqlite", lite, liteSize}, {"postgres", pg, pgSize}} {
		before := st.size()
		obsBefore := countRows(t, st.s, all)
		start := time.Now()
		n := 0
		for {
			got, err := st.s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: time.Now().Add(100 * 365 * 24 * time.Hour),
				Now: time.Now(), Limit: 16})
			if err != nil {
				t.Fatal(err)
			}
			n += len(got)
			if len(got) < 16 {
				break
			}
		}
		took := time.Since(start)
		after := st.size()
		obsAfter := countRows(t, st.s, all)
		r := int64(len(all))
		t.Logf("%s: %d runs compacted of %d released; observations %d -> %d; store %d B -> %d B; per run (all %d runs) %d B -> %d B; compaction %v, %v a run",
			st.name, n, len(released), obsBefore, obsAfter, before, after, r, before/r, after/r, took, took/time.Duration(max(n, 1)))
	}
}

func countRows(t *testing.T, s store.Store, runs []pcl.RunState) int {
	n := 0
	for _, rs := range runs {
		obs, err := s.Observations(context.Background(), store.ObservationQuery{Runs: []uint32{rs.Run}})
		if err != nil {
			t.Fatal(err)
		}
		n += len(obs)
	}
	return n
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		in, err := os.Open(from + suffix)
		if err != nil {
			if suffix != "" {
				continue
			}
			t.Fatal(err)
		}
		out, err := os.Create(to + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
