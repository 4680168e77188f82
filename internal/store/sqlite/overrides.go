package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// AppendOverride stores an override and its audit entry in one write transaction. Its Seq is its
// row's rowid, as for every observation (see AppendObservations): the single writer hands them out in
// commit order, so a run's overrides are ordered by it.
func (s *Store) AppendOverride(ctx context.Context, o pcl.Observation, e store.AuditEntry) (pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return pcl.Observation{}, err
	}
	if o.Kind != pcl.KindOverride {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "append override: a %s observation is not an override", o.Kind)
	}
	if err := o.Validate(); err != nil {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "append override: %w", err)
	}
	if err := store.Storable(o.At, o.Seen); err != nil {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "append override of run %d: %w", o.Run, err)
	}
	if e.Run == 0 {
		e.Run = o.Run
	}
	if e.At.IsZero() {
		e.At = o.At
	}
	if e.Run != o.Run {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "append override of run %d: its audit entry is about run %d", o.Run, e.Run)
	}
	if err := store.CheckAudit(e); err != nil {
		return pcl.Observation{}, err
	}
	key := o.KeySum()
	body, err := o.AppendJSON(nil)
	if err != nil {
		return pcl.Observation{}, apperr.Errorf(apperr.Invalid, "append override of run %d: encode: %w", o.Run, err)
	}
	err = s.write(ctx, fmt.Sprintf("append override of run %d", o.Run), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, insertObservation, int64(o.Run), key[:], string(o.Source), string(o.Kind),
			o.At.UnixNano(), nanos(o.Seen), o.Tag, "", body)
		if err != nil {
			return fmt.Errorf("insert override: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			o.Seq, err = repeatedOverride(ctx, tx, o, key)
			return err
		}
		if o.Seq, err = res.LastInsertId(); err != nil {
			return err
		}
		return insertAudit(ctx, tx, e)
	})
	if err != nil {
		return pcl.Observation{}, err
	}
	return o, nil
}

// repeatedOverride answers for an override that is stored already: its Seq when it is still the run's
// newest override, a conflict when a later one stands.
func repeatedOverride(ctx context.Context, tx *sql.Tx, o pcl.Observation, key [16]byte) (int64, error) {
	var seq, newest int64
	if err := tx.QueryRowContext(ctx, "SELECT rowid FROM observations WHERE run = ? AND key = ?", int64(o.Run), key[:]).Scan(&seq); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			// ON CONFLICT names (run, key) alone, so a row that was not inserted is there.
			return 0, fmt.Errorf("override of run %d neither inserted nor found", o.Run)
		}
		return 0, fmt.Errorf("read the stored override: %w", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT max(rowid) FROM observations WHERE run = ? AND kind = ?",
		int64(o.Run), string(pcl.KindOverride)).Scan(&newest); err != nil {
		return 0, fmt.Errorf("read the run's newest override: %w", err)
	}
	if seq != newest {
		return 0, apperr.Errorf(apperr.Conflict, "run %d: the same %s by %s was recorded at %s and a later override stands since; "+
			"it cannot be recorded again in the same instant", o.Run, o.Action, o.Actor, o.At.UTC().Format(time.RFC3339Nano))
	}
	return seq, nil
}
