package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The alert evaluator's tables (migration 0007): episodes of alerts with their notification log, and
// silences. Each row's body is the value as JSON; the columns copy what the queries filter on, and each
// periodic read goes through a partial index of what is still live.

// SaveAlerts writes an evaluation's changes in one transaction.
func (s *Store) SaveAlerts(ctx context.Context, w store.AlertWrite) ([]store.Alert, error) {
	for _, a := range w.Save {
		if err := store.CheckAlert(a); err != nil {
			return nil, err
		}
	}
	out := make([]store.Alert, len(w.Save))
	copy(out, w.Save)
	err := s.write(ctx, "save alerts", func(tx *sql.Tx) error {
		for _, id := range w.Delete {
			if _, err := tx.ExecContext(ctx, "DELETE FROM alerts WHERE id = ?", id); err != nil {
				return fmt.Errorf("delete alert %d: %w", id, err)
			}
		}
		for i := range out {
			if err := saveAlert(ctx, tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func saveAlert(ctx context.Context, tx *sql.Tx, a *store.Alert) error {
	if a.ID == 0 {
		// The ID is part of the body: insert, then write the body with it.
		res, err := tx.ExecContext(ctx, "INSERT INTO alerts (fingerprint, rule, state, run, live, body) VALUES (?, ?, ?, ?, ?, '{}')",
			a.Fingerprint, a.Rule, a.State, int64(a.Run), a.Live())
		if isConstraint(err) {
			return apperr.Errorf(apperr.Conflict, "alert %q already has an episode that is not resolved: %w", a.Fingerprint, err)
		}
		if err != nil {
			return fmt.Errorf("insert alert %q: %w", a.Fingerprint, err)
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert alert %q: %w", a.Fingerprint, err)
		}
	}
	body, err := json.Marshal(a)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode alert %q: %w", a.Fingerprint, err)
	}
	res, err := tx.ExecContext(ctx, "UPDATE alerts SET fingerprint = ?, rule = ?, state = ?, run = ?, live = ?, body = ? WHERE id = ?",
		a.Fingerprint, a.Rule, a.State, int64(a.Run), a.Live(), string(body), a.ID)
	if isConstraint(err) {
		return apperr.Errorf(apperr.Conflict, "alert %q already has an episode that is not resolved: %w", a.Fingerprint, err)
	}
	if err != nil {
		return fmt.Errorf("write alert %d: %w", a.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("write alert %d: %w", a.ID, err)
	} else if n == 0 {
		return apperr.Errorf(apperr.NotFound, "alert %d does not exist", a.ID)
	}
	return nil
}

// liveAlertsQuery reads the partial index of live episodes (TestAlertQueriesUseIndexes).
const liveAlertsQuery = "SELECT body FROM alerts WHERE live = 1 ORDER BY id"

// LiveAlerts returns the episodes not resolved or still owed to a notifier, oldest first.
func (s *Store) LiveAlerts(ctx context.Context) ([]store.Alert, error) {
	return s.queryAlerts(ctx, "read live alerts", liveAlertsQuery)
}

// AlertHistory returns resolved episodes, newest first.
func (s *Store) AlertHistory(ctx context.Context, q store.AlertQuery) ([]store.Alert, error) {
	where, args := []string{"state = 'resolved'"}, []any{}
	if q.Run > 0 {
		where, args = append(where, "run = ?"), append(args, int64(q.Run))
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	args = append(args, limitOr(q.Limit, defaultLimit))
	return s.queryAlerts(ctx, "read alert history",
		"SELECT body FROM alerts WHERE "+strings.Join(where, " AND ")+" ORDER BY id DESC LIMIT ?", args...)
}

func (s *Store) queryAlerts(ctx context.Context, what, query string, args ...any) ([]store.Alert, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	var out []store.Alert
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, s.wrap(what, err)
		}
		var a store.Alert
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, s.wrap(what, fmt.Errorf("decode stored alert: %w", err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// AddSilence stores a new silence and its audit entry in one transaction.
func (s *Store) AddSilence(ctx context.Context, si store.Silence, audit store.AuditEntry) (store.Silence, error) {
	if si.Created.IsZero() {
		si.Created = s.now().UTC()
	}
	si.ID, si.ExpiredBy = 0, ""
	if err := store.CheckSilence(si); err != nil {
		return store.Silence{}, err
	}
	if audit.At.IsZero() {
		audit.At = si.Created
	}
	if err := store.CheckAudit(audit); err != nil {
		return store.Silence{}, err
	}
	err := s.write(ctx, "add silence", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "INSERT INTO silences (starts, ends, created, body) VALUES (?, ?, ?, '{}')",
			si.Starts.UnixNano(), si.Ends.UnixNano(), si.Created.UnixNano())
		if err != nil {
			return fmt.Errorf("insert silence: %w", err)
		}
		if si.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert silence: %w", err)
		}
		if err := writeSilence(ctx, tx, si); err != nil {
			return err
		}
		return insertAudit(ctx, tx, audit)
	})
	if err != nil {
		return store.Silence{}, err
	}
	return si, nil
}

func writeSilence(ctx context.Context, tx *sql.Tx, si store.Silence) error {
	body, err := json.Marshal(si)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode silence: %w", err)
	}
	_, err = tx.ExecContext(ctx, "UPDATE silences SET starts = ?, ends = ?, body = ? WHERE id = ?",
		si.Starts.UnixNano(), si.Ends.UnixNano(), string(body), si.ID)
	if err != nil {
		return fmt.Errorf("write silence %d: %w", si.ID, err)
	}
	return nil
}

// ExpireSilence ends a silence at `at`, with its audit entry, in one transaction.
func (s *Store) ExpireSilence(ctx context.Context, id int64, at time.Time, actor string, audit store.AuditEntry) (store.Silence, error) {
	if at.IsZero() {
		at = s.now().UTC()
	}
	if strings.TrimSpace(actor) == "" {
		return store.Silence{}, apperr.Errorf(apperr.Invalid, "expire silence %d: who ends it must be named", id)
	}
	if audit.At.IsZero() {
		audit.At = at
	}
	if err := store.CheckAudit(audit); err != nil {
		return store.Silence{}, err
	}
	if err := store.Storable(at); err != nil {
		return store.Silence{}, apperr.Errorf(apperr.Invalid, "expire silence %d: %w", id, err)
	}
	var si store.Silence
	err := s.write(ctx, fmt.Sprintf("expire silence %d", id), func(tx *sql.Tx) error {
		var body []byte
		err := tx.QueryRowContext(ctx, "SELECT body FROM silences WHERE id = ?", id).Scan(&body)
		if errors.Is(err, sql.ErrNoRows) {
			return apperr.Errorf(apperr.NotFound, "silence %d does not exist", id)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(body, &si); err != nil {
			return fmt.Errorf("decode stored silence %d: %w", id, err)
		}
		if !si.Ends.After(at) {
			return apperr.Errorf(apperr.Conflict, "silence %d already ended at %s", id, si.Ends.UTC().Format(time.RFC3339))
		}
		si.Ends, si.ExpiredBy = at, actor
		if si.Starts.After(at) {
			si.Starts = at // ended before it began
		}
		if err := writeSilence(ctx, tx, si); err != nil {
			return err
		}
		return insertAudit(ctx, tx, audit)
	})
	if err != nil {
		return store.Silence{}, err
	}
	return si, nil
}

// Silence returns one silence.
func (s *Store) Silence(ctx context.Context, id int64) (store.Silence, error) {
	list, err := s.querySilences(ctx, "SELECT body FROM silences WHERE id = ?", id)
	if err != nil {
		return store.Silence{}, err
	}
	if len(list) == 0 {
		return store.Silence{}, apperr.Errorf(apperr.NotFound, "silence %d does not exist", id)
	}
	return list[0], nil
}

// Silences returns the matching silences, newest first.
func (s *Store) Silences(ctx context.Context, q store.SilenceQuery) ([]store.Silence, error) {
	var where []string
	var args []any
	if !q.ActiveAt.IsZero() {
		where, args = append(where, "ends > ? AND starts <= ?"), append(args, q.ActiveAt.UnixNano(), q.ActiveAt.UnixNano())
	}
	if !q.NotEndedAt.IsZero() {
		where, args = append(where, "ends > ?"), append(args, q.NotEndedAt.UnixNano())
	}
	query := "SELECT body FROM silences"
	if len(where) > 0 {
		// By their end: the silences that have not ended are a range of the index, however many ended
		// before (the primary key's order would visit them all).
		query += " INDEXED BY silences_ends WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limitOr(q.Limit, defaultLimit))
	return s.querySilences(ctx, query+" ORDER BY id DESC LIMIT ?", args...)
}

func (s *Store) querySilences(ctx context.Context, query string, args ...any) ([]store.Silence, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("read silences", err)
	}
	defer rows.Close()
	var out []store.Silence
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, s.wrap("read silences", err)
		}
		var si store.Silence
		if err := json.Unmarshal(body, &si); err != nil {
			return nil, s.wrap("read silences", fmt.Errorf("decode stored silence: %w", err))
		}
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("read silences", err)
	}
	return out, nil
}

// DeadLetters returns the dead outbox entries that no later delivered version of the same run has
// replaced at the same target, newest first. It reads the small index of dead entries and, for each,
// the unique (target, run, version) index: its cost grows with the deliveries given up, not with the
// outbox.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]store.OutboxEntry, error) {
	return s.queryOutbox(ctx, "read dead letters", deadLettersQuery, limitOr(limit, defaultLimit))
}

const deadLettersQuery = `SELECT ` + outboxColumns + ` FROM outbox AS o INDEXED BY outbox_dead
	WHERE o.dead = 1 AND NOT EXISTS (SELECT 1 FROM outbox AS n
		WHERE n.target = o.target AND n.run = o.run AND n.version > o.version AND n.delivered IS NOT NULL)
	ORDER BY o.id DESC LIMIT ?`
