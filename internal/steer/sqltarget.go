package steer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/dbdriver"
	"github.com/cms-pcl/spyagency/internal/redact"
)

// DefaultTable is the table Tier-0 reads when no other is configured.
const DefaultTable = "spyagency_readiness"

// Dialect is the SQL flavour of the database Tier-0 reads: PostgreSQL in production, SQLite for tests
// and small set-ups. Both take the same upsert (INSERT ... ON CONFLICT ... DO UPDATE ... WHERE); they
// differ in placeholders and column types.
type Dialect string

const (
	DialectPostgres Dialect = "postgres"
	DialectSQLite   Dialect = "sqlite"
)

func (d Dialect) check() error {
	if d != DialectPostgres && d != DialectSQLite {
		return fmt.Errorf("unknown SQL dialect %q (want %s or %s)", d, DialectPostgres, DialectSQLite)
	}
	return nil
}

func (d Dialect) param(i int) string {
	if d == DialectPostgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// timeArg is how a timestamp is bound: PostgreSQL has timestamptz; SQLite has no time type, and text in
// RFC 3339 (UTC, so that it also sorts) is what a person reading the table expects.
func (d Dialect) timeArg(t time.Time) any {
	if d == DialectPostgres {
		return t.UTC()
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// tableName allows a plain or schema-qualified identifier: it is spliced into SQL, so nothing else.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

func checkTable(table string) error {
	if !tableName.MatchString(table) {
		return fmt.Errorf("table name %q: want letters, digits and underscores, optionally schema.table", table)
	}
	return nil
}

// DDL is the statement that creates the table in a dialect: one row per run, the newest version wins.
func DDL(d Dialect, table string) (string, error) {
	if err := d.check(); err != nil {
		return "", err
	}
	if err := checkTable(table); err != nil {
		return "", err
	}
	if d == DialectPostgres {
		return `CREATE TABLE IF NOT EXISTS ` + table + ` (
    run      BIGINT      PRIMARY KEY,
    ready    BOOLEAN     NOT NULL,
    state    TEXT        NOT NULL,
    version  BIGINT      NOT NULL,
    decided  TIMESTAMPTZ NOT NULL,
    reason   TEXT        NOT NULL DEFAULT '',
    updated  TIMESTAMPTZ NOT NULL DEFAULT now()
)`, nil
	}
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
    run      INTEGER PRIMARY KEY,
    ready    INTEGER NOT NULL CHECK (ready IN (0, 1)),
    state    TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    decided  TEXT    NOT NULL,
    reason   TEXT    NOT NULL DEFAULT '',
    updated  TEXT    NOT NULL DEFAULT ''
)`, nil
}

// SQLTargetOptions configures an SQLTarget.
type SQLTargetOptions struct {
	Name    string  // the outbox target name
	DB      *sql.DB // the database Tier-0 reads
	Dialect Dialect
	Table   string      // default DefaultTable
	Clock   clock.Clock // stamps the updated column; default the wall clock
}

// SQLTarget upserts each decision into a table that Tier-0 reads, keeping per run only the newest version:
// a redelivery or an older version arriving late changes nothing.
type SQLTarget struct {
	o      SQLTargetOptions
	upsert string
	owned  bool // the target opened DB and closes it
}

// NewSQLTarget checks the options. The caller keeps DB and closes it.
func NewSQLTarget(o SQLTargetOptions) (*SQLTarget, error) {
	if strings.TrimSpace(o.Name) == "" {
		return nil, errors.New("steer: SQL target has no name")
	}
	if o.DB == nil {
		return nil, fmt.Errorf("steer: SQL target %s: no database", o.Name)
	}
	if err := o.Dialect.check(); err != nil {
		return nil, fmt.Errorf("steer: SQL target %s: %w", o.Name, err)
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if err := checkTable(o.Table); err != nil {
		return nil, fmt.Errorf("steer: SQL target %s: %w", o.Name, err)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	p := o.Dialect.param
	// "cur" names the stored row: a schema-qualified table cannot be named by its bare name in the WHERE.
	upsert := fmt.Sprintf(`INSERT INTO %s AS cur (run, ready, state, version, decided, reason, updated)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run) DO UPDATE SET ready = excluded.ready, state = excluded.state, version = excluded.version,
    decided = excluded.decided, reason = excluded.reason, updated = excluded.updated
WHERE excluded.version > cur.version`, o.Table, p(1), p(2), p(3), p(4), p(5), p(6), p(7))
	return &SQLTarget{o: o, upsert: upsert}, nil
}

// OpenSQLTarget opens the database named by dsn (postgres://... or postgresql://... through the
// dbdriver.Postgres driver; sqlite:PATH through dbdriver.SQLite; the program registers them) and makes a
// target on it that closes it on Close. It does not connect: a database that is down at start is a retry,
// not a refusal to start; call Check to report it.
func OpenSQLTarget(name, dsn, table string) (*SQLTarget, error) {
	driver, source, dialect, err := splitDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("steer: SQL target %s: %w", name, err)
	}
	db, err := dbdriver.Open(driver, source)
	if err != nil {
		return nil, fmt.Errorf("steer: SQL target %s: %w", name, err)
	}
	if dialect == DialectSQLite {
		db.SetMaxOpenConns(1) // SQLite has one writer; queue in Go rather than fail on a busy file
	}
	t, err := NewSQLTarget(SQLTargetOptions{Name: name, DB: db, Dialect: dialect, Table: table})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	t.owned = true
	return t, nil
}

func splitDSN(dsn string) (driver, source string, d Dialect, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return dbdriver.Postgres, dsn, DialectPostgres, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if path == "" {
			return "", "", "", fmt.Errorf("DSN %q: no file path after sqlite:", dsn)
		}
		esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
		return dbdriver.SQLite, "file:" + esc + "?_pragma=busy_timeout(10000)", DialectSQLite, nil
	}
	return "", "", "", fmt.Errorf("DSN %q: want postgres://... or sqlite:PATH", redact.URL(dsn))
}

// Name is the outbox target name.
func (t *SQLTarget) Name() string { return t.o.Name }

// Table is the table written.
func (t *SQLTarget) Table() string { return t.o.Table }

// CreateTable creates the table if it does not exist; where Tier-0's DBAs own the schema they run DDL
// themselves instead.
func (t *SQLTarget) CreateTable(ctx context.Context) error {
	ddl, err := DDL(t.o.Dialect, t.o.Table)
	if err != nil {
		return err
	}
	if _, err := t.o.DB.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("steer: SQL target %s: create table %s: %w", t.o.Name, t.o.Table, err)
	}
	return nil
}

// Check verifies, without writing, that the table exists with the columns the upsert writes: a start-up
// check that turns a misconfiguration into a message now rather than into retries later.
func (t *SQLTarget) Check(ctx context.Context) error {
	rows, err := t.o.DB.QueryContext(ctx, "SELECT run, ready, state, version, decided, reason, updated FROM "+t.o.Table+" WHERE 1 = 0")
	if err != nil {
		return fmt.Errorf("steer: SQL target %s: table %s is not usable: %w", t.o.Name, t.o.Table, err)
	}
	return rows.Close()
}

// Deliver upserts the decision. Every database error is treated as retryable: an unreachable server, a
// fail-over or a table being migrated all heal, and MaxAttempts bounds the rest.
func (t *SQLTarget) Deliver(ctx context.Context, d Delivery) error {
	dec := d.Decision
	_, err := t.o.DB.ExecContext(ctx, t.upsert, int64(dec.Run), dec.Releasable, string(dec.State), dec.Version,
		t.o.Dialect.timeArg(dec.Decided), dec.Reason, t.o.Dialect.timeArg(t.o.Clock.Now()))
	if err != nil {
		return fmt.Errorf("SQL target %s: upsert run %d v%d into %s: %w", t.o.Name, dec.Run, dec.Version, t.o.Table, err)
	}
	return nil
}

// Close closes the database if OpenSQLTarget opened it.
func (t *SQLTarget) Close() error {
	if t.owned {
		return t.o.DB.Close()
	}
	return nil
}
