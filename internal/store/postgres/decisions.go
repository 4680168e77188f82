package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// SaveDecision writes a new decision version with the run's state, its outbox entries and its audit
// entries in one transaction. Two writers that read the same current version both try to insert the
// next one; the primary key (run, version) lets one win, and the other's unique violation is
// apperr.Conflict, as a stale version read in the transaction is.
func (s *Store) SaveDecision(ctx context.Context, w store.DecisionWrite) (pcl.Decision, error) {
	if err := s.usable(); err != nil {
		return pcl.Decision{}, err
	}
	w, err := store.CompleteDecision(w, s.now())
	if err != nil {
		return pcl.Decision{}, err
	}
	d := w.Decision
	stale := func(current int64) error {
		return apperr.Errorf(apperr.Conflict,
			"decision for run %d: version %d is stale or out of order (the run is at version %d, the next is %d)",
			d.Run, d.Version, current, current+1)
	}
	err = s.write(ctx, fmt.Sprintf("save decision %d of run %d", d.Version, d.Run), func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		var current int64
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM decisions WHERE run = $1",
			int64(d.Run)).Scan(&current); err != nil {
			return fmt.Errorf("read current version: %w", err)
		}
		if d.Version != current+1 {
			return stale(current)
		}
		body, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("encode decision: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO decisions (run, version, state, decided, body) VALUES ($1, $2, $3, $4, $5)",
			int64(d.Run), d.Version, string(d.State), d.Decided.UnixNano(), string(body)); err != nil {
			if isUnique(err) {
				return stale(d.Version)
			}
			return fmt.Errorf("insert decision: %w", err)
		}
		if err := upsertRunState(ctx, tx, w.State); err != nil {
			return err
		}
		for _, e := range w.Outbox {
			if err := insertOutbox(ctx, tx, e); err != nil {
				return err
			}
		}
		for _, a := range w.Audit {
			if err := insertAudit(ctx, tx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return pcl.Decision{}, err
	}
	return d, nil
}

// Decisions returns a run's decisions, oldest first; none for an unknown run.
func (s *Store) Decisions(ctx context.Context, run uint32) ([]pcl.Decision, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("read decisions of run %d", run)
	rows, err := s.pool.Query(ctx, "SELECT body FROM decisions WHERE run = $1 ORDER BY version", int64(run))
	if err != nil {
		return nil, s.wrap(what, err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(what, err)
	}
	var out []pcl.Decision
	for _, body := range bodies {
		var d pcl.Decision
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			return nil, s.wrap(what, fmt.Errorf("decode: %w", err))
		}
		out = append(out, d)
	}
	return out, nil
}
