package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// Cursor returns a spy's persisted cursor and view time, the zero Cursor if it has none.
func (s *Store) Cursor(ctx context.Context, name string) (store.Cursor, error) {
	if err := s.usable(); err != nil {
		return store.Cursor{}, err
	}
	var c store.Cursor
	var view sql.NullInt64
	err := s.reader.QueryRowContext(ctx, "SELECT value, view FROM cursors WHERE name = ?", name).Scan(&c.Value, &view)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Cursor{}, nil
	}
	if err != nil {
		return store.Cursor{}, s.wrap(fmt.Sprintf("read cursor %q", name), err)
	}
	c.View = fromNanos(view)
	return c, nil
}

// SetCursor persists a spy's cursor and view time in one statement, so that a crash never leaves one
// without the other.
func (s *Store) SetCursor(ctx context.Context, name string, c store.Cursor) error {
	if name == "" {
		return apperr.Errorf(apperr.Invalid, "set cursor: empty spy name")
	}
	if err := store.Storable(c.View); err != nil {
		return apperr.Errorf(apperr.Invalid, "set cursor %q: view: %w", name, err)
	}
	return s.write(ctx, fmt.Sprintf("write cursor %q", name), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO cursors (name, value, view, updated) VALUES (?, ?, ?, ?) "+
			"ON CONFLICT (name) DO UPDATE SET value = excluded.value, view = excluded.view, updated = excluded.updated",
			name, c.Value, nanos(c.View), s.now().UnixNano())
		return err
	})
}

// Setting returns a key-value setting and whether it exists.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	return s.getKV(ctx, "settings", "key", key)
}

// SetSetting stores a key-value setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	if key == "" {
		return apperr.Errorf(apperr.Invalid, "set setting: empty key")
	}
	return s.putKV(ctx, "settings", "key", key, value)
}

// getKV and putKV serve the settings table; table and column are constants of this file, never input.
func (s *Store) getKV(ctx context.Context, table, col, key string) (string, bool, error) {
	if err := s.usable(); err != nil {
		return "", false, err
	}
	var v string
	err := s.reader.QueryRowContext(ctx, "SELECT value FROM "+table+" WHERE "+col+" = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.wrap(fmt.Sprintf("read %s %q", table, key), err)
	}
	return v, true, nil
}

func (s *Store) putKV(ctx context.Context, table, col, key, value string) error {
	return s.write(ctx, fmt.Sprintf("write %s %q", table, key), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO "+table+" ("+col+", value, updated) VALUES (?, ?, ?) "+
			"ON CONFLICT ("+col+") DO UPDATE SET value = excluded.value, updated = excluded.updated",
			key, value, s.now().UnixNano())
		return err
	})
}
