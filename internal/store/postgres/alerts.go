package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

// The alert evaluator's tables: episodes of alerts with their notification log, and silences. Each
// row's body is the value as JSON; the columns copy what the queries filter on, and each periodic read
// goes through a partial index of what is still live.

// SaveAlerts writes an evaluation's changes in one transaction.
func (s *Store) SaveAlerts(ctx context.Context, w store.AlertWrite) ([]store.Alert, error) {
	for _, a := range w.Save {
		if err := store.CheckAlert(a); err != nil {
			return nil, err
		}
	}
	out := make([]store.Alert, len(w.Save))
	copy(out, w.Save)
	err := s.write(ctx, "save alerts", func(tx pgx.Tx) error {
		if err := s.checkFence(ctx, tx); err != nil {
			return err
		}
		if len(w.Delete) > 0 {
			if _, err := tx.Exec(ctx, "DELETE FROM alerts WHERE id = ANY($1::bigint[])", w.Delete); err != nil {
				return fmt.Errorf("delete alerts %v: %w", w.Delete, err)
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

func saveAlert(ctx context.Context, tx pgx.Tx, a *store.Alert) error {
	open := func(err error) error {
		return apperr.Errorf(apperr.Conflict, "alert %q already has an episode that is not resolved: %w", a.Fingerprint, err)
	}
	if a.ID == 0 {
		// The ID is part of the body: insert, then write the body with it.
		err := tx.QueryRow(ctx, "INSERT INTO alerts (fingerprint, rule, state, run, live, body) VALUES ($1, $2, $3, $4, $5, '{}') RETURNING id",
			a.Fingerprint, a.Rule, a.State, int64(a.Run), a.Live()).Scan(&a.ID)
		if isUnique(err) {
			return open(err)
		}
		if err != nil {
			return fmt.Errorf("insert alert %q: %w", a.Fingerprint, err)
		}
	}
	body, err := json.Marshal(a)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode alert %q: %w", a.Fingerprint, err)
	}
	tag, err := tx.Exec(ctx, "UPDATE alerts SET fingerprint = $1, rule = $2, state = $3, run = $4, live = $5, body = $6 WHERE id = $7",
		a.Fingerprint, a.Rule, a.State, int64(a.Run), a.Live(), string(body), a.ID)
	if isUnique(err) {
		return open(err)
	}
	if err != nil {
		return fmt.Errorf("write alert %d: %w", a.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return apperr.Errorf(apperr.NotFound, "alert %d does not exist", a.ID)
	}
	return nil
}

// LiveAlerts returns the episodes not resolved or still owed to a notifier, oldest first.
func (s *Store) LiveAlerts(ctx context.Context) ([]store.Alert, error) {
	return s.queryAlerts(ctx, "read live alerts", "SELECT body FROM alerts WHERE live ORDER BY id")
}

// AlertHistory returns resolved episodes, newest first.
func (s *Store) AlertHistory(ctx context.Context, q store.AlertQuery) ([]store.Alert, error) {
	var a args
	where := []string{"state = 'resolved'"}
	if q.Run > 0 {
		where = append(where, "run = "+a.add(int64(q.Run)))
	}
	if q.Before > 0 {
		where = append(where, "id < "+a.add(q.Before))
	}
	query := "SELECT body FROM alerts WHERE " + strings.Join(where, " AND ") + " ORDER BY id DESC LIMIT " + a.add(limitOr(q.Limit, defaultLimit))
	return s.queryAlerts(ctx, "read alert history", query, a...)
}

func (s *Store) queryAlerts(ctx context.Context, what, query string, args ...any) ([]store.Alert, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	bodies, err := s.bodies(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	var out []store.Alert
	for _, body := range bodies {
		var a store.Alert
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			return nil, s.wrap(what, fmt.Errorf("decode stored alert: %w", err))
		}
		out = append(out, a)
	}
	return out, nil
}

// bodies runs a query of one text column.
func (s *Store) bodies(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
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
	err := s.write(ctx, "add silence", func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO silences (starts, ends, created, body) VALUES ($1, $2, $3, '{}') RETURNING id",
			si.Starts.UnixNano(), si.Ends.UnixNano(), si.Created.UnixNano()).Scan(&si.ID); err != nil {
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

func writeSilence(ctx context.Context, tx pgx.Tx, si store.Silence) error {
	body, err := json.Marshal(si)
	if err != nil {
		return apperr.Errorf(apperr.Invalid, "encode silence: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE silences SET starts = $1, ends = $2, body = $3 WHERE id = $4",
		si.Starts.UnixNano(), si.Ends.UnixNano(), string(body), si.ID); err != nil {
		return fmt.Errorf("write silence %d: %w", si.ID, err)
	}
	return nil
}

// ExpireSilence ends a silence at `at`, with its audit entry, in one transaction. The row is locked
// (FOR UPDATE) so that two operators ending one silence at once do not both succeed.
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
	err := s.write(ctx, fmt.Sprintf("expire silence %d", id), func(tx pgx.Tx) error {
		var body string
		err := tx.QueryRow(ctx, "SELECT body FROM silences WHERE id = $1 FOR UPDATE", id).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.Errorf(apperr.NotFound, "silence %d does not exist", id)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(body), &si); err != nil {
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
	list, err := s.querySilences(ctx, "SELECT body FROM silences WHERE id = $1", id)
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
	var (
		a     args
		where []string
	)
	if !q.ActiveAt.IsZero() {
		at := a.add(q.ActiveAt.UnixNano())
		where = append(where, "ends > "+at+" AND starts <= "+at)
	}
	if !q.NotEndedAt.IsZero() {
		where = append(where, "ends > "+a.add(q.NotEndedAt.UnixNano()))
	}
	query := "SELECT body FROM silences"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return s.querySilences(ctx, query+" ORDER BY id DESC LIMIT "+a.add(limitOr(q.Limit, defaultLimit)), a...)
}

func (s *Store) querySilences(ctx context.Context, query string, args ...any) ([]store.Silence, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	bodies, err := s.bodies(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("read silences", err)
	}
	var out []store.Silence
	for _, body := range bodies {
		var si store.Silence
		if err := json.Unmarshal([]byte(body), &si); err != nil {
			return nil, s.wrap("read silences", fmt.Errorf("decode stored silence: %w", err))
		}
		out = append(out, si)
	}
	return out, nil
}

// DeadLetters returns the dead outbox entries that no later delivered version of the same run has
// replaced at the same target, newest first.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]store.OutboxEntry, error) {
	return s.queryOutbox(ctx, "read dead letters", `SELECT `+outboxColumns+` FROM outbox AS o
	WHERE o.dead AND NOT EXISTS (SELECT 1 FROM outbox AS n
		WHERE n.target = o.target AND n.run = o.run AND n.version > o.version AND n.delivered IS NOT NULL)
	ORDER BY o.id DESC LIMIT $1`, limitOr(limit, defaultLimit))
}
