package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// appendObservations inserts a batch in one statement. The counters row's UPDATE takes its lock and
// hands out the batch's block of numbers (base+1 ... base+n, by input position); the INSERT reads the
// base from it, so it runs after the lock is held. Facts already stored are skipped by ON CONFLICT on
// their identity (any other constraint still fails the batch), and their numbers stay unused: Seqs
// have gaps, and grow with commit order.
const appendObservations = `WITH c AS (
		UPDATE counters SET value = value + $1 WHERE name = 'observations' RETURNING value - $1 AS base
	)
	INSERT INTO observations (seq, run, key, source, kind, at, seen, tag, payload, body)
	SELECT c.base + u.ord, u.run, u.key, u.source, u.kind, u.at, u.seen, u.tag, u.payload, u.body
	FROM c, unnest($2::bigint[], $3::bytea[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[])
		WITH ORDINALITY AS u(run, key, source, kind, at, seen, tag, payload, body, ord)
	ORDER BY u.ord
	ON CONFLICT (run, key) DO NOTHING
	RETURNING seq - (SELECT base FROM c), seq`

// batch is a batch of facts encoded as the columns of appendObservations.
type batch struct {
	run, at                        []int64
	seen                           []*int64
	key                            [][]byte
	source, kind, tag, payload, js []string
	index                          []int // position in the caller's slice of each fact
}

func (b *batch) add(i int, o *pcl.Observation, key [16]byte, body string) {
	payload := ""
	if o.Kind == pcl.KindIOV {
		payload = o.Payload
	}
	b.run = append(b.run, int64(o.Run))
	b.key = append(b.key, key[:])
	b.source = append(b.source, string(o.Source))
	b.kind = append(b.kind, string(o.Kind))
	b.at = append(b.at, o.At.UnixNano())
	b.seen = append(b.seen, nanos(o.Seen))
	b.tag = append(b.tag, o.Tag)
	b.payload = append(b.payload, payload)
	b.js = append(b.js, body)
	b.index = append(b.index, i)
}

// insert runs the batch in tx and returns, for each fact inserted, its position in the batch and its
// Seq, in batch order.
func (b *batch) insert(ctx context.Context, tx pgx.Tx) (pos []int, seqs []int64, err error) {
	if len(b.run) == 0 {
		return nil, nil, nil
	}
	rows, err := tx.Query(ctx, appendObservations, int64(len(b.run)),
		b.run, b.key, b.source, b.kind, b.at, b.seen, b.tag, b.payload, b.js)
	if err != nil {
		return nil, nil, err
	}
	type row struct{ off, seq int64 }
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.off, &x.seq)
		return x, err
	})
	if err != nil {
		return nil, nil, err
	}
	// RETURNING promises no order: put the facts back in input order by their 1-based positions.
	bySeq := make([]int64, len(b.run)+1)
	for _, x := range got {
		if x.off < 1 || x.off > int64(len(b.run)) {
			return nil, nil, fmt.Errorf("append: the server returned position %d of a batch of %d", x.off, len(b.run))
		}
		bySeq[x.off] = x.seq
	}
	for off := 1; off <= len(b.run); off++ {
		if bySeq[off] != 0 {
			pos, seqs = append(pos, off-1), append(seqs, bySeq[off])
		}
	}
	return pos, seqs, nil
}

// AppendObservations validates the whole batch, encodes it, and then, in one transaction, inserts each
// fact the store does not hold yet and returns those, in input order, each with its Seq.
func (s *Store) AppendObservations(ctx context.Context, obs []pcl.Observation) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(obs) == 0 {
		return nil, nil
	}
	var b batch
	seen := make(map[[16]byte]struct{}, len(obs))
	var buf []byte
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
			continue // a fact repeated within the batch counts once, at its first place
		}
		seen[k] = struct{}{}
		var err error
		if buf, err = o.AppendJSON(buf[:0]); err != nil {
			return nil, apperr.Errorf(apperr.Invalid, "observation %d of %d (%s %s run %d): encode: %w",
				i+1, len(obs), o.Source, o.Kind, o.Run, err)
		}
		b.add(i, o, k, string(buf))
	}
	var pos []int
	var seqs []int64
	err := s.write(ctx, "append observations", func(tx pgx.Tx) error {
		var err error
		pos, seqs, err = b.insert(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	added := make([]pcl.Observation, 0, len(pos))
	for i, p := range pos {
		o := obs[b.index[p]]
		o.Seq = seqs[i]
		added = append(added, o)
	}
	return added, nil
}

// Observations returns the matching observations ordered by At, then Key, each with its Seq.
func (s *Store) Observations(ctx context.Context, q store.ObservationQuery) ([]pcl.Observation, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	var (
		a     args
		where []string
	)
	if len(q.Runs) > 0 {
		runs := make([]int64, len(q.Runs))
		for i, r := range q.Runs {
			runs[i] = int64(r)
		}
		where = append(where, "run = ANY("+a.add(runs)+"::bigint[])")
	}
	strs := func(col string, vs []string) {
		if len(vs) > 0 {
			where = append(where, col+" = ANY("+a.add(vs)+"::text[])")
		}
	}
	kinds := make([]string, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = string(k)
	}
	sources := make([]string, len(q.Sources))
	for i, k := range q.Sources {
		sources[i] = string(k)
	}
	strs("kind", kinds)
	strs("source", sources)
	if len(q.Payloads) > 0 {
		strs("payload", q.Payloads)
		where = append(where, "payload <> ''")
	}
	strs("tag", q.Tags)
	if !q.SeenFrom.IsZero() {
		where = append(where, "seen >= "+a.add(q.SeenFrom.UnixNano()))
	}
	if !q.SeenTo.IsZero() {
		where = append(where, "seen < "+a.add(q.SeenTo.UnixNano()))
	}
	query := "SELECT seq, body FROM observations"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at, key"
	if q.Limit > 0 {
		query += " LIMIT " + a.add(q.Limit)
	}
	rows, err := s.pool.Query(ctx, query, a...)
	if err != nil {
		return nil, s.wrap("query observations", err)
	}
	defer rows.Close()
	var out []pcl.Observation
	for rows.Next() {
		var (
			seq  int64
			body string
		)
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, s.wrap("query observations", err)
		}
		var o pcl.Observation
		if err := json.Unmarshal([]byte(body), &o); err != nil {
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
