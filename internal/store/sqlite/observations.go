package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// insertObservation adds one fact unless its (run, key) is stored. ON CONFLICT names the identity, so
// any other constraint still fails the batch instead of dropping a row the way INSERT OR IGNORE would.
// One prepared single-row statement beats multi-row INSERTs here: it needs no statement journal (a
// multi-row statement must be able to undo its own first rows), and its RowsAffected tells, row by row,
// which facts are new, with no lookup beforehand.
const insertObservation = `INSERT INTO observations (run, key, source, kind, at, seen, tag, payload, body)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run, key) DO NOTHING`

// AppendObservations validates the whole batch, encodes it, and then, in one transaction, inserts each
// fact the store does not hold yet and returns those, in input order, each with its Seq.
//
// A fact's Seq is its row's rowid. SQLite gives a new row the largest rowid plus one, and retention
// never deletes the row holding the largest rowid (CompactReleased), so Seqs grow in append order; the table has no INTEGER PRIMARY KEY, so a VACUUM
// could renumber them, and nothing here runs one.
func (s *Store) AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(obs) == 0 {
		return nil, nil
	}
	// Validation, keys and JSON happen outside the transaction so that the single writer holds the lock
	// only for the database work. A fact repeated within the batch counts once, at its first place.
	var (
		keys  = make([][16]byte, 0, len(obs))
		first = make([]int, 0, len(obs)) // keys[j] is the fact of obs[first[j]]
		ends  = make([]int, 0, len(obs)) // its body is bodies[ends[j-1]:ends[j]]
		seen  = make(map[[16]byte]struct{}, len(obs))
	)
	bodies := make([]byte, 0, 512*len(obs))
	for i := range obs {
		o := &obs[i]
		if err := o.Validate(); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d: %w", i+1, len(obs), err)
		}
		if err := store.Storable(o.At, o.Seen); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d (%s %s run %d): %w",
				i+1, len(obs), o.Source, o.Kind, o.Run, err)
		}
		k := o.KeySum()
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		// The hand-written encoder, not json.Marshal, which would re-scan and compact what a MarshalJSON
		// returns: several times the cost.
		var err error
		if bodies, err = o.AppendJSON(bodies); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d (%s %s run %d): encode: %w",
				i+1, len(obs), o.Source, o.Kind, o.Run, err)
		}
		keys = append(keys, k)
		first = append(first, i)
		ends = append(ends, len(bodies))
	}
	var (
		fresh []int   // indices into keys of the facts inserted
		seqs  []int64 // their rowids
	)
	var lateNew, lateAll int // distinct facts of compacted runs: first delivered late, and all
	err := s.write(ctx, "append observations", func(tx *sql.Tx) error {
		fresh, seqs = fresh[:0], seqs[:0]
		// The single writer serialises this with CompactReleased: a run is compacted either before this
		// transaction (its facts are late) or after it (the compaction summarises them).
		late, err := compactedRuns(ctx, tx, obs, first)
		if err != nil {
			return err
		}
		if lateNew, lateAll, err = countLate(ctx, tx, obs, first, keys, late); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, insertObservation)
		if err != nil {
			return err
		}
		defer stmt.Close()
		start := 0
		for j := range keys {
			o := &obs[first[j]]
			if late[o.Run] {
				start = ends[j]
				continue
			}
			payload := ""
			if o.Kind == pcl.KindIOV {
				payload = o.Payload
			}
			res, err := stmt.ExecContext(ctx, int64(o.Run), keys[j][:], string(o.Source), string(o.Kind),
				o.At.UnixNano(), nanos(o.Seen), o.Tag, payload, bodies[start:ends[j]])
			if err != nil {
				return fmt.Errorf("observation %d of %d (%s %s run %d): %w", first[j]+1, len(obs), o.Source, o.Kind, o.Run, err)
			}
			start = ends[j]
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 1 {
				seq, err := res.LastInsertId()
				if err != nil {
					return err
				}
				fresh, seqs = append(fresh, j), append(seqs, seq)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lateAll > 0 {
		s.late.Add(uint64(lateNew))
		s.log.Debug("facts of compacted runs not stored", "late", lateAll, "first_delivered", lateNew)
	}
	added := make([]pcl.Observation, 0, len(fresh))
	for i, j := range fresh {
		o := obs[first[j]]
		o.Seq = seqs[i]
		added = append(added, o)
	}
	return added, nil
}

// compactedRuns are the runs of the batch's facts (obs[first[j]]) that are compacted.
func compactedRuns(ctx context.Context, tx *sql.Tx, obs []pcl.Observation, first []int) (map[uint32]bool, error) {
	var runs []any
	seen := map[uint32]bool{}
	for _, i := range first {
		if r := obs[i].Run; !seen[r] {
			seen[r] = true
			runs = append(runs, int64(r))
		}
	}
	late := map[uint32]bool{}
	for len(runs) > 0 {
		n := min(len(runs), 500)
		rows, err := tx.QueryContext(ctx, `SELECT run FROM compactions WHERE run IN (`+placeholders(n)+`)`, runs[:n]...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var r int64
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return nil, err
			}
			late[uint32(r)] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		runs = runs[n:]
	}
	return late, nil
}

// countLate records the identities of the batch's facts of compacted runs and adds those not recorded
// yet to their runs' compactions. It returns how many were new and how many there were.
func countLate(ctx context.Context, tx *sql.Tx, obs []pcl.Observation, first []int, keys [][16]byte, late map[uint32]bool) (fresh, all int, err error) {
	if len(late) == 0 {
		return 0, 0, nil
	}
	perRun := map[uint32]int{}
	for j, i := range first {
		run := obs[i].Run
		if !late[run] {
			continue
		}
		all++
		res, err := tx.ExecContext(ctx, `INSERT INTO late_observations (run, key) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			int64(run), keys[j][:])
		if err != nil {
			return 0, 0, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, 0, err
		} else if n == 1 {
			perRun[run]++
			fresh++
		}
	}
	for run, n := range perRun {
		if _, err := tx.ExecContext(ctx, `UPDATE compactions SET late_observations = late_observations + ? WHERE run = ?`,
			n, int64(run)); err != nil {
			return 0, 0, err
		}
	}
	return fresh, all, nil
}

// LateObservations is how many distinct facts of compacted runs this Store's AppendObservations turned
// away (store.LateCounter).
func (s *Store) LateObservations() uint64 { return s.late.Load() }

// Observations returns the matching observations ordered by At, then Key, each with its Seq.
func (s *Store) Observations(ctx context.Context, q store.ObservationQuery) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	query, args := observationsQuery(q)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("query observations", err)
	}
	defer rows.Close()
	var out []pcl.Observation
	for rows.Next() {
		var (
			seq  int64
			body []byte
		)
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, s.wrap("query observations", err)
		}
		var o pcl.Observation
		if err := json.Unmarshal(body, &o); err != nil {
			return nil, s.wrap("query observations", fmt.Errorf("decode stored observation: %w", err))
		}
		o.Seq = seq
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("query observations", err)
	}
	return out, nil
}

// placeholders is "?, ?, ..." with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// observationsQuery is the SELECT for q. Reads name runs, which the (run, key) index serves, or payload
// hashes, which the partial payload index serves once the query says payload <> ” (SQLite uses a
// partial index only when the WHERE clause implies the index's condition).
func observationsQuery(q store.ObservationQuery) (string, []any) {
	var (
		where []string
		args  []any
	)
	in := func(col string, n int, arg func(i int) any) {
		if n == 0 {
			return
		}
		where = append(where, col+" IN ("+placeholders(n)+")")
		for i := range n {
			args = append(args, arg(i))
		}
	}
	in("run", len(q.Runs), func(i int) any { return int64(q.Runs[i]) })
	in("kind", len(q.Kinds), func(i int) any { return string(q.Kinds[i]) })
	in("source", len(q.Sources), func(i int) any { return string(q.Sources[i]) })
	if len(q.Payloads) > 0 {
		in("payload", len(q.Payloads), func(i int) any { return q.Payloads[i] })
		where = append(where, "payload <> ''")
	}
	in("tag", len(q.Tags), func(i int) any { return q.Tags[i] })
	if !q.SeenFrom.IsZero() {
		where = append(where, "seen >= ?")
		args = append(args, q.SeenFrom.UnixNano())
	}
	if !q.SeenTo.IsZero() {
		where = append(where, "seen < ?")
		args = append(args, q.SeenTo.UnixNano())
	}
	query := "SELECT rowid, body FROM observations"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at, key"
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	return query, args
}
