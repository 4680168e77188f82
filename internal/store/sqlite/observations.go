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

// insertChunk is how many rows one INSERT statement carries. One statement per row spends most of its
// time in database/sql and the driver (argument conversion, statement reset, result) rather than in
// SQLite; 100 rows of 9 values stay well under SQLite's limit of 32766 parameters.
const insertChunk = 100

// insertObservations is the multi-row INSERT for n rows, all new: AppendObservations has already set
// aside the facts the store holds and the repeats within the batch.
func insertObservations(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO observations (key, run, source, kind, at, seen, tag, payload, body) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// existingKeys is the query for which of n keys are stored.
func existingKeys(n int) string {
	return "SELECT key FROM observations WHERE key IN (" + placeholders(n) + ")"
}

// AppendObservations validates the whole batch, then, in one transaction, looks up which facts are
// stored already and inserts the others, and returns those. (A lookup and a plain INSERT cost less than
// INSERT OR IGNORE ... RETURNING: the single writer holds the lock, so nothing can come in between.)
func (s *Store) AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(obs) == 0 {
		return nil, nil
	}
	// Validation, keys and JSON happen outside the transaction so that the single writer holds the lock
	// only for the database work. A fact repeated within the batch counts once, at its first place.
	keys := make([]string, 0, len(obs))
	first := make([]int, 0, len(obs))
	seen := make(map[string]bool, len(obs))
	for i := range obs {
		o := &obs[i]
		if err := o.Validate(); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d: %w", i+1, len(obs), err)
		}
		if err := storable(o.At, o.Seen); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d (%s %s run %d): %w",
				i+1, len(obs), o.Source, o.Kind, o.Run, err)
		}
		k := o.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
		first = append(first, i)
	}
	stored := make(map[string]bool)
	var fresh []int // indices into obs of the facts to insert
	err := s.write(ctx, "append observations", func(tx *sql.Tx) error {
		clear(stored)
		fresh = fresh[:0]
		for lo := 0; lo < len(keys); lo += lookupChunk {
			hi := min(lo+lookupChunk, len(keys))
			args := make([]any, hi-lo)
			for i, k := range keys[lo:hi] {
				args[i] = k
			}
			rows, err := tx.QueryContext(ctx, existingKeys(hi-lo), args...)
			if err != nil {
				return fmt.Errorf("look up stored observations: %w", err)
			}
			if err := collectKeys(rows, stored); err != nil {
				return fmt.Errorf("look up stored observations: %w", err)
			}
		}
		for j, k := range keys {
			if !stored[k] {
				fresh = append(fresh, j)
			}
		}
		return s.insertFresh(ctx, tx, obs, keys, first, fresh)
	})
	if err != nil {
		return nil, err
	}
	added := make([]pcl.Observation, 0, len(fresh))
	for _, j := range fresh {
		added = append(added, obs[first[j]])
	}
	return added, nil
}

// lookupChunk bounds the keys of one lookup (SQLite allows 32766 parameters).
const lookupChunk = 900

// insertFresh inserts the observations keys[j] for j in fresh, insertChunk rows a statement.
func (s *Store) insertFresh(ctx context.Context, tx *sql.Tx, obs []pcl.Observation, keys []string, first, fresh []int) error {
	var full *sql.Stmt // the statement for a whole chunk, prepared once per batch
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, 9*insertChunk)
	for lo := 0; lo < len(fresh); lo += insertChunk {
		hi := min(lo+insertChunk, len(fresh))
		args = args[:0]
		for _, j := range fresh[lo:hi] {
			o := &obs[first[j]]
			body, err := json.Marshal(o)
			if err != nil {
				return apperr.Errorf(apperr.Invalid, "observation %d: encode: %w", first[j]+1, err)
			}
			payload := ""
			if o.Kind == pcl.KindIOV {
				payload = o.Payload
			}
			args = append(args, keys[j], int64(o.Run), string(o.Source), string(o.Kind), o.At.UnixNano(),
				nanos(o.Seen), o.Tag, payload, body)
		}
		n := hi - lo
		var err error
		if n == insertChunk {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertObservations(n)); err != nil {
					return err
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertObservations(n), args...)
		}
		if err != nil {
			return fmt.Errorf("observations %d to %d of the new ones: %w", lo+1, hi, err)
		}
	}
	return nil
}

func collectKeys(rows *sql.Rows, into map[string]bool) error {
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return err
		}
		into[k] = true
	}
	return rows.Err()
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
