package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// unreleased is the condition of a run whose decision is not a persisted release, as the partial index
// run_states_unreleased (migration 0009) states it, so that SQLite reads the index, not the table.
const unreleased = "(readiness != 'released' OR version <= 0)"

// released is the condition of the partial index run_states_released_stop: persisted releases.
const released = "readiness = 'released' AND version > 0"

// summaryCols are a run's summary columns. The unreleased runs' are all in the partial index
// run_states_unreleased (migration 0012), so the pull API's read never touches the table: decision was
// added after body (migration 0002), so reading it from a row walks the body's overflow pages. A row
// whose decision column is empty (written before migration 0002) is read again for its body.
const summaryCols = "run, class, decision"

const (
	unreleasedSummaryQuery = "SELECT " + summaryCols + " FROM run_states WHERE " + unreleased + " AND run <= ?"
	openRunStatesQuery     = "SELECT run, body FROM run_states WHERE " + unreleased +
		" UNION ALL SELECT run, body FROM run_states INDEXED BY run_states_released_stop WHERE " + released + " AND stop >= ?" +
		" UNION ALL SELECT run, body FROM run_states INDEXED BY run_states_released_stop WHERE " + released + " AND stop IS NULL" +
		" ORDER BY run"
)

// ReleaseView reads the unreleased runs up to q.UpTo, the range [q.From, q.UpTo] and the highest known
// run in one read transaction: SQLite keeps one snapshot of the database from a transaction's first
// read to its end.
func (s *Store) ReleaseView(ctx context.Context, q store.ReleaseQuery) (store.ReleaseView, error) {
	var v store.ReleaseView
	if err := s.usable(); err != nil {
		return v, err
	}
	upTo := int64(q.UpTo)
	if q.UpTo == 0 {
		upTo = math.MaxUint32
	}
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return v, s.wrap("read release view", err)
	}
	defer tx.Rollback()
	var hi sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT max(run) FROM run_states WHERE run <= ?", upTo).Scan(&hi); err != nil {
		return v, s.wrap("read release view", err)
	}
	v.Highest = uint32(hi.Int64)
	query := unreleasedSummaryQuery
	args := []any{upTo}
	if q.From > 0 {
		// UNION, not UNION ALL: a run in the range that is not released is read by both halves, and is
		// the same row in one snapshot.
		query += " UNION SELECT " + summaryCols + " FROM run_states WHERE run >= ? AND run <= ?"
		args = append(args, int64(q.From), upTo)
	}
	query += " ORDER BY run"
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return v, s.wrap("read release view", err)
	}
	defer rows.Close()
	var fresh map[uint32]memoDecision // only the view of the unreleased runs is remembered
	if q.From == 0 {
		fresh = map[uint32]memoDecision{}
	}
	type bodyless struct {
		at    int
		run   int64
		class string
	}
	var old []bodyless // rows with no decision column: their summary is in the body
	for rows.Next() {
		var (
			run      int64
			class    string
			decision sql.RawBytes // decode copies what it keeps
		)
		if err := rows.Scan(&run, &class, &decision); err != nil {
			return v, s.wrap("read release view", err)
		}
		if len(decision) == 0 {
			old = append(old, bodyless{len(v.Runs), run, class})
			v.Runs = append(v.Runs, pcl.RunState{})
			continue
		}
		rs, err := s.summaries.decode(run, class, decision, fresh)
		if err != nil {
			return v, s.wrap("read release view", err)
		}
		v.Runs = append(v.Runs, rs)
	}
	if err := rows.Err(); err != nil {
		return v, s.wrap("read release view", err)
	}
	rows.Close()
	for _, o := range old {
		var body []byte
		if err := tx.QueryRowContext(ctx, "SELECT body FROM run_states WHERE run = ?", o.run).Scan(&body); err != nil {
			return v, s.wrap("read release view", err)
		}
		rs, err := decodeSummary(o.run, o.class, nil, body)
		if err != nil {
			return v, s.wrap("read release view", err)
		}
		v.Runs[o.at] = rs
	}
	if q.From == 0 {
		s.summaries.keep(fresh)
	}
	return v, nil
}

// summaryMemo keeps the decoded decision of each run the last release view read, with the stored
// bytes it was decoded from. Tier-0 asks for first_unready_run every half minute and the board's
// header as often; decoding the same decisions (their evidence lists run to hundreds of numbers) was
// a third of each answer. A decision whose bytes are those remembered is taken from memory, its
// slices copied; any other is decoded. Only the unreleased runs of the last view are remembered, so
// memory follows the open work.
type summaryMemo struct {
	mu   sync.Mutex
	runs map[uint32]memoDecision
}

type memoDecision struct {
	raw []byte
	d   pcl.Decision
}

// decode is decodeSummary, answered from memory where the decision's bytes did not change; what it
// decoded or found goes into fresh.
func (m *summaryMemo) decode(run int64, class string, decision []byte, fresh map[uint32]memoDecision) (pcl.RunState, error) {
	if run < 0 || run > math.MaxUint32 {
		return decodeSummary(run, class, decision, nil)
	}
	m.mu.Lock()
	got, ok := m.runs[uint32(run)]
	m.mu.Unlock()
	if !ok || !bytes.Equal(got.raw, decision) {
		rs, err := decodeSummary(run, class, decision, nil)
		if err != nil {
			return rs, err
		}
		got = memoDecision{raw: bytes.Clone(decision), d: rs.Decision}
	}
	if fresh != nil {
		fresh[uint32(run)] = got
	}
	d := got.d
	d.Blocking, d.Evidence = slices.Clone(d.Blocking), slices.Clone(d.Evidence)
	return pcl.RunState{Run: uint32(run), Class: class, Decision: d}, nil
}

// keep makes fresh what is remembered.
func (m *summaryMemo) keep(fresh map[uint32]memoDecision) {
	m.mu.Lock()
	m.runs = fresh
	m.mu.Unlock()
}

// OpenRunStates reads the unreleased runs and the releases that stopped at or after since (or have no
// stop time), each half from its partial index.
func (s *Store) OpenRunStates(ctx context.Context, since time.Time) ([]pcl.RunState, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, openRunStatesQuery, since.UnixNano())
	if err != nil {
		return nil, s.wrap("read open run states", err)
	}
	defer rows.Close()
	var out []pcl.RunState
	for rows.Next() {
		var (
			run  int64
			body sql.RawBytes // valid until the next row: decoded (or copied by the memo) first
		)
		if err := rows.Scan(&run, &body); err != nil {
			return nil, s.wrap("read open run states", err)
		}
		rs, err := s.states.Decode(uint32(run), body)
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
func decodeSummary(run int64, class string, decision, body []byte) (pcl.RunState, error) {
	if len(body) > 0 {
		var rs pcl.RunState
		if err := json.Unmarshal(body, &rs); err != nil {
			return rs, fmt.Errorf("decode stored state of run %d: %w", run, err)
		}
		return pcl.RunState{Run: rs.Run, Class: rs.Class, Decision: rs.Decision}, nil
	}
	rs := pcl.RunState{Run: uint32(run), Class: class}
	if err := json.Unmarshal(decision, &rs.Decision); err != nil {
		return rs, fmt.Errorf("decode stored decision of run %d: %w", run, err)
	}
	return rs, nil
}
