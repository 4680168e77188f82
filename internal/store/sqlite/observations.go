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

const insertObservation = `INSERT OR IGNORE INTO observations
	(key, run, source, kind, at, seen, tag, payload, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// obsRow is one observation ready to insert: the work done before the write lock is taken.
type obsRow struct {
	key     string
	tag     string
	payload string
	body    []byte
}

// AppendObservations validates the whole batch, then inserts it in one transaction with INSERT OR IGNORE
// and returns the observations whose row was new.
func (s *Store) AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(obs) == 0 {
		return nil, nil
	}
	// Validation, keys and JSON happen outside the transaction so that the single writer holds the lock
	// only for the inserts.
	rows := make([]obsRow, len(obs))
	for i := range obs {
		o := &obs[i]
		if err := o.Validate(); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d: %w", i+1, len(obs), err)
		}
		if err := storable(o.At, o.Seen); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d (%s %s run %d): %w",
				i+1, len(obs), o.Source, o.Kind, o.Run, err)
		}
		body, err := json.Marshal(o)
		if err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d: encode: %w", i+1, len(obs), err)
		}
		rows[i] = obsRow{key: o.Key(), tag: o.Tag, body: body}
		if o.Kind == pcl.KindIOV {
			rows[i].payload = o.Payload
		}
	}
	var added []pcl.Observation
	err := s.write(ctx, "append observations", func(tx *sql.Tx) error {
		added = added[:0]
		stmt, err := tx.PrepareContext(ctx, insertObservation)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range obs {
			o, r := &obs[i], &rows[i]
			res, err := stmt.ExecContext(ctx, r.key, int64(o.Run), string(o.Source), string(o.Kind),
				o.At.UnixNano(), nanos(o.Seen), r.tag, r.payload, r.body)
			if err != nil {
				return fmt.Errorf("observation %d (%s %s run %d): %w", i+1, o.Source, o.Kind, o.Run, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				added = append(added, *o)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// Observations returns the matching observations ordered by At, then Key.
func (s *Store) Observations(ctx context.Context, q store.ObservationQuery) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
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
	in("payload", len(q.Payloads), func(i int) any { return q.Payloads[i] })
	in("tag", len(q.Tags), func(i int) any { return q.Tags[i] })
	if !q.SeenFrom.IsZero() {
		where = append(where, "seen >= ?")
		args = append(args, q.SeenFrom.UnixNano())
	}
	if !q.SeenTo.IsZero() {
		where = append(where, "seen < ?")
		args = append(args, q.SeenTo.UnixNano())
	}
	query := "SELECT body FROM observations"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at, key"
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("query observations", err)
	}
	defer rows.Close()
	var out []pcl.Observation
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, s.wrap("query observations", err)
		}
		var o pcl.Observation
		if err := json.Unmarshal(body, &o); err != nil {
			return nil, s.wrap("query observations", fmt.Errorf("decode stored observation: %w", err))
		}
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
