package conddbv2

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dialect holds everything that differs between the SQL engines a condition DB lives in. Queries are
// written once with "?" placeholders and upper-case identifiers; the dialect rewrites them.
type Dialect struct {
	// Name names the engine in error messages.
	Name string
	// Placeholder renders the n-th (1-based) bind parameter; nil keeps "?".
	Placeholder func(n int) string
	// IdentQuote replaces the standard double quote around identifiers (CondDB's upper-case names must be
	// quoted on case-folding engines); 0 keeps '"', which SQLite, PostgreSQL and Oracle all accept.
	IdentQuote rune
	// Limit renders the clause that keeps the first n rows (Oracle would say FETCH FIRST n ROWS ONLY).
	Limit func(n int) string
	// BindTime turns a time into the value compared against a timestamp column. SQLite files keep
	// timestamps as text, so it must be text in exactly CMSSW's layout for comparisons to hold.
	BindTime func(t time.Time) any
	// ListTables lists the user tables.
	ListTables func(ctx context.Context, q querier) ([]string, error)
	// ListColumns lists a table's columns in declaration order.
	ListColumns func(ctx context.Context, q querier, table string) ([]Column, error)
}

// Column is one column of a table as the engine declares it.
type Column struct {
	Name    string
	Type    string // the declared type, e.g. ULONGLONG, TIMESTAMP
	NotNull bool
	PK      int // position in the primary key, 0 if not part of it
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Rewrite turns a query written with "?" placeholders and double-quoted upper-case identifiers into the
// dialect's form. Queries hold no string literals with '?' or '"', so a plain scan is enough.
func (d *Dialect) Rewrite(query string) string {
	if d.Placeholder == nil && (d.IdentQuote == 0 || d.IdentQuote == '"') {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		switch {
		case r == '?' && d.Placeholder != nil:
			n++
			b.WriteString(d.Placeholder(n))
		case r == '"' && d.IdentQuote != 0:
			b.WriteRune(d.IdentQuote)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// timeLayout is how CMSSW writes timestamps into SQLite files: UTC, microseconds, a space before the
// clock. Fixed-width fractions keep text comparison equal to time comparison.
const timeLayout = "2006-01-02 15:04:05.000000"

// FormatTime renders t as CMSSW writes it into SQLite files.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// SQLite is the dialect of CondDB files written by CMSSW (every PCL payload file, and the simulator's
// condition DB).
func SQLite() *Dialect {
	return &Dialect{
		Name:        "sqlite",
		Limit:       limitClause,
		BindTime:    func(t time.Time) any { return FormatTime(t) },
		ListTables:  sqliteTables,
		ListColumns: sqliteColumns,
	}
}

// Postgres is the dialect of a PostgreSQL copy of the schema (quoted upper-case identifiers, $n
// placeholders, TIMESTAMP columns), opened through the dbdriver.Postgres driver.
func Postgres() *Dialect {
	return &Dialect{
		Name:        "postgres",
		Limit:       limitClause,
		Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		BindTime:    func(t time.Time) any { return t.UTC() },
		ListTables: func(ctx context.Context, q querier) ([]string, error) {
			return queryStrings(ctx, q, `SELECT table_name FROM information_schema.tables
				WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
		},
		ListColumns: func(ctx context.Context, q querier, table string) ([]Column, error) {
			rows, err := q.QueryContext(ctx, `SELECT column_name, upper(data_type), is_nullable = 'NO'
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1
				ORDER BY ordinal_position`, table)
			return collect(rows, err, func(rows *sql.Rows, _ int) (c Column, err error) {
				return c, rows.Scan(&c.Name, &c.Type, &c.NotNull)
			})
		},
	}
}

func sqliteTables(ctx context.Context, q querier) ([]string, error) {
	return queryStrings(ctx, q, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
}

func sqliteColumns(ctx context.Context, q querier, table string) ([]Column, error) {
	// PRAGMA table_info cannot take a bind parameter; the name is quoted instead.
	rows, err := q.QueryContext(ctx, `PRAGMA table_info(`+quoteIdent(table)+`)`)
	return collect(rows, err, func(rows *sql.Rows, _ int) (c Column, err error) {
		var (
			cid, notNull int
			dflt         sql.NullString
		)
		err = rows.Scan(&cid, &c.Name, &c.Type, &notNull, &dflt, &c.PK)
		c.NotNull = notNull != 0
		return c, err
	})
}

func limitClause(n int) string { return " LIMIT " + strconv.Itoa(n) }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	return collect(rows, err, func(rows *sql.Rows, _ int) (s string, err error) { return s, rows.Scan(&s) })
}

// collect reads every row of a query with scan (given the row's index, for messages) and closes the
// rows; err is the query's own error, so that a call reads collect(q.QueryContext(...), scan).
func collect[T any](rows *sql.Rows, err error, scan func(rows *sql.Rows, i int) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows, len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// sinceValue scans a SINCE or END_OF_VALIDITY column. SQLite has only signed 64-bit integers, so CMSSW
// stores values above 2^63-1 (infinity above all) as their two's complement: -1 is 2^64-1. Other engines
// give NUMERIC values as text.
type sinceValue uint64

func (s *sinceValue) Scan(v any) error {
	switch x := v.(type) {
	case int64:
		*s = sinceValue(uint64(x))
	case uint64:
		*s = sinceValue(x)
	case float64:
		if x < 0 || x != float64(uint64(x)) {
			return fmt.Errorf("since %v is not an unsigned integer", x)
		}
		*s = sinceValue(uint64(x))
	case []byte:
		return s.Scan(string(x))
	case string:
		t := strings.TrimSpace(x)
		if u, err := strconv.ParseUint(t, 10, 64); err == nil {
			*s = sinceValue(u)
			return nil
		}
		i, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return fmt.Errorf("since %q is not an integer", x)
		}
		*s = sinceValue(uint64(i))
	case nil:
		return fmt.Errorf("since is NULL")
	default:
		return fmt.Errorf("since has unexpected type %T", v)
	}
	return nil
}

// timeValue scans a timestamp column. Drivers hand back either a time.Time (a column declared
// TIMESTAMP whose text they could parse) or the text itself, e.g. "2019-10-24 13:52:14.024101" in UTC.
type timeValue time.Time

var textLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"2006-01-02",
}

func (tv *timeValue) Scan(v any) error {
	switch x := v.(type) {
	case time.Time:
		*tv = timeValue(x.UTC())
		return nil
	case []byte:
		return tv.Scan(string(x))
	case string:
		t, err := ParseTime(x)
		if err != nil {
			return err
		}
		*tv = timeValue(t)
		return nil
	case nil:
		return fmt.Errorf("timestamp is NULL")
	}
	return fmt.Errorf("timestamp has unexpected type %T", v)
}

// ParseTime reads a timestamp as CondDB files store it as text. Times without a zone are UTC.
func ParseTime(s string) (time.Time, error) {
	t := strings.TrimSpace(s)
	for _, l := range textLayouts {
		if p, err := time.Parse(l, t); err == nil {
			return p.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not in a known layout (e.g. 2019-10-24 13:52:14.024101)", s)
}
