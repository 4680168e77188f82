package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// compactable is the condition of a run retention may compact; the first four terms are those of the
// partial index run_states_compactable, so the candidates are read from it.
const compactable = `r.readiness = 'released' AND r.version > 0 AND r.compacted IS NULL AND r.stop IS NOT NULL
	AND r.stop < ? AND EXISTS (SELECT 1 FROM decisions d WHERE d.run = r.run AND d.version = r.version AND d.decided < ?)`

// CompactReleased compacts up to q.Limit released runs, each in a write transaction of its own, so
// that the single writer is never held for more than one run's observations.
func (s *Store) CompactReleased(ctx context.Context, q store.CompactQuery) ([]uint32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if q.ReleasedBefore.IsZero() || q.Now.IsZero() {
		return nil, apperr.Errorf(apperr.Invalid, "compact: ReleasedBefore and Now must be set")
	}
	limit := limitOr(q.Limit, 16)
	before := q.ReleasedBefore.UnixNano()
	rows, err := s.reader.QueryContext(ctx, `SELECT r.run FROM run_states r INDEXED BY run_states_compactable
		WHERE `+compactable+` ORDER BY r.stop, r.run LIMIT ?`, before, before, limit)
	if err != nil {
		return nil, s.wrap("find runs to compact", err)
	}
	var cands []int64
	for rows.Next() {
		var run int64
		if err := rows.Scan(&run); err != nil {
			rows.Close()
			return nil, s.wrap("find runs to compact", err)
		}
		cands = append(cands, run)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("find runs to compact", err)
	}
	return store.CompactEach(cands, func(run int64) (bool, error) { return s.compactRun(ctx, run, before, q.Now) })
}

// compactRun compacts one run if it is still compactable (a decision may have come since the
// candidates were read). It keeps the run whose rows hold the largest rowid for a later pass: SQLite
// would give that rowid again, and a fact's Seq must never be reused.
func (s *Store) compactRun(ctx context.Context, run, before int64, now time.Time) (bool, error) {
	var ok bool
	err := s.write(ctx, fmt.Sprintf("compact run %d", run), func(tx *sql.Tx) error {
		ok = false
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM run_states r WHERE r.run = ? AND `+compactable, run, before, before).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		var top, mine sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(rowid) FROM observations`).Scan(&top); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT max(rowid) FROM observations WHERE run = ?`, run).Scan(&mine); err != nil {
			return err
		}
		if mine.Valid && mine.Int64 == top.Int64 {
			return nil
		}
		c, err := summarise(ctx, tx, run, now)
		if err != nil {
			return err
		}
		body, err := json.Marshal(c.Groups)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO compactions (run, compacted, observations, summary) VALUES (?, ?, ?, ?)
			ON CONFLICT (run) DO UPDATE SET compacted = excluded.compacted,
				observations = compactions.observations + excluded.observations, summary = excluded.summary`,
			run, now.UnixNano(), c.Observations, string(body)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM observations WHERE run = ?`, run); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE run_states SET compacted = ? WHERE run = ?`, now.UnixNano(), run); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, err
}

// summarise reads a run's observations grouped by source and kind, through the (run, key) index.
func summarise(ctx context.Context, tx *sql.Tx, run int64, now time.Time) (store.Compaction, error) {
	c := store.Compaction{Run: uint32(run), At: now}
	rows, err := tx.QueryContext(ctx, `SELECT source, kind, count(*), min(at), max(at), max(seen)
		FROM observations WHERE run = ? GROUP BY source, kind ORDER BY source, kind`, run)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			src, kind   string
			count       int
			first, last int64
			seen        sql.NullInt64
		)
		if err := rows.Scan(&src, &kind, &count, &first, &last, &seen); err != nil {
			return c, err
		}
		c.AddGroup(src, kind, count, first, last, fromNanos(seen))
	}
	return c, rows.Err()
}

// Compaction returns what retention kept of a run's observations, or apperr.NotFound.
func (s *Store) Compaction(ctx context.Context, run uint32) (store.Compaction, error) {
	if err := s.usable(); err != nil {
		return store.Compaction{}, err
	}
	var (
		at   int64
		body []byte
		c    = store.Compaction{Run: run}
	)
	err := s.reader.QueryRowContext(ctx, `SELECT compacted, observations, summary, late_observations FROM compactions WHERE run = ?`,
		int64(run)).Scan(&at, &c.Observations, &body, &c.LateObservations)
	if errors.Is(err, sql.ErrNoRows) {
		return c, apperr.Errorf(apperr.NotFound, "run %d is not compacted", run)
	}
	if err != nil {
		return c, s.wrap(fmt.Sprintf("read compaction of run %d", run), err)
	}
	c.At = time.Unix(0, at).UTC()
	if err := json.Unmarshal(body, &c.Groups); err != nil {
		return c, s.wrap(fmt.Sprintf("read compaction of run %d", run), fmt.Errorf("decode: %w", err))
	}
	return c, nil
}
