package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// SaveDecision writes a new decision version with the run's state, its outbox entries and its audit
// entries in one transaction. The version check runs inside that transaction, on the single writer
// connection, so two callers racing for the same version cannot both win.
func (s *Store) SaveDecision(ctx context.Context, w store.DecisionWrite) (pcl.Decision, error) {
	if err := s.usable(); err != nil {
		return pcl.Decision{}, err
	}
	w, err := s.completeDecision(w)
	if err != nil {
		return pcl.Decision{}, err
	}
	d := w.Decision
	err = s.write(ctx, fmt.Sprintf("save decision %d of run %d", d.Version, d.Run), func(tx *sql.Tx) error {
		var current int64
		err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM decisions WHERE run = ?",
			int64(d.Run)).Scan(&current)
		if err != nil {
			return fmt.Errorf("read current version: %w", err)
		}
		if d.Version != current+1 {
			return apperr.Errorf(apperr.Conflict,
				"decision for run %d: version %d is stale or out of order (the run is at version %d, the next is %d)",
				d.Run, d.Version, current, current+1)
		}
		body, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("encode decision: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO decisions (run, version, state, decided, body) VALUES (?, ?, ?, ?, ?)",
			int64(d.Run), d.Version, string(d.State), d.Decided.UnixNano(), body); err != nil {
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

// completeDecision checks a DecisionWrite and fills in what the store owns (store.CompleteDecision, the
// rules every store applies), with the store's clock for an unset decision time.
func (s *Store) completeDecision(w store.DecisionWrite) (store.DecisionWrite, error) {
	return store.CompleteDecision(w, s.now())
}

// Decisions returns a run's decisions, oldest first; none for an unknown run.
func (s *Store) Decisions(ctx context.Context, run uint32) ([]pcl.Decision, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("read decisions of run %d", run)
	rows, err := s.reader.QueryContext(ctx, "SELECT body FROM decisions WHERE run = ? ORDER BY version", int64(run))
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	var out []pcl.Decision
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, s.wrap(what, err)
		}
		var d pcl.Decision
		if err := json.Unmarshal(body, &d); err != nil {
			return nil, s.wrap(what, fmt.Errorf("decode: %w", err))
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// isConstraint says whether err is a constraint violation (unique key, foreign key).
func isConstraint(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT }
