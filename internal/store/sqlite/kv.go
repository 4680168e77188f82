package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cms-pcl/spyagency/internal/apperr"
)

// Cursor returns a spy's persisted cursor, "" if it has none.
func (s *Store) Cursor(ctx context.Context, name string) (string, error) {
	v, _, err := s.getKV(ctx, "cursors", "name", name)
	return v, err
}

// SetCursor persists a spy's cursor.
func (s *Store) SetCursor(ctx context.Context, name, value string) error {
	if name == "" {
		return apperr.Errorf(apperr.Invalid, "set cursor: empty spy name")
	}
	return s.putKV(ctx, "cursors", "name", name, value)
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

// getKV and putKV serve the two key/value tables; table and column are constants of this file, never
// input.
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
