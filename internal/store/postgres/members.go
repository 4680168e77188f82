package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The replicas' heartbeats (migration 0009): each replica says it is alive until now+ttl, every time it
// takes or renews the lease, so GET /api/v1/cluster can list the replicas serving. A heartbeat is not
// a leader-only write: every replica writes its own row.

// Heartbeat records that replica id is alive until now+ttl, and forgets the replicas whose heartbeat
// ran out more than an hour before now (a pod that was replaced), so the table holds the live ones.
func (s *Store) Heartbeat(ctx context.Context, id string, ttl time.Duration, now time.Time) error {
	if strings.TrimSpace(id) == "" {
		return apperr.Errorf(apperr.Invalid, "heartbeat: no replica named")
	}
	if ttl <= 0 {
		return apperr.Errorf(apperr.Invalid, "heartbeat: the TTL must be positive, not %s", ttl)
	}
	if err := store.Storable(now, now.Add(ttl)); err != nil || now.IsZero() {
		return apperr.Errorf(apperr.Invalid, "heartbeat: bad time %s", now)
	}
	return s.write(ctx, "record a heartbeat", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO members (id, expires) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET expires = EXCLUDED.expires",
			id, now.Add(ttl).UnixNano()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM members WHERE expires < $1", now.Add(-time.Hour).UnixNano())
		return err
	})
}

// Leave removes replica id's heartbeat at once (a graceful shutdown).
func (s *Store) Leave(ctx context.Context, id string) error {
	return s.write(ctx, "remove a heartbeat", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM members WHERE id = $1", id)
		return err
	})
}

// Members lists the replicas whose heartbeat has not run out at now, by name.
func (s *Store) Members(ctx context.Context, now time.Time) ([]string, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, "SELECT id FROM members WHERE expires > $1 ORDER BY id", now.UnixNano())
	if err != nil {
		return nil, s.wrap("list the replicas", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap("list the replicas", err)
	}
	return ids, nil
}
