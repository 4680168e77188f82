package cli

import (
	"strings"
	"testing"

	"github.com/cms-pcl/spyagency/internal/pgtest"
)

// TestSimulateFastPostgres: --store writes the fast build into a PostgreSQL store, and a second build
// into that store refuses.
func TestSimulateFastPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t)
	dir := t.TempDir()
	code, _, errs := run(t, "simulate", "--fast", "--days", "1", "--faults", "none", "--data", dir, "--store", dsn)
	if code != 0 {
		t.Fatalf("simulate --fast --store postgres: exit %d: %s", code, errs)
	}
	rec, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Complete || rec.Runs == 0 || rec.StoredRuns != rec.Runs || rec.Decisions < rec.StoredRuns || rec.StoreBytes != 0 {
		t.Errorf("record %+v: want every run of the day stored with its decisions (and no SQLite size)", rec)
	}
	if !strings.Contains(errs, rec.Store) || !strings.HasPrefix(rec.Store, "postgres") {
		t.Errorf("the report does not name the PostgreSQL store %q:\n%s", rec.Store, errs)
	}
	code, _, errs = run(t, "simulate", "--fast", "--days", "1", "--data", t.TempDir(), "--store", dsn)
	if code == 0 || !strings.Contains(errs, "already holds runs") {
		t.Errorf("a second build into the store: exit %d: %s", code, errs)
	}
}
