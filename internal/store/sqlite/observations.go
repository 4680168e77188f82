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

// insertObservations is the multi-row INSERT for n rows. RETURNING lists only the rows actually inserted:
// the ones OR IGNORE skipped (known facts, and repeats within the statement) are not returned.
func insertObservations(n int) string {
	var b strings.Builder
	b.WriteString("INSERT OR IGNORE INTO observations (key, run, source, kind, at, seen, tag, payload, body) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(" RETURNING key")
	return b.String()
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
	args := make([]any, 0, 9*len(obs))
	keys := make([]string, len(obs))
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
		payload := ""
		if o.Kind == pcl.KindIOV {
			payload = o.Payload
		}
		keys[i] = o.Key()
		args = append(args, keys[i], int64(o.Run), string(o.Source), string(o.Kind), o.At.UnixNano(),
			nanos(o.Seen), o.Tag, payload, body)
	}
	inserted := make(map[string]bool, len(obs))
	err := s.write(ctx, "append observations", func(tx *sql.Tx) error {
		clear(inserted)
		var full *sql.Stmt // the statement for a whole chunk, prepared once per batch
		defer func() {
			if full != nil {
				full.Close()
			}
		}()
		for lo := 0; lo < len(obs); lo += insertChunk {
			n := min(insertChunk, len(obs)-lo)
			var rows *sql.Rows
			var err error
			if n == insertChunk {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, insertObservations(n)); err != nil {
						return err
					}
				}
				rows, err = full.QueryContext(ctx, args[9*lo:9*(lo+n)]...)
			} else {
				rows, err = tx.QueryContext(ctx, insertObservations(n), args[9*lo:9*(lo+n)]...)
			}
			if err != nil {
				return fmt.Errorf("observations %d to %d: %w", lo+1, lo+n, err)
			}
			if err := collectKeys(rows, inserted); err != nil {
				return fmt.Errorf("observations %d to %d: %w", lo+1, lo+n, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Input order; a fact repeated in the batch was inserted once, and is returned once, at its first place.
	var added []pcl.Observation
	for i, k := range keys {
		if inserted[k] {
			added = append(added, obs[i])
			delete(inserted, k)
		}
	}
	return added, nil
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
