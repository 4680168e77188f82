package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// unreleased and released are the conditions of the partial indexes of migration 0003, written as the
// indexes state them so that the planner can use them.
const (
	unreleased = "(readiness <> 'released' OR version <= 0)"
	released   = "readiness = 'released' AND version > 0"
	// summaryCols are a run's summary columns: the body only where the decision column is empty.
	summaryCols = "run, class, decision, CASE WHEN decision = '' THEN body ELSE '' END"
)

// ReleaseView reads the unreleased runs up to q.UpTo, the range [q.From, q.UpTo] and the highest known
// run in one read-only REPEATABLE READ transaction: one snapshot for all three reads.
func (s *Store) ReleaseView(ctx context.Context, q store.ReleaseQuery) (store.ReleaseView, error) {
	var v store.ReleaseView
	if err := s.usable(); err != nil {
		return v, err
	}
	upTo := int64(q.UpTo)
	if q.UpTo == 0 {
		upTo = math.MaxUint32
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return v, s.wrap("read release view", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var hi *int64
	if err := tx.QueryRow(ctx, "SELECT max(run) FROM run_states WHERE run <= $1", upTo).Scan(&hi); err != nil {
		return v, s.wrap("read release view", err)
	}
	if hi != nil {
		v.Highest = uint32(*hi)
	}
	query := "SELECT " + summaryCols + " FROM run_states WHERE " + unreleased + " AND run <= $1"
	args := []any{upTo}
	if q.From > 0 {
		// UNION, not UNION ALL: a run of the range that is not released is read by both halves.
		query += " UNION SELECT " + summaryCols + " FROM run_states WHERE run >= $2 AND run <= $1"
		args = append(args, int64(q.From))
	}
	rows, err := tx.Query(ctx, query+" ORDER BY run", args...)
	if err != nil {
		return v, s.wrap("read release view", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			run            int64
			class          string
			decision, body string
		)
		if err := rows.Scan(&run, &class, &decision, &body); err != nil {
			return v, s.wrap("read release view", err)
		}
		rs, err := decodeSummary(run, class, decision, body)
		if err != nil {
			return v, s.wrap("read release view", err)
		}
		v.Runs = append(v.Runs, rs)
	}
	if err := rows.Err(); err != nil {
		return v, s.wrap("read release view", err)
	}
	return v, nil
}

// OpenRunStates reads the unreleased runs and the releases that stopped at or after since (or have no
// stop time), each from its partial index.
func (s *Store) OpenRunStates(ctx context.Context, since time.Time) ([]pcl.RunState, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT run, body FROM run_states WHERE "+unreleased+
		" UNION ALL SELECT run, body FROM run_states WHERE "+released+" AND stop >= $1"+
		" UNION ALL SELECT run, body FROM run_states WHERE "+released+" AND stop IS NULL ORDER BY run", since.UnixNano())
	if err != nil {
		return nil, s.wrap("read open run states", err)
	}
	defer rows.Close()
	var out []pcl.RunState
	for rows.Next() {
		var (
			run  int64
			body string
		)
		if err := rows.Scan(&run, &body); err != nil {
			return nil, s.wrap("read open run states", err)
		}
		rs, err := s.states.Decode(uint32(run), []byte(body))
		if err != nil {
			return nil, s.wrap("read open run states", err)
		}
		out = append(out, rs)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("read open run states", err)
	}
	return out, nil
}

// decodeSummary is a run's summary state from its summary columns.
func decodeSummary(run int64, class, decision, body string) (pcl.RunState, error) {
	if body != "" {
		var rs pcl.RunState
		if err := json.Unmarshal([]byte(body), &rs); err != nil {
			return rs, fmt.Errorf("decode stored state of run %d: %w", run, err)
		}
		return pcl.RunState{Run: rs.Run, Class: rs.Class, Decision: rs.Decision}, nil
	}
	rs := pcl.RunState{Run: uint32(run), Class: class}
	if err := json.Unmarshal([]byte(decision), &rs.Decision); err != nil {
		return rs, fmt.Errorf("decode stored decision of run %d: %w", run, err)
	}
	return rs, nil
}
