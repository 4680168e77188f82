package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/store"
)

func insertOutbox(ctx context.Context, tx *sql.Tx, e store.OutboxEntry) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (target, run, version, payload, created, next_attempt)
		VALUES (?, ?, ?, ?, ?, ?)`,
		e.Target, int64(e.Run), e.Version, e.Payload, e.Created.UnixNano(), e.NextAttempt.UnixNano())
	if isConstraint(err) {
		return apperr.Errorf(apperr.Conflict, "outbox entry %s for run %d version %d already exists: %w",
			e.Target, e.Run, e.Version, err)
	}
	if err != nil {
		return fmt.Errorf("insert outbox entry for %s: %w", e.Target, err)
	}
	return nil
}

const outboxColumns = `id, target, run, version, payload, created, next_attempt, attempts, last_error, delivered, dead`

// PendingOutbox returns a target's entries that are due, neither delivered nor dead, in run then version
// order: Tier-0 must hear about runs in the order it releases them.
func (s *Store) PendingOutbox(ctx context.Context, target string, now time.Time, limit int) ([]store.OutboxEntry, error) {
	return s.queryOutbox(ctx, "read pending outbox of "+target,
		`SELECT `+outboxColumns+` FROM outbox
		WHERE target = ? AND delivered IS NULL AND dead = 0 AND next_attempt <= ?
		ORDER BY run, version LIMIT ?`,
		target, now.UnixNano(), limitOr(limit, defaultLimit))
}

// Outbox lists a target's entries ("" for every target), newest first.
func (s *Store) Outbox(ctx context.Context, target string, limit int) ([]store.OutboxEntry, error) {
	if target == "" {
		return s.queryOutbox(ctx, "read outbox",
			`SELECT `+outboxColumns+` FROM outbox ORDER BY id DESC LIMIT ?`, limitOr(limit, defaultLimit))
	}
	return s.queryOutbox(ctx, "read outbox of "+target,
		`SELECT `+outboxColumns+` FROM outbox WHERE target = ? ORDER BY id DESC LIMIT ?`,
		target, limitOr(limit, defaultLimit))
}

func (s *Store) queryOutbox(ctx context.Context, what, query string, args ...any) ([]store.OutboxEntry, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	var out []store.OutboxEntry
	for rows.Next() {
		var (
			e                  store.OutboxEntry
			run                int64
			created, next, del sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &e.Target, &run, &e.Version, &e.Payload, &created, &next,
			&e.Attempts, &e.LastError, &del, &e.Dead); err != nil {
			return nil, s.wrap(what, err)
		}
		e.Run = uint32(run)
		e.Created = fromNanos(created)
		e.NextAttempt = fromNanos(next)
		if del.Valid {
			t := fromNanos(del)
			e.Delivered = &t
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// MarkDelivered records a delivery; apperr.NotFound for an unknown entry.
func (s *Store) MarkDelivered(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		at = s.now()
	}
	if err := store.Storable(at); err != nil {
		return apperr.Errorf(apperr.Invalid, "mark outbox entry %d delivered: %w", id, err)
	}
	return s.updateOutbox(ctx, id, fmt.Sprintf("mark outbox entry %d delivered", id),
		"UPDATE outbox SET delivered = ?, last_attempt = ? WHERE id = ?", at.UnixNano(), at.UnixNano(), id)
}

// MarkFailed records a failed attempt; dead gives the entry up. apperr.NotFound for an unknown entry.
func (s *Store) MarkFailed(ctx context.Context, id int64, at, next time.Time, errText string, dead bool) error {
	if at.IsZero() {
		at = s.now()
	}
	if next.IsZero() {
		next = at
	}
	if err := store.Storable(at, next); err != nil {
		return apperr.Errorf(apperr.Invalid, "mark outbox entry %d failed: %w", id, err)
	}
	return s.updateOutbox(ctx, id, fmt.Sprintf("mark outbox entry %d failed", id),
		`UPDATE outbox SET attempts = attempts + 1, last_attempt = ?, next_attempt = ?, last_error = ?, dead = ?
		WHERE id = ?`, at.UnixNano(), next.UnixNano(), errText, dead, id)
}

func (s *Store) updateOutbox(ctx context.Context, id int64, what, query string, args ...any) error {
	return s.write(ctx, what, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return apperr.Errorf(apperr.NotFound, "outbox entry %d does not exist", id)
		}
		return nil
	})
}

func insertAudit(ctx context.Context, tx *sql.Tx, e store.AuditEntry) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO audit (at, run, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
		e.At.UnixNano(), int64(e.Run), e.Actor, e.Action, e.Detail)
	if err != nil {
		return fmt.Errorf("insert audit entry %q: %w", e.Action, err)
	}
	return nil
}

// AppendAudit stores an audit entry outside a decision; At defaults to now.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.now().UTC()
	}
	if err := store.CheckAudit(e); err != nil {
		return err
	}
	return s.write(ctx, "append audit entry", func(tx *sql.Tx) error { return insertAudit(ctx, tx, e) })
}

// Audit returns the matching audit entries, newest first.
func (s *Store) Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if q.Run > 0 {
		add("run = ?", int64(q.Run))
	}
	if q.Actor != "" {
		add("actor = ?", q.Actor)
	}
	if !q.From.IsZero() {
		add("at >= ?", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		add("at < ?", q.To.UnixNano())
	}
	query := "SELECT id, at, run, actor, action, detail FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at DESC, id DESC LIMIT ?"
	args = append(args, limitOr(q.Limit, defaultLimit))
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("read audit", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var (
			e   store.AuditEntry
			at  sql.NullInt64
			run int64
		)
		if err := rows.Scan(&e.ID, &at, &run, &e.Actor, &e.Action, &e.Detail); err != nil {
			return nil, s.wrap("read audit", err)
		}
		e.At = fromNanos(at)
		e.Run = uint32(run)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("read audit", err)
	}
	return out, nil
}
