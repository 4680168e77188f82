// Package sqlite is Spy Agency's embedded store: store.Store on SQLite through modernc.org/sqlite (pure Go,
// no cgo), in WAL mode, with its schema in embedded migrations.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

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
}

// defaultLimit is what RunStates, Audit, Outbox, PendingOutbox and DueRuns return when given no limit.
const defaultLimit = 100

// Store is store.Store on one SQLite file.
//
// Connections: SQLite allows one writer at a time per file, and a second writing connection that loses
// the race gets SQLITE_BUSY (or waits up to busy_timeout, and can still fail when a deferred read
// transaction tries to upgrade to a write). So every write goes through `writer`, a pool of exactly one
// connection: database/sql queues the writers in Go, where waiting is cheap and fair, instead of inside
// SQLite's busy handler. Its transactions start with BEGIN IMMEDIATE so that a second process on the same
// file (a CLI `token create` next to a running server) waits on busy_timeout rather than failing an
// upgrade. Reads go through `reader`, a small pool of query_only connections: WAL lets them run alongside
// the writer and see the last committed state.
type Store struct {
	path   string
	writer *sql.DB
	reader *sql.DB
	now    func() time.Time
	log    *slog.Logger
	closed atomic.Bool
	late   atomic.Uint64 // distinct facts of compacted runs turned away (LateObservations)

	summaries summaryMemo     // the release view's decoded decisions (openwork.go)
	states    store.StateMemo // decoded run states by their stored bytes
}

var _ store.Store = (*Store)(nil)

// OpenDSN opens the store named by a DSN of the form sqlite:PATH (sqlite://PATH is accepted too).
func OpenDSN(ctx context.Context, dsn string, opts Options) (*Store, error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok || scheme != "sqlite" {
		return nil, apperr.Errorf(apperr.Invalid, "store DSN %q: want sqlite:PATH", dsn)
	}
	rest = strings.TrimPrefix(rest, "//")
	if rest == "" {
		return nil, apperr.Errorf(apperr.Invalid, "store DSN %q: no file path after sqlite:", dsn)
	}
	return Open(ctx, rest, opts)
}

// Open opens (creating if needed) the SQLite store at path and brings its schema up to date. It refuses,
// without creating or changing anything, a path in a missing directory, a file that is not an SQLite
// database, a file it cannot write, and a database whose schema is newer than this code.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	return open(ctx, path, opts, connConfig{})
}

// connConfig holds connection settings that only tests change.
type connConfig struct {
	// readOnly opens every connection with mode=ro: how tests, which run as root and so can write any
	// file, see what a store on a read-only file does.
	readOnly bool
}

func open(ctx context.Context, path string, opts Options, cc connConfig) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := preflight(path); err != nil {
		return nil, err
	}
	s := &Store{path: path, now: opts.Now, log: opts.Logger.With("store", path)}
	fresh := newLeftovers(path)
	writer, err := openCached("sqlite", connString(path, false, cc))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	s.writer = writer
	if err := s.prepareFile(ctx); err != nil {
		writer.Close()
		fresh.remove()
		return nil, err
	}
	reader, err := openCached("sqlite", connString(path, true, cc))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	reader.SetMaxOpenConns(4)
	reader.SetMaxIdleConns(4)
	s.reader = reader
	return s, nil
}

// Close releases both connection pools. Calls after Close fail with apperr.Unavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	errW := s.writer.Close()
	errR := s.reader.Close()
	if err := errors.Join(errW, errR); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

func (s *Store) usable() error {
	if s.closed.Load() {
		return apperr.Errorf(apperr.Unavailable, "store %s is closed", s.path)
	}
	return nil
}

// write runs fn in a write transaction (BEGIN IMMEDIATE on the single writer connection) and commits
// when fn returns nil.
func (s *Store) write(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return s.wrap(what, err)
	}
	if err := tx.Commit(); err != nil {
		return s.wrap(what, err)
	}
	return nil
}

// wrap adds the operation and the file to an error, keeping apperr codes and turning SQLite's own
// conditions into messages a person can act on.
func (s *Store) wrap(what string, err error) error {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	if s.closed.Load() {
		return apperr.Errorf(apperr.Unavailable, "%s: store %s is closed: %w", what, s.path, err)
	}
	switch sqliteCode(err) {
	case sqlite3.SQLITE_READONLY:
		return apperr.Errorf(apperr.Unavailable, "%s: store %s is read-only: %w", what, s.path, err)
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return apperr.Errorf(apperr.Internal, "%s: store %s is corrupt: %w", what, s.path, err)
	case sqlite3.SQLITE_FULL:
		return apperr.Errorf(apperr.Unavailable, "%s: store %s: disk full: %w", what, s.path, err)
	}
	return fmt.Errorf("%s (store %s): %w", what, s.path, err)
}

// sqliteCode is the primary SQLite result code in err's chain, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// Times are stored as Unix nanoseconds (see the migrations); the zero time is NULL.

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// The times a Unix-nanosecond integer can hold.

// limitOr returns n, or def when n is not positive.
func limitOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}
