package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	return s.write(ctx, fmt.Sprintf("put state of run %d", rs.Run), func(tx pgx.Tx) error {
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

func latestDecision(ctx context.Context, tx pgx.Tx, run uint32) (pcl.Decision, bool, error) {
	var body string
	err := tx.QueryRow(ctx, "SELECT body FROM decisions WHERE run = $1 ORDER BY version DESC LIMIT 1", int64(run)).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return pcl.Decision{}, false, nil
	}
	if err != nil {
		return pcl.Decision{}, false, fmt.Errorf("read latest decision: %w", err)
	}
	var d pcl.Decision
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		return pcl.Decision{}, false, fmt.Errorf("decode stored decision of run %d: %w", run, err)
	}
	return d, true, nil
}

func upsertRunState(ctx context.Context, tx pgx.Tx, rs pcl.RunState) error {
	body, err := json.Marshal(rs)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode state of run %d: %w", rs.Run, err)
	}
	class := rs.Class
	if class == "" && rs.Info != nil {
		class = rs.Info.Class
	}
	var stop *int64
	if rs.Info != nil && rs.Info.Stop != nil {
		stop = nanos(*rs.Info.Stop)
	}
	decision, err := json.Marshal(rs.Decision)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode decision of run %d: %w", rs.Run, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO run_states (run, class, readiness, version, next_wake, stop, body, decision)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (run) DO UPDATE SET class = excluded.class, readiness = excluded.readiness,
			version = excluded.version, next_wake = excluded.next_wake, stop = excluded.stop, body = excluded.body,
			decision = excluded.decision`,
		int64(rs.Run), class, string(rs.Decision.State), rs.Decision.Version, nanos(rs.NextWake), stop, string(body), string(decision))
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
	var body string
	err := s.pool.QueryRow(ctx, "SELECT body FROM run_states WHERE run = $1", int64(run)).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return pcl.RunState{}, apperr.Errorf(apperr.NotFound, "run %d is not known", run)
	}
	if err != nil {
		return pcl.RunState{}, s.wrap(fmt.Sprintf("read state of run %d", run), err)
	}
	rs, err := s.states.Decode(run, []byte(body))
	if err != nil {
		return pcl.RunState{}, s.wrap(fmt.Sprintf("read state of run %d", run), err)
	}
	return rs, nil
}

// likePattern turns a shell pattern (* and ?) into a LIKE pattern, with LIKE's own wildcards and its
// escape character taken literally.
func likePattern(glob string) string {
	var b strings.Builder
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// RunStates returns the matching derived states, newest run first.
func (s *Store) RunStates(ctx context.Context, q store.RunQuery) ([]pcl.RunState, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	var (
		a     args
		where []string
	)
	full := a.add(!q.Summary)
	if q.Class != "" {
		if strings.ContainsAny(q.Class, "*?") {
			where = append(where, "class LIKE "+a.add(likePattern(q.Class)))
		} else {
			where = append(where, "class = "+a.add(q.Class))
		}
	}
	if q.Readiness != "" {
		where = append(where, "readiness = "+a.add(string(q.Readiness)))
	}
	if q.Before > 0 {
		where = append(where, "run < "+a.add(int64(q.Before)))
	}
	if q.From > 0 {
		where = append(where, "run >= "+a.add(int64(q.From)))
	}
	if q.To > 0 {
		where = append(where, "run <= "+a.add(int64(q.To)))
	}
	query := "SELECT run, class, decision, CASE WHEN " + full + "::boolean OR decision = '' THEN body ELSE '' END FROM run_states"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY run DESC LIMIT " + a.add(limitOr(q.Limit, defaultLimit))
	rows, err := s.pool.Query(ctx, query, a...)
	if err != nil {
		return nil, s.wrap("query run states", err)
	}
	defer rows.Close()
	var out []pcl.RunState
	for rows.Next() {
		var (
			run            int64
			class          string
			decision, body string
			rs             pcl.RunState
		)
		if err := rows.Scan(&run, &class, &decision, &body); err != nil {
			return nil, s.wrap("query run states", err)
		}
		switch {
		case body != "":
			var err error
			if rs, err = s.states.Decode(uint32(run), []byte(body)); err != nil {
				return nil, s.wrap("query run states", err)
			}
			if q.Summary {
				rs = pcl.RunState{Run: rs.Run, Class: rs.Class, Decision: rs.Decision}
			}
		default:
			rs = pcl.RunState{Run: uint32(run), Class: class}
			if err := json.Unmarshal([]byte(decision), &rs.Decision); err != nil {
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
	rows, err := s.pool.Query(ctx, `SELECT run FROM run_states
		WHERE next_wake IS NOT NULL AND next_wake <= $1 ORDER BY next_wake, run LIMIT $2`,
		now.UnixNano(), limitOr(limit, defaultLimit))
	if err != nil {
		return nil, s.wrap("query due runs", err)
	}
	runs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, s.wrap("query due runs", err)
	}
	out := make([]uint32, len(runs))
	for i, r := range runs {
		out[i] = uint32(r)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// NextWake returns the earliest NextWake of any run, zero when none has one. min() over the leading
// column of run_states_wake is answered from the index's first entry.
func (s *Store) NextWake(ctx context.Context) (time.Time, error) {
	if err := s.usable(); err != nil {
		return time.Time{}, err
	}
	var next *int64
	if err := s.pool.QueryRow(ctx, "SELECT min(next_wake) FROM run_states WHERE next_wake IS NOT NULL").Scan(&next); err != nil {
		return time.Time{}, s.wrap("query next wake", err)
	}
	return fromNanos(next), nil
}
