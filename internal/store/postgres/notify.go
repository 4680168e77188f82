package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Run notifications between replicas: the leader says, after it stored a run's state, which run
// changed (NotifyRun), and every replica listening (ListenRuns) reads that state and hands it to its
// page's live stream. The channel is named after the store's schema, so that instances sharing a
// database in schemas of their own do not hear each other. A notification is sent when the transaction
// that sends it commits, and is lost to a replica that is not listening then: a listener that
// listens again after a break is told so (ListenRuns' regained), and reads the runs it shows again
// from the store (each event carries a whole run state).
//
// LISTEN holds a session: behind PgBouncer in transaction mode it does not work; point
// store.dsn at the server, or at a pooler in session mode, for live pages on followers.

// RunNote is one notification: the replica that sent it, the run, and whether its decision changed.
type RunNote struct {
	From            string
	Run             uint32
	DecisionChanged bool
}

func (s *Store) runsChannel(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, error) {
	var schema string
	if err := q.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", err
	}
	return "spyagency_runs." + schema, nil
}

// NotifyRun tells the listening replicas that run's stored state changed.
func (s *Store) NotifyRun(ctx context.Context, n RunNote) error {
	if strings.ContainsAny(n.From, " \x00") || n.From == "" {
		return fmt.Errorf("notify: bad sender %q", n.From)
	}
	return s.write(ctx, "notify the replicas", func(tx pgx.Tx) error {
		ch, err := s.runsChannel(ctx, tx)
		if err != nil {
			return err
		}
		payload := fmt.Sprintf("%s %d %t", n.From, n.Run, n.DecisionChanged)
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, $2)", ch, payload)
		return err
	})
}

// ListenRuns calls fn with every run notification until ctx ends, on a connection of its own taken
// from the pool for the whole time (a session). When the connection breaks it listens again after a
// second, and once it does, calls regained (nil: nothing) so that the caller can make up for what it
// missed meanwhile: a notification sent between the break and the new LISTEN is not delivered, and
// whatever regained reads from the store then is at least as new as it. Payloads it cannot read are
// skipped.
func (s *Store) ListenRuns(ctx context.Context, fn func(RunNote), regained func()) error {
	broken := false
	for {
		err := s.listenOnce(ctx, fn, func() {
			if broken && regained != nil {
				regained()
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("run notifications lost; listening again", "err", err)
		broken = true
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// listenOnce listens on one session until it breaks, calling listening once LISTEN took effect.
func (s *Store) listenOnce(ctx context.Context, fn func(RunNote), listening func()) error {
	if err := s.usable(); err != nil {
		return err
	}
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.wrap("listen for runs", err)
	}
	// The session is LISTENing: it never goes back to the pool.
	conn := pc.Hijack()
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	ch, err := s.runsChannel(ctx, conn)
	if err != nil {
		return s.wrap("listen for runs", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
		return s.wrap("listen for runs", err)
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if note, err := parseRunNote(n.Payload); err == nil {
			fn(note)
		}
	}
}

func parseRunNote(p string) (RunNote, error) {
	f := strings.Fields(p)
	if len(f) != 3 {
		return RunNote{}, errors.New("notify: bad payload")
	}
	run, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return RunNote{}, err
	}
	changed, err := strconv.ParseBool(f[2])
	if err != nil {
		return RunNote{}, err
	}
	return RunNote{From: f[0], Run: uint32(run), DecisionChanged: changed}, nil
}
