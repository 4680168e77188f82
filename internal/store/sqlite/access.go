package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// API tokens and login sessions (migration 0008). Only hashes are kept; internal/access makes and
// checks the tokens and sessions themselves.

// sessionMemory is how long an expired or ended session is kept before CreateSession forgets it: long
// enough to tell "your session expired" from "unknown session" for a day, short enough that the table
// holds open sessions rather than the history of logins.
const sessionMemory = 24 * time.Hour

// CreateToken stores a new token; a live token of the same name, or the same hash, is a conflict.
func (s *Store) CreateToken(ctx context.Context, t store.APIToken) error {
	switch {
	case t.Hash == "" || t.Name == "" || t.Scope == "":
		return apperr.Errorf(apperr.Invalid, "create token: hash, name and scope are required")
	case t.Created.IsZero():
		return apperr.Errorf(apperr.Invalid, "create token %s: no creation time", t.Name)
	}
	if err := store.Storable(t.Created, t.Expires, t.LastUsed, t.Revoked); err != nil {
		return apperr.Errorf(apperr.Invalid, "create token %s: %w", t.Name, err)
	}
	return s.write(ctx, "create token "+t.Name, func(tx *sql.Tx) error {
		var live int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM api_tokens WHERE (name = ? AND revoked IS NULL) OR hash = ?",
			t.Name, t.Hash).Scan(&live); err != nil {
			return err
		}
		if live > 0 {
			return apperr.Errorf(apperr.Conflict, "a live token named %s exists already: revoke it first, or choose another name", t.Name)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO api_tokens (hash, name, scope, created, expires, last_used, revoked) VALUES (?, ?, ?, ?, ?, ?, ?)",
			t.Hash, t.Name, t.Scope, t.Created.UnixNano(), nanos(t.Expires), nanos(t.LastUsed), nanos(t.Revoked))
		return err
	})
}

const tokenColumns = "hash, name, scope, created, expires, last_used, revoked"

func scanToken(row interface{ Scan(...any) error }) (store.APIToken, error) {
	var t store.APIToken
	var created int64
	var expires, used, revoked sql.NullInt64
	if err := row.Scan(&t.Hash, &t.Name, &t.Scope, &created, &expires, &used, &revoked); err != nil {
		return store.APIToken{}, err
	}
	t.Created = time.Unix(0, created).UTC()
	t.Expires, t.LastUsed, t.Revoked = fromNanos(expires), fromNanos(used), fromNanos(revoked)
	return t, nil
}

// TokenByHash returns the token with that hash.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	if err := s.usable(); err != nil {
		return store.APIToken{}, err
	}
	t, err := scanToken(s.reader.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.APIToken{}, apperr.Errorf(apperr.NotFound, "unknown token")
	}
	if err != nil {
		return store.APIToken{}, s.wrap("read token", err)
	}
	return t, nil
}

// Tokens lists every token by name, newest first within a name.
func (s *Store) Tokens(ctx context.Context) ([]store.APIToken, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens ORDER BY name, created DESC")
	if err != nil {
		return nil, s.wrap("list tokens", err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, s.wrap("list tokens", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list tokens", err)
	}
	return out, nil
}

// RevokeToken revokes the live token of that name.
func (s *Store) RevokeToken(ctx context.Context, name string, at time.Time) (store.APIToken, error) {
	if err := store.Storable(at); err != nil || at.IsZero() {
		return store.APIToken{}, apperr.Errorf(apperr.Invalid, "revoke token %s: bad time %s", name, at)
	}
	var t store.APIToken
	err := s.write(ctx, "revoke token "+name, func(tx *sql.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE name = ? AND revoked IS NULL", name))
		if errors.Is(err, sql.ErrNoRows) {
			return apperr.Errorf(apperr.NotFound, "no live token named %s (`spyagency token list` shows them)", name)
		}
		if err != nil {
			return err
		}
		t.Revoked = at.UTC()
		_, err = tx.ExecContext(ctx, "UPDATE api_tokens SET revoked = ? WHERE hash = ?", at.UnixNano(), t.Hash)
		return err
	})
	if err != nil {
		return store.APIToken{}, err
	}
	return t, nil
}

// TokenUsed moves a token's last-used time forward.
func (s *Store) TokenUsed(ctx context.Context, hash string, at time.Time) error {
	if err := store.Storable(at); err != nil {
		return apperr.Errorf(apperr.Invalid, "token used: %w", err)
	}
	return s.write(ctx, "record a token's use", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE api_tokens SET last_used = ? WHERE hash = ? AND (last_used IS NULL OR last_used < ?)",
			at.UnixNano(), hash, at.UnixNano())
		return err
	})
}

// CreateSession stores a session and forgets those that closed more than a day before it.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	switch {
	case se.Hash == "" || se.User == "" || se.Role == "":
		return apperr.Errorf(apperr.Invalid, "create session: hash, user and role are required")
	case se.Created.IsZero() || !se.Expires.After(se.Created):
		return apperr.Errorf(apperr.Invalid, "create session for %s: it must expire after it was created", se.User)
	}
	if err := store.Storable(se.Created, se.Expires, se.Ended); err != nil {
		return apperr.Errorf(apperr.Invalid, "create session for %s: %w", se.User, err)
	}
	forget := se.Created.Add(-sessionMemory).UnixNano()
	return s.write(ctx, "create session for "+se.User, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE expires < ? OR ended < ?", forget, forget); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO sessions (hash, user, role, created, expires, ended) VALUES (?, ?, ?, ?, ?, ?)",
			se.Hash, se.User, se.Role, se.Created.UnixNano(), se.Expires.UnixNano(), nanos(se.Ended))
		if isConstraint(err) { // the same identifier twice
			return apperr.Errorf(apperr.Conflict, "create session: the session exists already")
		}
		return err
	})
}

// Session returns a session by its hash.
func (s *Store) Session(ctx context.Context, hash string) (store.Session, error) {
	if err := s.usable(); err != nil {
		return store.Session{}, err
	}
	var se store.Session
	var created, expires int64
	var ended sql.NullInt64
	err := s.reader.QueryRowContext(ctx, "SELECT hash, user, role, created, expires, ended FROM sessions WHERE hash = ?", hash).
		Scan(&se.Hash, &se.User, &se.Role, &created, &expires, &ended)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, apperr.Errorf(apperr.NotFound, "unknown session")
	}
	if err != nil {
		return store.Session{}, s.wrap("read session", err)
	}
	se.Created, se.Expires, se.Ended = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC(), fromNanos(ended)
	return se, nil
}

// EndSession ends an open session.
func (s *Store) EndSession(ctx context.Context, hash string, at time.Time) error {
	if err := store.Storable(at); err != nil || at.IsZero() {
		return apperr.Errorf(apperr.Invalid, "end session: bad time %s", at)
	}
	return s.write(ctx, "end a session", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE sessions SET ended = ? WHERE hash = ? AND ended IS NULL", at.UnixNano(), hash)
		if err != nil {
			return fmt.Errorf("end session: %w", err)
		}
		return nil
	})
}
