package conddbv2

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/dbdriver"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/redact"
)

// DB is a read-only handle on a condition DB.
type DB struct {
	sql     *sql.DB
	dialect *Dialect
	name    string // the DSN without secrets, for error messages

	// stmts are the queries prepared so far, by their text: a spy asks the same few queries of every
	// watched tag on every poll, and parsing them again each time was most of their cost.
	mu    sync.Mutex
	stmts map[string]*sql.Stmt

	// version is the one connection PRAGMA data_version is asked on (SQLite only): the pragma compares
	// a connection's view with its own previous one, so it must always be the same connection.
	version     *sql.Conn
	versionConn uint64
}

// maxStmts bounds the prepared queries kept; past it a query is run unprepared. The texts a reader
// uses are few (they differ by LIMIT and by the number of tags named), so it is seldom reached.
const maxStmts = 64

// TagInfo is a TAG row.
type TagInfo struct {
	Name            string
	TimeType        pcl.TimeType
	ObjectType      string
	Synchronization string
	EndOfValidity   uint64 // pcl.Infinity for "forever"
	Description     string
	LastValidated   uint64
	Inserted        time.Time
	Modified        time.Time
}

// IOV is an IOV row.
type IOV struct {
	Tag      string
	Since    uint64
	Payload  string // PAYLOAD_HASH
	Inserted time.Time
}

// PayloadInfo is a PAYLOAD row without its blobs.
type PayloadInfo struct {
	Hash       string
	ObjectType string
	Version    string
	Inserted   time.Time
}

// Options tune how a file is opened.
type Options struct {
	// Immutable tells SQLite that nobody writes the file while it is open (a finished harvest file), so it
	// skips locking. Never set it for a condition DB that is being appended to.
	Immutable bool
}

// Open opens a condition DB read-only. DSNs: "sqlite:PATH" and "postgres://...". The package registers no
// database driver: the program registers dbdriver.SQLite and dbdriver.Postgres (spyagency does in
// internal/app), and a DSN whose driver is missing is refused with a message that says so.
func Open(ctx context.Context, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return OpenFile(ctx, strings.TrimPrefix(dsn, "sqlite:"), Options{})
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	}
	return nil, apperr.Errorf(apperr.Invalid, "condition DB DSN %q: want sqlite:PATH or postgres://...", redact.URL(dsn))
}

// OpenFile opens a CondDB SQLite file read-only.
func OpenFile(ctx context.Context, path string, opt Options) (*DB, error) {
	name := "sqlite:" + path
	if path == "" {
		return nil, apperr.Errorf(apperr.Invalid, "condition DB DSN %q has no file path", name)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: %w", name, err)
	}
	if st.IsDir() {
		return nil, apperr.Errorf(apperr.Invalid, "condition DB %s is a directory, not an SQLite file", name)
	}
	uri := "file:" + escapeURIPath(path) + "?mode=ro&_pragma=busy_timeout(5000)"
	if opt.Immutable {
		uri += "&immutable=1"
	}
	sdb, err := dbdriver.Open(dbdriver.SQLite, uri)
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: %w", name, err)
	}
	db := &DB{sql: sdb, dialect: SQLite(), name: name}
	if err := db.checkSchema(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	name := redact.URL(dsn)
	sdb, err := dbdriver.Open(dbdriver.Postgres, dsn)
	if err != nil {
		return nil, redact.Error(fmt.Errorf("condition DB %s: %w", name, err))
	}
	db := &DB{sql: sdb, dialect: Postgres(), name: name}
	if err := db.checkSchema(ctx); err != nil {
		sdb.Close()
		// A driver's connection error may quote the connection string.
		return nil, redact.Error(err)
	}
	return db, nil
}

// escapeURIPath escapes the characters that end or mangle the path part of an SQLite file: URI.
func escapeURIPath(p string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}

// Name is the DSN the DB was opened with, without secrets.
func (db *DB) Name() string { return db.name }

// Dialect is the engine's dialect.
func (db *DB) Dialect() *Dialect { return db.dialect }

// Close closes the handle.
func (db *DB) Close() error {
	db.mu.Lock()
	for _, st := range db.stmts {
		st.Close()
	}
	db.stmts = nil
	if db.version != nil {
		db.version.Close()
		db.version = nil
	}
	db.mu.Unlock()
	return db.sql.Close()
}

// DataVersion is what SQLite's PRAGMA data_version says of the file as this handle sees it. Two
// calls return equal DataVersions only if no other connection committed a change to the file in
// between (a writer's commit moves it; nothing this read-only handle does can), so a reader that got
// the DataVersion of its previous read knows, for the cost of one pragma whatever the file holds, that
// nothing changed. The zero DataVersion is unknown and equals no other.
type DataVersion struct {
	conn  uint64 // which connection answered: values of different connections do not compare
	value int64
}

// versionConns numbers the connections DataVersion asks, across handles.
var versionConns atomic.Uint64

// DataVersion reads the file's data version (SQLite; the zero DataVersion on PostgreSQL, which has no
// such marker).
func (db *DB) DataVersion(ctx context.Context) (DataVersion, error) {
	if db.dialect.Name != SQLite().Name {
		return DataVersion{}, nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.version == nil {
		c, err := db.sql.Conn(ctx)
		if err != nil {
			return DataVersion{}, fmt.Errorf("condition DB %s: data version: %w", db.name, err)
		}
		db.version, db.versionConn = c, versionConns.Add(1)
	}
	v := DataVersion{conn: db.versionConn}
	if err := db.version.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v.value); err != nil {
		db.version.Close() // perhaps broken: the next call asks another connection
		db.version = nil
		return DataVersion{}, fmt.Errorf("condition DB %s: data version: %w", db.name, err)
	}
	return v, nil
}

// required lists what a CondDB v2 file must have for this package to read it.
var required = map[string][]string{
	"TAG":     {"NAME", "TIME_TYPE", "OBJECT_TYPE", "SYNCHRONIZATION", "END_OF_VALIDITY", "DESCRIPTION", "LAST_VALIDATED_TIME", "INSERTION_TIME", "MODIFICATION_TIME"},
	"IOV":     {"TAG_NAME", "SINCE", "PAYLOAD_HASH", "INSERTION_TIME"},
	"PAYLOAD": {"HASH", "OBJECT_TYPE", "VERSION", "INSERTION_TIME"},
}

func (db *DB) checkSchema(ctx context.Context) error {
	tables, err := db.Tables(ctx)
	if err != nil {
		return err
	}
	for _, t := range []string{"TAG", "IOV", "PAYLOAD"} {
		if !slices.Contains(tables, t) {
			return apperr.Errorf(apperr.Invalid, "condition DB %s is not a CondDB v2 database: no table %s (tables: %s)",
				db.name, t, strings.Join(tables, ", "))
		}
		cols, err := db.Columns(ctx, t)
		if err != nil {
			return err
		}
		for _, want := range required[t] {
			if !slices.ContainsFunc(cols, func(c Column) bool { return c.Name == want }) {
				return apperr.Errorf(apperr.Invalid, "condition DB %s is not a CondDB v2 database: table %s has no column %s", db.name, t, want)
			}
		}
	}
	return nil
}

// Tables lists the user tables, sorted.
func (db *DB) Tables(ctx context.Context) ([]string, error) {
	ts, err := db.dialect.ListTables(ctx, db.sql)
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: listing tables: %w", db.name, err)
	}
	slices.Sort(ts)
	return ts, nil
}

// Columns lists a table's columns in declaration order.
func (db *DB) Columns(ctx context.Context, table string) ([]Column, error) {
	cs, err := db.dialect.ListColumns(ctx, db.sql, table)
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: columns of %s: %w", db.name, table, err)
	}
	return cs, nil
}

func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	q = db.dialect.Rewrite(q)
	st, err := db.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return db.sql.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is query for one row; its error comes with Scan, as database/sql's QueryRow does.
func (db *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	q = db.dialect.Rewrite(q)
	st, err := db.prepared(ctx, q)
	if err != nil || st == nil {
		return db.sql.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// prepared is the prepared statement of a query, prepared now if it is new; nil when too many are kept
// already (the caller runs the query unprepared). Statements are never closed while the DB is open, so
// one handed out stays usable.
func (db *DB) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if st := db.stmts[q]; st != nil {
		return st, nil
	}
	if len(db.stmts) >= maxStmts {
		return nil, nil
	}
	st, err := db.sql.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if db.stmts == nil {
		db.stmts = map[string]*sql.Stmt{}
	}
	db.stmts[q] = st
	return st, nil
}

// Tags lists the tag names, sorted.
func (db *DB) Tags(ctx context.Context) ([]string, error) {
	out, err := queryStrings(ctx, db.sql, db.dialect.Rewrite(`SELECT "NAME" FROM "TAG" ORDER BY "NAME"`))
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: listing tags: %w", db.name, err)
	}
	return out, nil
}

// Tag reads one TAG row; an unknown tag is an apperr.NotFound.
func (db *DB) Tag(ctx context.Context, name string) (TagInfo, error) {
	rows, err := db.query(ctx, `SELECT "NAME", "TIME_TYPE", "OBJECT_TYPE", "SYNCHRONIZATION", "END_OF_VALIDITY",
		"DESCRIPTION", "LAST_VALIDATED_TIME", "INSERTION_TIME", "MODIFICATION_TIME" FROM "TAG" WHERE "NAME" = ?`, name)
	if err != nil {
		return TagInfo{}, fmt.Errorf("condition DB %s: reading tag %s: %w", db.name, name, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return TagInfo{}, fmt.Errorf("condition DB %s: reading tag %s: %w", db.name, name, err)
		}
		return TagInfo{}, apperr.Errorf(apperr.NotFound, "condition DB %s has no tag %s", db.name, name)
	}
	t, err := db.scanTag(rows)
	if err != nil {
		return TagInfo{}, err
	}
	return t, rows.Err()
}

// TagInfos reads the TAG rows of the named tags in one query: those that exist, by name.
func (db *DB) TagInfos(ctx context.Context, names []string) (map[string]TagInfo, error) {
	out := make(map[string]TagInfo, len(names))
	if len(names) == 0 {
		return out, nil
	}
	marks, args := inList(names)
	rows, err := db.query(ctx, `SELECT "NAME", "TIME_TYPE", "OBJECT_TYPE", "SYNCHRONIZATION", "END_OF_VALIDITY",
		"DESCRIPTION", "LAST_VALIDATED_TIME", "INSERTION_TIME", "MODIFICATION_TIME" FROM "TAG" WHERE "NAME" IN (`+marks+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: reading %d tags: %w", db.name, len(names), err)
	}
	defer rows.Close()
	for rows.Next() {
		t, err := db.scanTag(rows)
		if err != nil {
			return nil, err
		}
		out[t.Name] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("condition DB %s: reading %d tags: %w", db.name, len(names), err)
	}
	return out, nil
}

// inList is the placeholders and arguments of an IN list of names.
func inList(names []string) (string, []any) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", "), args
}

// scanTag reads one TAG row of the columns Tag and TagInfos select.
func (db *DB) scanTag(rows *sql.Rows) (TagInfo, error) {
	var (
		t         TagInfo
		tt        string
		eov, lv   sinceValue
		ins, modt timeValue
	)
	if err := rows.Scan(&t.Name, &tt, &t.ObjectType, &t.Synchronization, &eov, &t.Description, &lv, &ins, &modt); err != nil {
		return TagInfo{}, fmt.Errorf("condition DB %s: tag %s: %w", db.name, t.Name, err)
	}
	var err error
	if t.TimeType, err = pcl.ParseTimeType(tt); err != nil {
		return TagInfo{}, fmt.Errorf("condition DB %s: tag %s: TIME_TYPE: %w", db.name, t.Name, err)
	}
	t.EndOfValidity, t.LastValidated = uint64(eov), uint64(lv)
	t.Inserted, t.Modified = time.Time(ins), time.Time(modt)
	return t, nil
}

// IOVCount is what a reader can tell of a tag's IOV rows without reading them: how many there are and
// the newest insertion time, as the database renders it. A row added changes it; CondDB IOV rows are
// never updated in place.
type IOVCount struct {
	Rows   int64
	Newest string
}

// IOVCounts reads the IOVCount of each named tag that has rows, in one query.
func (db *DB) IOVCounts(ctx context.Context, tags []string) (map[string]IOVCount, error) {
	out := make(map[string]IOVCount, len(tags))
	if len(tags) == 0 {
		return out, nil
	}
	marks, args := inList(tags)
	rows, err := db.query(ctx, `SELECT "TAG_NAME", COUNT(*), MAX("INSERTION_TIME") FROM "IOV" WHERE "TAG_NAME" IN (`+
		marks+`) GROUP BY "TAG_NAME"`, args...)
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: counting the IOVs of %d tags: %w", db.name, len(tags), err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			tag    string
			c      IOVCount
			newest any
		)
		if err := rows.Scan(&tag, &c.Rows, &newest); err != nil {
			return nil, fmt.Errorf("condition DB %s: counting IOVs: %w", db.name, err)
		}
		c.Newest = newestText(newest)
		out[tag] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("condition DB %s: counting the IOVs of %d tags: %w", db.name, len(tags), err)
	}
	return out, nil
}

// newestText renders MAX(INSERTION_TIME) as the engine returned it.
func newestText(newest any) string {
	switch v := newest.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// IOVCountsFrom is IOVCounts over the rows of each tag whose SINCE is at or above the tag's floor: a
// tag in floors is counted over [floor, ∞) (an index range of the primary key (TAG_NAME, SINCE,
// INSERTION_TIME), so the cost follows the rows above the floor, not the tag's history); the others
// over all their rows. A tag with no row in its range is absent, as in IOVCounts.
func (db *DB) IOVCountsFrom(ctx context.Context, tags []string, floors map[string]uint64) (map[string]IOVCount, error) {
	var whole []string
	for _, t := range tags {
		if _, ok := floors[t]; !ok {
			whole = append(whole, t)
		}
	}
	out, err := db.IOVCounts(ctx, whole)
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		floor, ok := floors[t]
		if !ok {
			continue
		}
		var c IOVCount
		var newest any
		err := db.queryRow(ctx, `SELECT COUNT(*), MAX("INSERTION_TIME") FROM "IOV" WHERE "TAG_NAME" = ? AND "SINCE" >= ?`,
			t, clampSince(floor)).Scan(&c.Rows, &newest)
		if err != nil {
			return nil, fmt.Errorf("condition DB %s: counting the IOVs of %s from since %d: %w", db.name, t, floor, err)
		}
		if c.Rows > 0 {
			c.Newest = newestText(newest)
			out[t] = c
		}
	}
	return out, nil
}

// InEffect is the since of the IOV in effect at since in a tag: the highest since at or below it. ok
// is false when the tag has none there. One lookup in the primary key, whatever the tag's history.
func (db *DB) InEffect(ctx context.Context, tag string, since uint64) (at uint64, ok bool, err error) {
	var v sql.NullInt64
	if err := db.queryRow(ctx, `SELECT MAX("SINCE") FROM "IOV" WHERE "TAG_NAME" = ? AND "SINCE" <= ?`, tag, clampSince(since)).Scan(&v); err != nil {
		return 0, false, fmt.Errorf("condition DB %s: the IOV of %s in effect at %d: %w", db.name, tag, since, err)
	}
	if !v.Valid || v.Int64 < 0 {
		return 0, false, nil
	}
	return uint64(v.Int64), true, nil
}

// clampSince is a since as SQLite's signed integers compare it: beyond 2^63-1 (only "infinity" in
// practice) it is the largest they hold.
func clampSince(since uint64) int64 {
	if since > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(since)
}

// IOVs reads a tag's IOV rows inserted at or after notBefore (zero: all), ordered by INSERTION_TIME then
// SINCE, at most limit of them (0: no limit). The bound is inclusive so that a reader can resume at a
// timestamp shared by several rows; it skips the ones it already has.
func (db *DB) IOVs(ctx context.Context, tag string, notBefore time.Time, limit int) ([]IOV, error) {
	return db.IOVsFrom(ctx, tag, notBefore, 0, limit)
}

// IOVsFrom is IOVs over the rows whose SINCE is at or above minSince (0: all): an index range of the
// primary key instead of the tag's whole history.
func (db *DB) IOVsFrom(ctx context.Context, tag string, notBefore time.Time, minSince uint64, limit int) ([]IOV, error) {
	q := `SELECT "SINCE", "PAYLOAD_HASH", "INSERTION_TIME" FROM "IOV" WHERE "TAG_NAME" = ?`
	args := []any{tag}
	if minSince > 0 {
		q += ` AND "SINCE" >= ?`
		args = append(args, clampSince(minSince))
	}
	if !notBefore.IsZero() {
		q += ` AND "INSERTION_TIME" >= ?`
		args = append(args, db.dialect.BindTime(notBefore))
	}
	q += ` ORDER BY "INSERTION_TIME", "SINCE"`
	if limit > 0 {
		q += db.dialect.Limit(limit)
	}
	return db.scanIOVs(ctx, tag, q, args...)
}

// PreviousIOV is the IOV that a snapshot at asOf (zero: now) shows just below since: the highest since
// under it, and of that since's rows the newest inserted. ok is false when there is none.
func (db *DB) PreviousIOV(ctx context.Context, tag string, since uint64, asOf time.Time) (iov IOV, ok bool, err error) {
	// SQLite keeps sinces as signed integers; a since beyond 2^63-1 (only "infinity" in practice) would
	// compare as negative, so the bound is clamped and made inclusive.
	op, bound := "<", int64(0)
	if since > math.MaxInt64 {
		op, bound = "<=", math.MaxInt64
	} else {
		bound = int64(since)
	}
	q := `SELECT "SINCE", "PAYLOAD_HASH", "INSERTION_TIME" FROM "IOV" WHERE "TAG_NAME" = ? AND "SINCE" ` + op + ` ?`
	args := []any{tag, bound}
	if !asOf.IsZero() {
		q += ` AND "INSERTION_TIME" <= ?`
		args = append(args, db.dialect.BindTime(asOf))
	}
	q += ` ORDER BY "SINCE" DESC, "INSERTION_TIME" DESC` + db.dialect.Limit(1)
	iovs, err := db.scanIOVs(ctx, tag, q, args...)
	if err != nil || len(iovs) == 0 {
		return IOV{}, false, err
	}
	return iovs[0], true, nil
}

func (db *DB) scanIOVs(ctx context.Context, tag, q string, args ...any) ([]IOV, error) {
	rows, err := db.query(ctx, q, args...)
	out, err := collect(rows, err, func(rows *sql.Rows, i int) (IOV, error) {
		var (
			s   sinceValue
			ins timeValue
			iov = IOV{Tag: tag}
		)
		if err := rows.Scan(&s, &iov.Payload, &ins); err != nil {
			return iov, fmt.Errorf("IOV %d: %w", i+1, err)
		}
		iov.Since, iov.Inserted = uint64(s), time.Time(ins)
		return iov, nil
	})
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: reading IOVs of %s: %w", db.name, tag, err)
	}
	return out, nil
}

// Payloads lists the PAYLOAD rows without their blobs, ordered by hash.
func (db *DB) Payloads(ctx context.Context) ([]PayloadInfo, error) {
	rows, err := db.query(ctx, `SELECT "HASH", "OBJECT_TYPE", "VERSION", "INSERTION_TIME" FROM "PAYLOAD" ORDER BY "HASH"`)
	out, err := collect(rows, err, func(rows *sql.Rows, i int) (p PayloadInfo, err error) {
		var ins timeValue
		if err := rows.Scan(&p.Hash, &p.ObjectType, &p.Version, &ins); err != nil {
			return p, fmt.Errorf("payload %d: %w", i+1, err)
		}
		p.Inserted = time.Time(ins)
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("condition DB %s: reading payloads: %w", db.name, err)
	}
	return out, nil
}
