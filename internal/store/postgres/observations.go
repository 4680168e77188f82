package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// lockRuns locks FOR KEY SHARE, in run order, the state rows of the batch's runs that are released or
// compacted, and returns the compacted ones. The lock conflicts with CompactReleased's FOR UPDATE only
// (not with the agency's UPDATEs of a state, which change no key): a compaction running now makes this
// wait and then see the run compacted; one starting later waits for this transaction and summarises its
// facts. Open runs, the usual batch, are not locked (a lock writes the row): for one of them to be
// compacted before this transaction ends, a release would have to be decided and be older than the
// retention (at least a day, config.MinRetention) within it. A run without a state row cannot be
// compacted.
func lockRuns(ctx context.Context, tx pgx.Tx, batchRuns []int64) (map[int64]bool, error) {
	runs := slices.Clone(batchRuns)
	slices.Sort(runs)
	runs = slices.Compact(runs)
	rows, err := tx.Query(ctx, `SELECT run, compacted IS NOT NULL FROM run_states WHERE run = ANY($1::bigint[])
		AND (readiness = 'released' OR compacted IS NOT NULL) ORDER BY run FOR KEY SHARE`, runs)
	if err != nil {
		return nil, err
	}
	late := map[int64]bool{}
	for rows.Next() {
		var (
			run       int64
			compacted bool
		)
		if err := rows.Scan(&run, &compacted); err != nil {
			rows.Close()
			return nil, err
		}
		if compacted {
			late[run] = true
		}
	}
	rows.Close()
	return late, rows.Err()
}

// split parts the batch into the facts of runs not in late and those of late runs.
func (b *batch) split(late map[int64]bool) (*batch, batch) {
	var kept, lb batch
	for i := range b.run {
		to := &kept
		if late[b.run[i]] {
			to = &lb
		}
		to.run = append(to.run, b.run[i])
		to.key = append(to.key, b.key[i])
		to.source = append(to.source, b.source[i])
		to.kind = append(to.kind, b.kind[i])
		to.at = append(to.at, b.at[i])
		to.seen = append(to.seen, b.seen[i])
		to.tag = append(to.tag, b.tag[i])
		to.payload = append(to.payload, b.payload[i])
		to.js = append(to.js, b.js[i])
		to.index = append(to.index, b.index[i])
	}
	return &kept, lb
}

// countLate records the identities of the facts of compacted runs and adds those not recorded yet to
// their runs' compactions, in one statement; it returns how many were new.
func countLate(ctx context.Context, tx pgx.Tx, lb *batch) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `WITH ins AS (
			INSERT INTO late_observations (run, key) SELECT * FROM unnest($1::bigint[], $2::bytea[])
			ON CONFLICT DO NOTHING RETURNING run
		), per AS (SELECT run, count(*) AS n FROM ins GROUP BY run),
		upd AS (UPDATE compactions c SET late_observations = c.late_observations + per.n FROM per WHERE c.run = per.run RETURNING per.n)
		SELECT coalesce(sum(n), 0)::bigint FROM upd`, lb.run, lb.key).Scan(&n)
	return n, err
}

// LateObservations is how many distinct facts of compacted runs this Store's AppendObservations turned
// away (store.LateCounter).
func (s *Store) LateObservations() uint64 { return s.late.Load() }

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
	var (
		pos              []int
		seqs             []int64
		kept             *batch
		lateNew, lateAll int
	)
	err := s.write(ctx, "append observations", func(tx pgx.Tx) error {
		late, err := lockRuns(ctx, tx, b.run)
		if err != nil {
			return err
		}
		kept = &b
		lateAll = 0
		if len(late) > 0 {
			var lb batch
			kept, lb = b.split(late)
			lateAll = len(lb.run)
			if lateNew, err = countLate(ctx, tx, &lb); err != nil {
				return err
			}
		}
		pos, seqs, err = kept.insert(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if lateAll > 0 {
		s.late.Add(uint64(lateNew))
		s.log.Debug("facts of compacted runs not stored", "late", lateAll, "first_delivered", lateNew)
	}
	added := make([]pcl.Observation, 0, len(pos))
	for i, p := range pos {
		o := obs[kept.index[p]]
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
