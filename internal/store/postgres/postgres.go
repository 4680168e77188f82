// Package postgres is store.Store on PostgreSQL (15 and later), the store of a replicated deployment:
// several Spy Agency processes on one database. It passes the same conformance suite as the embedded
// SQLite store (internal/store/storetest), and keeps its schema in embedded migrations of its own.
//
// It talks to the server through pgx v5's own pool (pgxpool), not through database/sql: the pool is
// what database/sql would add, and the native interface binds Go slices to PostgreSQL arrays, so a
// batch of observations is one INSERT ... SELECT FROM unnest(...) instead of one statement per fact,
// and the listening connection that live updates across replicas will need is pgx's anyway.
//
// What the SQLite store gets from having a single writer, this one gets from the database:
//   - Seq: observations take their sequence numbers from a counter row that each append updates in its
//     transaction. The row lock makes appends take turns, so a number handed out later is committed
//     later, and a reader never sees seq N+1 before N (a PostgreSQL sequence would not promise that).
//   - Decision versions: (run, version) is the primary key; of two writers racing for one version the
//     second fails on it, which is apperr.Conflict.
//   - Every multi-row write (a decision with its outbox and audit, an override with its audit, an
//     evaluation's alerts) is one transaction.
//
// For several processes on one database it also keeps the leader lease and fences the leader-only
// writes with its epoch (lease.go); the app does not take the lease yet.
//
// Nothing holds a session-level lock or state (an advisory lock, a temporary table, a SET outside a
// transaction), so the store works behind a connection pooler in transaction mode. pgx prepares and
// caches statements by default; behind PgBouncer older than 1.21 add default_query_exec_mode=exec to
// the DSN. The DSN's search_path (postgres://...?search_path=NAME) puts the store's tables in a schema
// of their own; the tests use that to give each test its own store on one server.
//
// Times are stored as Unix nanoseconds, as in the SQLite store (see migrations/0001_init.sql).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Options tunes a Store. The zero value is usable.
type Options struct {
	// Now is the store's clock for the times it fills in itself (a decision's Decided, an audit entry's
	// At, a cursor's update time). Default time.Now.
	Now func() time.Time
	// Logger receives migration and open messages. Default: discarded.
	Logger *slog.Logger
	// TxIdleTimeout is the longest one of this store's transactions may sit idle on the server between
	// two statements (PostgreSQL's idle_in_transaction_session_timeout) before the server ends its
	// session and so its locks. A process frozen inside a transaction (SIGSTOP, a paused VM, a long GC
	// stall) must not hold the lease row, or any row, for longer than that: a replica taking over the
	// lease would wait on it. Replicas set it below the lease TTL. Default 5s; a value the DSN sets
	// itself (options=-c idle_in_transaction_session_timeout=...) wins.
	TxIdleTimeout time.Duration
}

// defaultTxIdleTimeout is Options.TxIdleTimeout's default: a third of the default lease TTL.
const defaultTxIdleTimeout = 5 * time.Second

// defaultLimit is what RunStates, Audit, Outbox, PendingOutbox and DueRuns return when given no limit.
const defaultLimit = 100

// Store is store.Store on a PostgreSQL database.
type Store struct {
	name   string // host:port/database, never the password: for messages
	pool   *pgxpool.Pool
	now    func() time.Time
	log    *slog.Logger
	closed *atomic.Bool     // shared with the Fenced views
	late   *atomic.Uint64   // distinct facts of compacted runs turned away (LateObservations); shared too
	states *store.StateMemo // decoded run states by their stored bytes; shared too
	// fence, set on a Fenced view, is the lease epoch its leader-only writes must still hold.
	fence *fence
}

var _ store.Store = (*Store)(nil)

// IsDSN says whether dsn names a PostgreSQL store (postgres:// or postgresql://).
func IsDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to the database a postgres:// DSN names and brings the store's schema up to date. It
// refuses, changing nothing, a DSN it cannot parse, a server it cannot reach, and a schema newer than
// this code.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if !IsDSN(dsn) {
		return nil, apperr.Errorf(apperr.Invalid, "store: want a postgres://... DSN")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message can quote the DSN, password and all: say what is wrong without it.
		return nil, apperr.Errorf(apperr.Invalid, "store: cannot parse the postgres:// DSN (see https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-CONNSTRING)")
	}
	name := fmt.Sprintf("postgres %s/%s", net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port)), cfg.ConnConfig.Database)
	if sp := cfg.ConnConfig.RuntimeParams["search_path"]; sp != "" {
		name += " (schema " + sp + ")"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if opts.TxIdleTimeout <= 0 {
		opts.TxIdleTimeout = defaultTxIdleTimeout
	}
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(max(opts.TxIdleTimeout.Milliseconds(), 1))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "store %s: %w", name, err)
	}
	s := &Store{name: name, pool: pool, now: opts.Now, log: opts.Logger.With("store", name), closed: new(atomic.Bool), late: new(atomic.Uint64),
		states: new(store.StateMemo)}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, apperr.Errorf(apperr.Unavailable, "store %s: cannot connect: %w", name, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pool. Calls after Close fail with apperr.Unavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return nil
}

// Name says which database the store is on (host, port, database, schema), without credentials.
func (s *Store) Name() string { return s.name }

func (s *Store) usable() error {
	if s.closed.Load() {
		return apperr.Errorf(apperr.Unavailable, "%s is closed", s.name)
	}
	return nil
}

// write runs fn in a transaction and commits when fn returns nil.
func (s *Store) write(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return s.wrap(what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(what, err)
	}
	return nil
}

// PostgreSQL's error codes the store tells apart (Appendix A of its manual).
const (
	codeUniqueViolation = "23505"
	codeForeignKey      = "23503"
	codeCheckViolation  = "23514"
	codeBadEncoding     = "22021" // character_not_in_repertoire: invalid UTF-8, or a NUL byte
	codeUntranslatable  = "22P05"
	codeReadOnly        = "25006"
	codeDiskFull        = "53100"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUnique says whether err is a unique-key violation.
func isUnique(err error) bool { return pgCode(err) == codeUniqueViolation }

// wrap adds the operation and the database to an error, keeping apperr codes and turning the server's
// conditions into messages a person can act on.
func (s *Store) wrap(what string, err error) error {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	if s.closed.Load() {
		return apperr.Errorf(apperr.Unavailable, "%s: %s is closed: %w", what, s.name, err)
	}
	switch pgCode(err) {
	case codeBadEncoding, codeUntranslatable:
		return apperr.Errorf(apperr.Invalid, "%s: %s refuses the text (PostgreSQL stores valid UTF-8 without NUL bytes): %w", what, s.name, err)
	case codeCheckViolation, codeForeignKey:
		return apperr.Errorf(apperr.Invalid, "%s (%s): %w", what, s.name, err)
	case codeReadOnly:
		return apperr.Errorf(apperr.Unavailable, "%s: %s is read-only (a standby?): %w", what, s.name, err)
	case codeDiskFull:
		return apperr.Errorf(apperr.Unavailable, "%s: %s: disk full: %w", what, s.name, err)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnErr(err) {
		return apperr.Errorf(apperr.Unavailable, "%s: %s is unreachable: %w", what, s.name, err)
	}
	return fmt.Errorf("%s (%s): %w", what, s.name, err)
}

func isConnErr(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce)
}

// Times are stored as Unix nanoseconds; the zero time is NULL.

func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// limitOr returns n, or def when n is not positive.
func limitOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// args collects the arguments of a query and names their placeholders ($1, $2, ...).
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// scanner is a row or rows.
type scanner interface{ Scan(...any) error }
