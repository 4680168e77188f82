package sqlite

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// busyTimeoutMS bounds how long a connection waits for another process's lock before SQLITE_BUSY.
const busyTimeoutMS = 10000

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// preflight refuses, before SQLite touches the disk, what would otherwise make SQLite create a file in
// the wrong place or fail later with a cryptic message.
func preflight(path string) error {
	switch {
	case strings.TrimSpace(path) == "":
		return apperr.Errorf(apperr.Invalid, "store: empty database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return apperr.Errorf(apperr.Invalid, "store %q: give a plain file path (in-memory and URI databases are not supported)", path)
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return apperr.Errorf(apperr.Invalid, "store %s: directory %s does not exist", path, dir)
	case err != nil:
		return apperr.Errorf(apperr.Invalid, "store %s: %w", path, err)
	case !di.IsDir():
		return apperr.Errorf(apperr.Invalid, "store %s: %s is not a directory", path, dir)
	}
	if err := writable(dir); err != nil {
		return apperr.Errorf(apperr.Invalid, "store %s: directory %s is read-only, and the store must create files in it: %w", path, dir, err)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // a new store
	case err != nil:
		return apperr.Errorf(apperr.Invalid, "store %s: %w", path, err)
	case fi.IsDir():
		return apperr.Errorf(apperr.Invalid, "store %s: is a directory, not a database file", path)
	}
	if err := writable(path); err != nil {
		return apperr.Errorf(apperr.Invalid, "store %s: the file is read-only, and the store must write it: %w", path, err)
	}
	if fi.Size() == 0 {
		return nil // SQLite treats an empty file as an empty database
	}
	f, err := os.Open(path)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "store %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteHeader) {
		return apperr.Errorf(apperr.Invalid, "store %s: not an SQLite database (the file does not start with the SQLite header); it may be corrupt or another kind of file", path)
	}
	return nil
}

// leftovers records which of the files SQLite may create for a database did not exist before an open,
// so that a refused open can remove what it made.
type leftovers []string

func newLeftovers(path string) leftovers {
	var l leftovers
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			l = append(l, p)
		}
	}
	return l
}

// remove deletes the files that appeared since newLeftovers and hold no data: SQLite's empty database
// file, and the -wal/-shm pair a read-only connection creates when it reads a WAL database. A -wal that
// is not empty, or a database file that is not, is kept: it may hold someone's data.
func (l leftovers) remove() {
	for _, p := range l {
		if strings.HasSuffix(p, "-shm") {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil || fi.Size() != 0 {
			continue
		}
		_ = os.Remove(p)
		if strings.HasSuffix(p, "-wal") {
			_ = os.Remove(strings.TrimSuffix(p, "-wal") + "-shm")
		}
	}
}

// connString is the modernc.org/sqlite DSN of one pool. The path goes in a file: URI, escaped so that
// '?', '#' and '%' in a directory name cannot be read as URI syntax.
func connString(path string, reader bool, cc connConfig) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	if reader {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "foreign_keys(1)")
		// NORMAL is durable across application crashes in WAL mode; only a power loss can drop the last
		// transactions, which spies re-observe anyway.
		q.Add("_pragma", "synchronous(NORMAL)")
		// Every IOV append lands at a random place of the payload-hash index; with SQLite's default 2 MiB
		// page cache those pages would be read back from the file again and again.
		q.Add("_pragma", "cache_size(-32768)") // KiB
		// Checkpoints copy each page from the WAL into the file: fewer, larger ones write less overall.
		q.Add("_pragma", "wal_autocheckpoint(8192)") // pages: about 64 MiB of WAL
		// Observation rows are a few hundred bytes of JSON: 8 KiB pages split and rebalance less often.
		// It takes effect when the file is made (existing stores keep their page size).
		q.Add("_pragma", "page_size(8192)")
		q.Set("_txlock", "immediate")
	}
	if cc.readOnly {
		q.Set("mode", "ro")
	}
	return "file:" + esc + "?" + q.Encode()
}

// migration is one embedded schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded migrations in version order; their names are NNNN_what.sql, each
// version once. Versions may have gaps: numbers are handed out to work done in parallel (0006 is
// reserved, 0007 and 0008 were written side by side), so a version can land after a higher one did,
// and prepareFile applies every embedded version a file lacks, not only those above its highest.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("embedded migration %s: name must be NNNN_what.sql", e.Name())
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("embedded migrations: %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("embedded migrations: none")
	}
	return ms, nil
}

// prepareFile checks that the file can be written and is not from a newer schema, then switches it to
// WAL and applies the pending migrations. The checks come first so that a file this code must not use
// is left exactly as it was.
func (s *Store) prepareFile(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if err := s.probeWritable(ctx); err != nil {
		return err
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	for _, v := range slices.Sorted(maps.Keys(applied)) {
		if !known[v] {
			return apperr.Errorf(apperr.Invalid,
				"store %s: schema version %d is not one this spyagency knows (newer, or from another build; it knows versions up to %d); use a newer spyagency or another file",
				s.path, v, ms[len(ms)-1].version)
		}
	}
	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return s.openErr("switch to WAL", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return apperr.Errorf(apperr.Invalid, "store %s: cannot use WAL mode (journal mode stays %q)", s.path, mode)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := s.migrate(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// probeWritable starts a write and rolls it back. BEGIN IMMEDIATE alone is no test: on a database
// opened read-only SQLite quietly makes it a read transaction. Rewriting user_version with its own value
// needs the write lock, so it fails with SQLITE_READONLY there; rolled back, it changes nothing. Reading
// the header on the way also makes a corrupt file fail here, before anything was written.
func (s *Store) probeWritable(ctx context.Context) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.openErr("open for writing", err)
	}
	defer func() { _ = tx.Rollback() }()
	var v int64
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return s.openErr("read header", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return s.openErr("open for writing", err)
	}
	return nil
}

// appliedVersions are the schema versions the file has.
func (s *Store) appliedVersions(ctx context.Context) (map[int]bool, error) {
	var exists int
	err := s.writer.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").Scan(&exists)
	if err != nil {
		return nil, s.openErr("read schema", err)
	}
	out := map[int]bool{}
	if exists == 0 {
		return out, nil
	}
	rows, err := s.writer.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, s.openErr("read schema versions", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, s.openErr("read schema versions", err)
		}
		out[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, s.openErr("read schema versions", err)
	}
	return out, nil
}

func (s *Store) migrate(ctx context.Context, m migration) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.openErr("migrate "+m.name, err)
	}
	defer func() { _ = tx.Rollback() }()
	steps := []struct {
		sql  string
		args []any
	}{
		{`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER NOT NULL PRIMARY KEY,
			name    TEXT    NOT NULL,
			applied INTEGER NOT NULL)`, nil},
		{m.sql, nil},
		{"INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
			[]any{m.version, m.name, s.now().UnixNano()}},
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return s.openErr("migrate "+m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.openErr("migrate "+m.name, err)
	}
	s.log.Info("store schema migrated", "version", m.version, "migration", m.name)
	return nil
}

// openErr explains an error met while opening the file.
func (s *Store) openErr(what string, err error) error {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_READONLY:
		return apperr.Errorf(apperr.Invalid, "store %s: the file is read-only, and the store must write it (%s: %w)", s.path, what, err)
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return apperr.Errorf(apperr.Invalid, "store %s: not a usable SQLite database, it may be corrupt (%s: %w)", s.path, what, err)
	case sqlite3.SQLITE_CANTOPEN:
		return apperr.Errorf(apperr.Invalid, "store %s: cannot open the file (%s: %w)", s.path, what, err)
	case sqlite3.SQLITE_BUSY:
		return apperr.Errorf(apperr.Unavailable, "store %s: locked by another process (%s: %w)", s.path, what, err)
	}
	return fmt.Errorf("store %s: %s: %w", s.path, what, err)
}
