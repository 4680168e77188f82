package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
)

// Prepared statements, kept per connection. database/sql hands a query with its text to the driver,
// and modernc.org/sqlite parses and plans that text again on every call: a fifth of the store's time in
// the study went to SQLite's parser, for the same few dozen statements executed every minute. The
// store's connections are therefore wrapped so that each keeps the statements it ran repeatedly,
// prepared, and runs them again with new arguments; the driver resets a statement after each use.
//
// What is not cached is run as before: a text seen fewer than cacheAfter times (a migration, a
// statement built with a variable IN list), anything beyond maxCachedStmts, and a statement whose
// cached copy is still in use on the same connection (its rows not yet closed while the same text is
// asked again).

const (
	// cacheAfter is how many times a text runs on a connection before it is kept prepared.
	cacheAfter = 3
	// maxCachedStmts bounds the statements one connection keeps.
	maxCachedStmts = 128
	// maxSeenTexts bounds the texts counted towards cacheAfter; the counts start again beyond it.
	maxSeenTexts = 1024
)

// stmtConnector opens connections of drv on dsn, each keeping its repeated statements prepared.
type stmtConnector struct {
	drv driver.Driver
	dsn string
}

// openCached opens a pool of the registered driver name on dsn whose connections keep their
// repeated statements prepared.
func openCached(name, dsn string) (*sql.DB, error) {
	// sql.Open connects to nothing: it only finds the registered driver, which is then wrapped.
	probe, err := sql.Open(name, dsn)
	if err != nil {
		return nil, err
	}
	drv := probe.Driver()
	probe.Close()
	return sql.OpenDB(stmtConnector{drv: drv, dsn: dsn}), nil
}

func (c stmtConnector) Connect(ctx context.Context) (driver.Conn, error) {
	var dc driver.Conn
	var err error
	if dctx, ok := c.drv.(driver.DriverContext); ok {
		var conn driver.Connector
		if conn, err = dctx.OpenConnector(c.dsn); err == nil {
			dc, err = conn.Connect(ctx)
		}
	} else {
		dc, err = c.drv.Open(c.dsn)
	}
	if err != nil {
		return nil, err
	}
	return newCachedConn(dc)
}

func (c stmtConnector) Driver() driver.Driver { return c.drv }

// inner is what the wrapped connection must offer; modernc.org/sqlite's does.
type inner interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
}

type cachedConn struct {
	c     inner
	stmts map[string]*cachedStmt
	seen  map[string]int
}

type cachedStmt struct {
	ds   driver.Stmt
	busy bool // its rows are open
}

func newCachedConn(dc driver.Conn) (driver.Conn, error) {
	c, ok := dc.(inner)
	if !ok {
		dc.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods the store needs", dc)
	}
	return &cachedConn{c: c, stmts: map[string]*cachedStmt{}, seen: map[string]int{}}, nil
}

// stmt is the cached statement for query, prepared now if the text has run often enough, or nil when
// the query is to run uncached. database/sql uses a connection from one goroutine at a time, so no
// lock is needed.
func (c *cachedConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if st, ok := c.stmts[query]; ok {
		if st.busy {
			return nil, nil
		}
		return st, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil, nil
	}
	n := c.seen[query] + 1
	if n < cacheAfter {
		if len(c.seen) >= maxSeenTexts {
			clear(c.seen)
		}
		c.seen[query] = n
		return nil, nil
	}
	delete(c.seen, query)
	ds, err := c.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if _, ok := ds.(driver.StmtExecContext); !ok {
		ds.Close()
		return nil, nil
	}
	if _, ok := ds.(driver.StmtQueryContext); !ok {
		ds.Close()
		return nil, nil
	}
	st := &cachedStmt{ds: ds}
	c.stmts[query] = st
	return st, nil
}

func (c *cachedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.c.ExecContext(ctx, query, args)
	}
	st.busy = true
	defer func() { st.busy = false }()
	return st.ds.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return c.c.QueryContext(ctx, query, args)
	}
	rows, err := st.ds.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	st.busy = true
	return &cachedRows{Rows: rows, st: st}, nil
}

func (c *cachedConn) Prepare(query string) (driver.Stmt, error) { return c.c.Prepare(query) }
func (c *cachedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.c.PrepareContext(ctx, query)
}
func (c *cachedConn) Begin() (driver.Tx, error) {
	return c.c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c *cachedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.c.BeginTx(ctx, opts)
}

// Close finalizes the kept statements before the connection, which SQLite would otherwise keep open
// (a "zombie") for as long as any statement of it lives.
func (c *cachedConn) Close() error {
	var errs []error
	for q, st := range c.stmts {
		errs = append(errs, st.ds.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.c.Close())
	return errors.Join(errs...)
}

func (c *cachedConn) Ping(ctx context.Context) error {
	if p, ok := c.c.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.c.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachedConn) IsValid() bool {
	if v, ok := c.c.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// cachedRows frees its statement for the next use when closed, and passes on the column types the
// driver gives.
type cachedRows struct {
	driver.Rows
	st *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.st.busy = false
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

var (
	_ driver.ExecerContext      = (*cachedConn)(nil)
	_ driver.QueryerContext     = (*cachedConn)(nil)
	_ driver.ConnBeginTx        = (*cachedConn)(nil)
	_ driver.ConnPrepareContext = (*cachedConn)(nil)
	_ driver.Pinger             = (*cachedConn)(nil)
	_ driver.SessionResetter    = (*cachedConn)(nil)
	_ driver.Validator          = (*cachedConn)(nil)
)
