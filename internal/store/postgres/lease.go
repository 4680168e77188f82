package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The leader lease: a row (holder, expiry, epoch) taken and renewed in transactions, never a session
// advisory lock (those break behind connection poolers, and die with a connection rather than with a
// process). Of several processes on one database, the one holding the lease leads. A Fenced store
// checks, in the transaction of every leader-only write, that its epoch still holds the lease; the row
// is read FOR SHARE there, and a take-over updates it, so a take-over waits for the writes of the epoch
// it ends, and a deposed leader that wakes up has none of its writes accepted. A leader frozen inside
// such a transaction would hold the row for as long as it stays frozen; the server ends its session
// once it has sat idle for Options.TxIdleTimeout (below the TTL), and a take-over waits for the row no
// longer than a third of the TTL, so a frozen leader delays no take-over past the lease's expiry.
//
// internal/app's lease loop (leader.go) takes and renews it, and runs the leader's parts through the
// Fenced view.

// leaderLease names the agency's lease row.
const leaderLease = "leader"

// Lease is the state of the leader lease.
type Lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
	Epoch   int64     `json:"epoch"`
}

// AcquireLease takes or renews the leader lease for holder until now+ttl, in one transaction, and says
// whether holder leads. A holder renewing its own live lease keeps its epoch; taking a lease that has
// expired (or taking it back after it lapsed) starts a new epoch; a live lease of another holder is
// left as it is and returned. now is the caller's clock: replicas' clocks must agree to well within
// the TTL (NTP).
func (s *Store) AcquireLease(ctx context.Context, holder string, ttl time.Duration, now time.Time) (Lease, bool, error) {
	if strings.TrimSpace(holder) == "" {
		return Lease{}, false, apperr.Errorf(apperr.Invalid, "acquire lease: no holder named")
	}
	if ttl <= 0 {
		return Lease{}, false, apperr.Errorf(apperr.Invalid, "acquire lease: the TTL must be positive, not %s", ttl)
	}
	if err := store.Storable(now, now.Add(ttl)); err != nil || now.IsZero() {
		return Lease{}, false, apperr.Errorf(apperr.Invalid, "acquire lease: bad time %s", now)
	}
	var l Lease
	var leads bool
	err := s.write(ctx, "acquire the leader lease", func(tx pgx.Tx) error {
		// Make the row if there is none, then lock it: two processes starting on a new database both
		// insert, one wins, and both then read the same row.
		// Wait for the row no longer than a third of the TTL: a leader frozen inside a fenced write
		// holds it FOR SHARE until the server ends its idle session (Options.TxIdleTimeout), and a
		// renewal that waits past its lease is worth nothing. The caller tries again on its next tick.
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", max((ttl/3).Milliseconds(), 1))); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO lease (name, holder, expires, epoch) VALUES ($1, '', 0, 1) ON CONFLICT (name) DO NOTHING", leaderLease); err != nil {
			return err
		}
		cur, err := readLease(ctx, tx, "FOR UPDATE")
		if err != nil {
			return err
		}
		live := cur.Expires.After(now)
		switch {
		case live && cur.Holder == holder:
			l = Lease{Holder: holder, Expires: now.Add(ttl), Epoch: cur.Epoch}
		case !live && cur.Holder == "" && cur.Epoch == 1:
			l = Lease{Holder: holder, Expires: now.Add(ttl), Epoch: 1} // the first leader
		case !live:
			l = Lease{Holder: holder, Expires: now.Add(ttl), Epoch: cur.Epoch + 1}
		default:
			l = cur
			return nil
		}
		leads = true
		_, err = tx.Exec(ctx, "UPDATE lease SET holder = $1, expires = $2, epoch = $3 WHERE name = $4",
			l.Holder, l.Expires.UnixNano(), l.Epoch, leaderLease)
		return err
	})
	if err != nil {
		return Lease{}, false, err
	}
	return l, leads, nil
}

// ReleaseLease gives the lease up at once (a graceful shutdown), so that another process can lead
// without waiting for it to expire. It does nothing unless holder holds epoch.
func (s *Store) ReleaseLease(ctx context.Context, holder string, epoch int64) error {
	return s.write(ctx, "release the leader lease", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE lease SET expires = 0 WHERE name = $1 AND holder = $2 AND epoch = $3", leaderLease, holder, epoch)
		return err
	})
}

// CurrentLease reads the lease; the zero Lease if none was ever taken.
func (s *Store) CurrentLease(ctx context.Context) (Lease, error) {
	if err := s.usable(); err != nil {
		return Lease{}, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Lease{}, s.wrap("read the leader lease", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	l, err := readLease(ctx, tx, "")
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, nil
	}
	if err != nil {
		return Lease{}, s.wrap("read the leader lease", err)
	}
	if l.Holder == "" {
		return Lease{}, nil
	}
	return l, nil
}

func readLease(ctx context.Context, tx pgx.Tx, lock string) (Lease, error) {
	var l Lease
	var expires int64
	if err := tx.QueryRow(ctx, "SELECT holder, expires, epoch FROM lease WHERE name = $1 "+lock, leaderLease).
		Scan(&l.Holder, &expires, &l.Epoch); err != nil {
		return Lease{}, err
	}
	l.Expires = time.Unix(0, expires).UTC()
	return l, nil
}

// Fenced returns a view of the store whose leader-only writes (SaveDecision with its outbox entries,
// MarkDelivered, MarkFailed, SaveAlerts) succeed only while holder still holds the lease at epoch:
// otherwise they fail with apperr.Conflict and write nothing. Other calls behave as on s. Closing the
// view closes s.
func (s *Store) Fenced(holder string, epoch int64) *Store {
	return &Store{name: s.name, pool: s.pool, now: s.now, log: s.log, closed: s.closed, late: s.late, states: s.states, fence: &fence{holder: holder, epoch: epoch}}
}

// fence is a Fenced view's fencing token.
type fence struct {
	holder string
	epoch  int64
}

// checkFence runs first in a leader-only write's transaction: it reads the lease row FOR SHARE, so
// that a take-over (which updates it) waits until this transaction ends, and refuses the write when
// the view's epoch no longer holds the lease.
func (s *Store) checkFence(ctx context.Context, tx pgx.Tx) error {
	if s.fence == nil {
		return nil
	}
	cur, err := readLease(ctx, tx, "FOR SHARE")
	if errors.Is(err, pgx.ErrNoRows) {
		cur = Lease{}
	} else if err != nil {
		return fmt.Errorf("check the leader lease: %w", err)
	}
	if cur.Holder != s.fence.holder || cur.Epoch != s.fence.epoch {
		return apperr.Errorf(apperr.Conflict, "%s is no longer the leader (it held epoch %d; the lease is %s's, epoch %d): write refused",
			s.fence.holder, s.fence.epoch, cur.Holder, cur.Epoch)
	}
	return nil
}
