package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// compactable is the condition of a run retention may compact; its first terms are those of the
// partial index run_states_compactable, so the candidates are read from it. $1 is the cut-off.
const compactable = `r.readiness = 'released' AND r.version > 0 AND r.compacted IS NULL AND r.stop IS NOT NULL
	AND r.stop < $1 AND EXISTS (SELECT 1 FROM decisions d WHERE d.run = r.run AND d.version = r.version AND d.decided < $1)`

// CompactReleased compacts up to q.Limit released runs, each in a transaction of its own.
func (s *Store) CompactReleased(ctx context.Context, q store.CompactQuery) ([]uint32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if q.ReleasedBefore.IsZero() || q.Now.IsZero() {
		return nil, apperr.Errorf(apperr.Invalid, "compact: ReleasedBefore and Now must be set")
	}
	before := q.ReleasedBefore.UnixNano()
	rows, err := s.pool.Query(ctx, `SELECT r.run FROM run_states r WHERE `+compactable+` ORDER BY r.stop, r.run LIMIT $2`,
		before, limitOr(q.Limit, 16))
	if err != nil {
		return nil, s.wrap("find runs to compact", err)
	}
	cands, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, s.wrap("find runs to compact", err)
	}
	return store.CompactEach(cands, func(run int64) (bool, error) { return s.compactRun(ctx, run, before, q.Now) })
}

// compactRun compacts one run if it is still compactable; the run's state row is locked first, so a
// decision written at the same time either comes before (and the run is no longer a candidate) or
// waits for the compaction, and so does an AppendObservations of the run's facts (it holds the row
// FOR KEY SHARE, which FOR UPDATE waits for and which waits for FOR UPDATE): the summary is read after
// the facts appended before, and those appended after are late.
func (s *Store) compactRun(ctx context.Context, run, before int64, now time.Time) (bool, error) {
	var ok bool
	err := s.write(ctx, fmt.Sprintf("compact run %d", run), func(tx pgx.Tx) error {
		ok = false
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM run_states r WHERE r.run = $2 AND `+compactable+` FOR UPDATE`, before, run).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		c := store.Compaction{Run: uint32(run), At: now}
		rows, err := tx.Query(ctx, `SELECT source, kind, count(*), min(at), max(at), max(seen)
			FROM observations WHERE run = $1 GROUP BY source, kind ORDER BY source, kind`, run)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				src, kind   string
				count       int
				first, last int64
				seen        *int64
			)
			if err := rows.Scan(&src, &kind, &count, &first, &last, &seen); err != nil {
				rows.Close()
				return err
			}
			c.AddGroup(src, kind, count, first, last, fromNanos(seen))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		body, err := json.Marshal(c.Groups)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO compactions (run, compacted, observations, summary) VALUES ($1, $2, $3, $4)
			ON CONFLICT (run) DO UPDATE SET compacted = excluded.compacted,
				observations = compactions.observations + excluded.observations, summary = excluded.summary`,
			run, now.UnixNano(), c.Observations, string(body)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM observations WHERE run = $1`, run); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE run_states SET compacted = $1 WHERE run = $2`, now.UnixNano(), run); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, err
}

// Compaction returns what retention kept of a run's observations, or apperr.NotFound.
func (s *Store) Compaction(ctx context.Context, run uint32) (store.Compaction, error) {
	if err := s.usable(); err != nil {
		return store.Compaction{}, err
	}
	var (
		at   int64
		body string
		c    = store.Compaction{Run: run}
	)
	err := s.pool.QueryRow(ctx, `SELECT compacted, observations, summary, late_observations FROM compactions WHERE run = $1`,
		int64(run)).Scan(&at, &c.Observations, &body, &c.LateObservations)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, apperr.Errorf(apperr.NotFound, "run %d is not compacted", run)
	}
	if err != nil {
		return c, s.wrap(fmt.Sprintf("read compaction of run %d", run), err)
	}
	c.At = time.Unix(0, at).UTC()
	if err := json.Unmarshal([]byte(body), &c.Groups); err != nil {
		return c, s.wrap(fmt.Sprintf("read compaction of run %d", run), fmt.Errorf("decode: %w", err))
	}
	return c, nil
}
