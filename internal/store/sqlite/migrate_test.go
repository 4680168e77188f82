package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// storeAtVersion makes a store file with the embedded migrations up to version v only (versions may have
// gaps), and returns its
// writer, so that a test can fill it the way the code of that version did.
func storeAtVersion(t *testing.T, path string, v int) *sql.DB {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", connString(path, false, connConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	s := &Store{path: path, writer: db, now: time.Now, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version > v {
			break
		}
		if err := s.migrate(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// insertV3 stores observations as schema version 3 did: the key in hexadecimal as the primary key.
func insertV3(t *testing.T, db *sql.DB, obs []pcl.Observation, key func(o *pcl.Observation) string) {
	t.Helper()
	for i := range obs {
		o := &obs[i]
		body, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		payload := ""
		if o.Kind == pcl.KindIOV {
			payload = o.Payload
		}
		if _, err := db.Exec(`INSERT INTO observations (key, run, source, kind, at, seen, tag, payload, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, key(o), int64(o.Run), string(o.Source), string(o.Kind),
			o.At.UnixNano(), nanos(o.Seen), o.Tag, payload, body); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrateObservationIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spyagency.db")
	db := storeAtVersion(t, path, 3)
	old := benchObservations(500, 0)
	insertV3(t, db, old, func(o *pcl.Observation) string { return o.Key() })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open a version 3 store: %v", err)
	}
	defer s.Close()
	got, err := s.Observations(ctx, store.ObservationQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(old) {
		t.Fatalf("after the migration the store holds %d observations, want %d", len(got), len(old))
	}
	byKey := map[string]bool{}
	for i := range got {
		byKey[got[i].Key()] = true
	}
	for i := range old {
		if !byKey[old[i].Key()] {
			t.Fatalf("observation %d (%s run %d) was lost by the migration", i, old[i].Kind, old[i].Run)
		}
	}
	// The migrated keys are the facts' identities: the same facts again are not new, a new one is.
	more := benchObservations(501, 0)
	added, err := s.AppendObservations(ctx, more)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].Key() != more[500].Key() {
		t.Fatalf("append after the migration added %d observations, want only the one new fact", len(added))
	}
	// The payload index came back: a query by payload hash finds the IOV.
	var iov pcl.Observation
	for _, o := range old {
		if o.Kind == pcl.KindIOV {
			iov = o
			break
		}
	}
	byPayload, err := s.Observations(ctx, store.ObservationQuery{Payloads: []string{iov.Payload}})
	if err != nil || len(byPayload) != 1 || byPayload[0].Key() != iov.Key() {
		t.Fatalf("query by payload after the migration: %d observations (err %v), want the one IOV", len(byPayload), err)
	}
	wantPlan(t, s, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindIOV}, Payloads: []string{iov.Payload}}, "observations_payload")
}

// wantPlan fails unless SQLite's plan for the store's query for q uses the named index.
func wantPlan(t *testing.T, s *Store, q store.ObservationQuery, index string) {
	t.Helper()
	query, args := observationsQuery(q)
	wantQueryPlan(t, s, query, args, index)
}

// wantQueryPlan fails unless SQLite's plan for query uses the named index.
func wantQueryPlan(t *testing.T, s *Store, query string, args []any, index string) {
	t.Helper()
	rows, err := s.reader.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if !strings.Contains(strings.Join(plan, "; "), index) {
		t.Errorf("the query %q does not use %s: %s", query, index, strings.Join(plan, "; "))
	}
}

// TestObservationQueriesUseIndexes: the agency's reads, by run and by payload hash, use an index instead
// of scanning every fact ever stored.
func TestObservationQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	if _, err := s.AppendObservations(context.Background(), benchObservations(200, 0)); err != nil {
		t.Fatal(err)
	}
	wantPlan(t, s, store.ObservationQuery{Runs: []uint32{380001}}, "sqlite_autoindex_observations_1")
	wantPlan(t, s, store.ObservationQuery{Runs: []uint32{380001, 380002}, Kinds: []pcl.Kind{pcl.KindOverride}}, "sqlite_autoindex_observations_1")
	wantPlan(t, s, store.ObservationQuery{Kinds: []pcl.Kind{pcl.KindIOV}, Payloads: []string{"a", "b"}}, "observations_payload")
	wantPlan(t, s, store.ObservationQuery{Payloads: []string{"a"}}, "observations_payload")
	// The agency's loop asks for the next wake-up after every pass: it reads the wake index.
	wantQueryPlan(t, s, nextWakeQuery, nil, "run_states_wake")
}

// TestMigrateRefusesDamagedKey: a key that is not hexadecimal stops the migration with the file's name,
// and the file stays at version 3 with every row.
func TestMigrateRefusesDamagedKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "spyagency.db")
	db := storeAtVersion(t, path, 3)
	obs := benchObservations(20, 0)
	insertV3(t, db, obs, func(o *pcl.Observation) string {
		if o == &obs[7] {
			return "not-a-key"
		}
		return o.Key()
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "0004_observation_identity.sql") {
		t.Fatalf("open with a damaged key: %v, want an error naming the file and the migration", err)
	}
	db = storeAtVersion(t, path, 0)
	var version, n int
	if err := db.QueryRow("SELECT max(version) FROM schema_migrations").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM observations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if version != 3 || n != len(obs) {
		t.Fatalf("after the refused migration: version %d with %d observations, want 3 with %d", version, n, len(obs))
	}
}

// TestMigrateCursorView: cursors written before the view column keep their values and read back with
// no view (the conservative answer: freshness comes with the next poll); new ones keep their view.
func TestMigrateCursorView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spyagency.db")
	db := storeAtVersion(t, path, 4)
	if _, err := db.Exec(`INSERT INTO cursors (name, value, updated) VALUES ('harvest', 'a1b2c3:17', 1), ('oms', '392671', 2)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open a version 4 store: %v", err)
	}
	defer s.Close()
	for name, want := range map[string]string{"harvest": "a1b2c3:17", "oms": "392671"} {
		c, err := s.Cursor(ctx, name)
		if err != nil || c.Value != want || !c.View.IsZero() {
			t.Errorf("cursor %s after the migration: %+v (err %v), want %q with no view", name, c, err, want)
		}
	}
	view := time.Date(2026, 5, 4, 6, 0, 0, 123, time.UTC)
	if err := s.SetCursor(ctx, "harvest", store.Cursor{Value: "a1b2c3:18", View: view}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Cursor(ctx, "harvest"); err != nil || c.Value != "a1b2c3:18" || !c.View.Equal(view) {
		t.Errorf("cursor after the migration and a write: %+v (err %v)", c, err)
	}
}
