package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// PutRunState stores a run's derived state. The run keeps its latest stored decision: the state's own
// Decision is used only while the run has none, so that RunState never reports a readiness that was not
// decided (and persisted) through SaveDecision.
func (s *Store) PutRunState(ctx context.Context, rs pcl.RunState) error {
	if rs.Run == 0 {
		return apperr.Errorf(apperr.Invalid, "put run state: run number is 0")
	}
	if err := store.CheckRunState(rs); err != nil {
		return err
	}
	return s.write(ctx, fmt.Sprintf("put state of run %d", rs.Run), func(tx *sql.Tx) error {
		d, ok, err := latestDecision(ctx, tx, rs.Run)
		if err != nil {
			return err
		}
		if ok {
			rs.Decision = d
		}
		return upsertRunState(ctx, tx, rs)
	})
}

func latestDecision(ctx context.Context, tx *sql.Tx, run uint32) (pcl.Decision, bool, error) {
	var body []byte
	err := tx.QueryRowContext(ctx,
		"SELECT body FROM decisions WHERE run = ? ORDER BY version DESC LIMIT 1", int64(run)).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return pcl.Decision{}, false, nil
	}
	if err != nil {
		return pcl.Decision{}, false, fmt.Errorf("read latest decision: %w", err)
	}
	var d pcl.Decision
	if err := json.Unmarshal(body, &d); err != nil {
		return pcl.Decision{}, false, fmt.Errorf("decode stored decision of run %d: %w", run, err)
	}
	return d, true, nil
}

func upsertRunState(ctx context.Context, tx *sql.Tx, rs pcl.RunState) error {
	body, err := json.Marshal(rs)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode state of run %d: %w", rs.Run, err)
	}
	class := rs.Class
	if class == "" && rs.Info != nil {
		class = rs.Info.Class
	}
	var stop any
	if rs.Info != nil && rs.Info.Stop != nil {
		stop = nanos(*rs.Info.Stop)
	}
	decision, err := json.Marshal(rs.Decision)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode decision of run %d: %w", rs.Run, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO run_states (run, class, readiness, version, next_wake, stop, body, decision)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run) DO UPDATE SET class = excluded.class, readiness = excluded.readiness,
			version = excluded.version, next_wake = excluded.next_wake, stop = excluded.stop, body = excluded.body,
			decision = excluded.decision`,
		int64(rs.Run), class, string(rs.Decision.State), rs.Decision.Version, nanos(rs.NextWake), stop, body, string(decision))
	if err != nil {
		return fmt.Errorf("write state of run %d: %w", rs.Run, err)
	}
	return nil
}

// RunState returns a run's derived state with its latest decision, or apperr.NotFound.
func (s *Store) RunState(ctx context.Context, run uint32) (pcl.RunState, error) {
	if err := s.usable(); err != nil {
		return pcl.RunState{}, err
	}
	var body []byte
	err := s.reader.QueryRowContext(ctx, "SELECT body FROM run_states WHERE run = ?", int64(run)).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return pcl.RunState{}, apperr.Errorf(apperr.NotFound, "run %d is not known", run)
	}
	if err != nil {
		return pcl.RunState{}, s.wrap(fmt.Sprintf("read state of run %d", run), err)
	}
	rs, err := s.states.Decode(run, body)
	if err != nil {
		return pcl.RunState{}, s.wrap(fmt.Sprintf("read state of run %d", run), err)
	}
	return rs, nil
}

// RunStates returns the matching derived states, newest run first.
func (s *Store) RunStates(ctx context.Context, q store.RunQuery) ([]pcl.RunState, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if q.Class != "" {
		if strings.ContainsAny(q.Class, "*?") {
			// GLOB matches * and ? as the shell does; '[' would open a character class, which a class
			// pattern never means, so it is matched literally.
			add("class GLOB ?", strings.ReplaceAll(q.Class, "[", "[[]"))
		} else {
			add("class = ?", q.Class)
		}
	}
	if q.Readiness != "" {
		add("readiness = ?", string(q.Readiness))
	}
	if q.Before > 0 {
		add("run < ?", int64(q.Before))
	}
	if q.From > 0 {
		add("run >= ?", int64(q.From))
	}
	if q.To > 0 {
		add("run <= ?", int64(q.To))
	}
	query := "SELECT run, class, decision, CASE WHEN ? OR decision = '' THEN body ELSE '' END FROM run_states"
	args = append([]any{!q.Summary}, args...)
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY run DESC LIMIT ?"
	args = append(args, limitOr(q.Limit, defaultLimit))
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("query run states", err)
	}
	defer rows.Close()
	var out []pcl.RunState
	for rows.Next() {
		var (
			run            int64
			class          string
			decision, body sql.RawBytes // valid until the next row: decoded (or copied by the memo) first
			rs             pcl.RunState
		)
		if err := rows.Scan(&run, &class, &decision, &body); err != nil {
			return nil, s.wrap("query run states", err)
		}
		switch {
		case len(body) > 0:
			var err error
			if rs, err = s.states.Decode(uint32(run), body); err != nil {
				return nil, s.wrap("query run states", err)
			}
			if q.Summary {
				rs = pcl.RunState{Run: rs.Run, Class: rs.Class, Decision: rs.Decision}
			}
		default:
			rs = pcl.RunState{Run: uint32(run), Class: class}
			if err := json.Unmarshal(decision, &rs.Decision); err != nil {
				return nil, s.wrap("query run states", fmt.Errorf("decode stored decision of run %d: %w", run, err))
			}
		}
		out = append(out, rs)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("query run states", err)
	}
	return out, nil
}

// DueRuns returns the runs whose NextWake is set and not after now, oldest wake first.
func (s *Store) DueRuns(ctx context.Context, now time.Time, limit int) ([]uint32, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT run FROM run_states
		WHERE next_wake IS NOT NULL AND next_wake <= ? ORDER BY next_wake, run LIMIT ?`,
		now.UnixNano(), limitOr(limit, defaultLimit))
	if err != nil {
		return nil, s.wrap("query due runs", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var run int64
		if err := rows.Scan(&run); err != nil {
			return nil, s.wrap("query due runs", err)
		}
		out = append(out, uint32(run))
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("query due runs", err)
	}
	return out, nil
}

const nextWakeQuery = `SELECT min(next_wake) FROM run_states WHERE next_wake IS NOT NULL`

// NextWake returns the earliest NextWake of any run, zero when none has one. SQLite answers min() over
// the first column of run_states_wake from the index's first entry, so the cost does not grow with the
// number of runs stored.
func (s *Store) NextWake(ctx context.Context) (time.Time, error) {
	if err := s.usable(); err != nil {
		return time.Time{}, err
	}
	var next sql.NullInt64
	if err := s.reader.QueryRowContext(ctx, nextWakeQuery).Scan(&next); err != nil {
		return time.Time{}, s.wrap("query next wake", err)
	}
	return fromNanos(next), nil
}
