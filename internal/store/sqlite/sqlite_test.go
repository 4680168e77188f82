package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/storetest"
)

// openTemp opens a fresh store in a test's temporary directory and closes it at the end of the test.
func openTemp(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "spyagency.db"), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		s, err := Open(context.Background(), filepath.Join(dir, "spyagency.db"), Options{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// dirListing names the files in dir with their contents, to prove that a refused open changed nothing.
func dirListing(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func sameListing(t *testing.T, before, after map[string][]byte) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("refused open changed the directory: %d files before, %d after", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Fatalf("refused open changed %s", name)
		}
	}
}

// wantOpenError fails unless err is apperr.Invalid and its message names the path and contains every
// hint.
func wantOpenError(t *testing.T, err error, path string, hints ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("open %s: no error", path)
	}
	if apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("open %s: error %q has code %s, want invalid", path, err, apperr.CodeOf(err))
	}
	for _, h := range append([]string{path}, hints...) {
		if !strings.Contains(err.Error(), h) {
			t.Errorf("open error %q does not mention %q", err, h)
		}
	}
}

func TestOpenCorruptFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "spyagency.db")
	junk := make([]byte, 8192)
	_, _ = rand.Read(junk)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, dir)
	_, err := Open(context.Background(), path, Options{})
	wantOpenError(t, err, path, "not an SQLite database")
	sameListing(t, before, dirListing(t, dir))
}

func TestOpenCorruptPages(t *testing.T) {
	t.Parallel()
	// A file with the SQLite header and garbage after it passes the header check; SQLite itself must
	// then refuse it, and the message must still say which file and what is wrong.
	dir := t.TempDir()
	path := filepath.Join(dir, "spyagency.db")
	junk := make([]byte, 8192)
	_, _ = rand.Read(junk)
	copy(junk, sqliteHeader)
	if err := os.WriteFile(path, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, dir)
	_, err := Open(context.Background(), path, Options{})
	wantOpenError(t, err, path, "corrupt")
	sameListing(t, before, dirListing(t, dir))
}

func TestOpenMissingDirectory(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	path := filepath.Join(parent, "no-such-dir", "spyagency.db")
	_, err := Open(context.Background(), path, Options{})
	wantOpenError(t, err, path, "does not exist")
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("refused open created the directory (stat: %v)", err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "spyagency.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(context.Background(), "oms", store.Cursor{Value: "392671"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, dir)
	// Tests run as root, which writes any file whatever its mode: mode=ro makes SQLite see what it sees
	// on a file the process may not write.
	_, err = open(context.Background(), path, Options{}, connConfig{readOnly: true})
	wantOpenError(t, err, path, "read-only")
	sameListing(t, before, dirListing(t, dir))
}

func TestOpenReadOnlyPermissions(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("running as root, which may write a file whatever its mode; TestOpenReadOnly covers this with mode=ro")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "spyagency.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, dir)
	_, err = Open(context.Background(), path, Options{})
	wantOpenError(t, err, path, "read-only")
	sameListing(t, before, dirListing(t, dir))
}

func TestOpenNewerSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "spyagency.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	newer := ms[len(ms)-1].version + 1
	if _, err := s.writer.Exec("INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from the future', 0)", newer); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, dir)
	_, err = Open(context.Background(), path, Options{})
	wantOpenError(t, err, path, "newer")
	sameListing(t, before, dirListing(t, dir))
}

func TestOpenDSN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, dsn := range []string{"postgres://localhost/spy", "spyagency.db", "sqlite:", "mysql:x"} {
		if _, err := OpenDSN(ctx, dsn, Options{}); !apperr.Is(err, apperr.Invalid) || !strings.Contains(err.Error(), dsn) {
			t.Errorf("OpenDSN(%q): %v, want an invalid-DSN error naming it", dsn, err)
		}
	}
	dir := t.TempDir()
	for _, dsn := range []string{"sqlite:" + filepath.Join(dir, "a.db"), "sqlite://" + filepath.Join(dir, "b.db")} {
		s, err := OpenDSN(ctx, dsn, Options{})
		if err != nil {
			t.Fatalf("OpenDSN(%q): %v", dsn, err)
		}
		if err := s.SetSetting(ctx, "k", "v"); err != nil {
			t.Errorf("write through %q: %v", dsn, err)
		}
		_ = s.Close()
	}
	for _, name := range []string{"a.db", "b.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("store file %s not created: %v", name, err)
		}
	}
}

func TestPathWithURISyntax(t *testing.T) {
	t.Parallel()
	// A directory name with URI syntax in it must not be read as URI parameters.
	dir := filepath.Join(t.TempDir(), "run 392671?mode=ro#x%20")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "spyagency.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetCursor(context.Background(), "oms", store.Cursor{Value: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	check := func(db *sql.DB, pragma, want string) {
		t.Helper()
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	check(s.writer, "journal_mode", "wal")
	check(s.writer, "foreign_keys", "1")
	check(s.writer, "synchronous", "1") // NORMAL
	check(s.writer, "busy_timeout", "10000")
	check(s.reader, "query_only", "1")
}

func TestNowFillsDecisionTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 16, 23, 59, 59, 123456789, time.UTC)
	s := openTemp(t, Options{Now: func() time.Time { return at }})
	ctx := context.Background()
	d, err := s.SaveDecision(ctx, store.DecisionWrite{
		Decision: pcl.Decision{Run: 392671, State: pcl.ReadinessReady, Releasable: true, Version: 1},
		State:    pcl.RunState{Run: 392671, Class: "Collisions25"},
		Outbox:   []store.OutboxEntry{{Target: "tier0"}},
		Audit:    []store.AuditEntry{{Actor: "agency", Action: "decision"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Decided.Equal(at) {
		t.Fatalf("decided %s, want the store's now %s", d.Decided, at)
	}
	out, err := s.Outbox(ctx, "tier0", 0)
	if err != nil || len(out) != 1 || !out[0].Created.Equal(at) || !out[0].NextAttempt.Equal(at) {
		t.Fatalf("outbox %+v (err %v), want created and due at %s", out, err, at)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{Actor: "jdoe", Action: "hold", Run: 392672}); err != nil {
		t.Fatal(err)
	}
	audit, err := s.Audit(ctx, store.AuditQuery{Actor: "jdoe"})
	if err != nil || len(audit) != 1 || !audit[0].At.Equal(at) {
		t.Fatalf("audit %+v (err %v), want stamped at %s", audit, err, at)
	}
}

func TestOutOfRangeTimeRefused(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	o := pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: 392671,
		At: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, err := s.AppendObservations(context.Background(), []pcl.Observation{o})
	if !apperr.Is(err, apperr.Invalid) {
		t.Fatalf("observation in 2400: %v, want invalid", err)
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := pcl.Observation{Source: pcl.SourceTier0, Kind: pcl.KindFCSR, Run: 392671, At: time.Now()}
	if _, err := s.AppendObservations(ctx, []pcl.Observation{o}); err == nil {
		t.Fatal("append with a cancelled context: no error")
	}
	got, err := s.Observations(context.Background(), store.ObservationQuery{})
	if err != nil || len(got) != 0 {
		t.Fatalf("after a cancelled append: %d observations (err %v), want none", len(got), err)
	}
	if _, err := s.AppendObservations(context.Background(), []pcl.Observation{o}); err != nil {
		t.Fatalf("the writer is not usable after a cancelled append: %v", err)
	}
	if got, err := s.Observations(context.Background(), store.ObservationQuery{}); err != nil || len(got) != 1 {
		t.Fatalf("after append: %d observations (err %v), want 1", len(got), err)
	}
}

func TestAppendLargeMixedBatch(t *testing.T) {
	t.Parallel()
	// A large batch with repeats far apart and facts already stored returns each new fact once, at its
	// first place.
	const insertChunk = 100
	s := openTemp(t, Options{})
	ctx := context.Background()
	pool := benchObservations(3*insertChunk, 0)
	if _, err := s.AppendObservations(ctx, pool[:10]); err != nil {
		t.Fatal(err)
	}
	batch := append([]pcl.Observation{}, pool...)
	batch = append(batch, pool[insertChunk+3], pool[2], pool[2*insertChunk+50])
	batch = append([]pcl.Observation{pool[2*insertChunk+1]}, batch...)
	var want []string
	seen := map[string]bool{}
	for i := range pool[:10] {
		seen[pool[i].Key()] = true
	}
	for i := range batch {
		if k := batch[i].Key(); !seen[k] {
			seen[k] = true
			want = append(want, k)
		}
	}
	added, err := s.AppendObservations(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range added {
		got = append(got, added[i].Key())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("large mixed append returned %d observations, want %d", len(got), len(want))
	}
	all, err := s.Observations(ctx, store.ObservationQuery{})
	if err != nil || len(all) != len(pool) {
		t.Fatalf("store holds %d observations (err %v), want %d", len(all), err, len(pool))
	}
}
