package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/pgtest"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestLeaseTakeRenewTakeOver walks the lease through its life: the first holder, a renewal that keeps
// the epoch, a second process refused while it lives, a take-over after it expired with a new epoch,
// the old holder refused, a release that lets the next one lead at once.
func TestLeaseTakeRenewTakeOver(t *testing.T) {
	t.Parallel()
	s := openSchema(t, Options{})
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl := 10 * time.Second
	step := func(holder string, at time.Time, wantLeads bool, wantHolder string, wantEpoch int64) Lease {
		t.Helper()
		l, leads, err := s.AcquireLease(ctx, holder, ttl, at)
		if err != nil {
			t.Fatalf("%s at %s: %v", holder, at.Sub(t0), err)
		}
		if leads != wantLeads || l.Holder != wantHolder || l.Epoch != wantEpoch {
			t.Fatalf("%s at +%s: leads=%v lease %+v, want leads=%v holder %s epoch %d", holder, at.Sub(t0), leads, l, wantLeads, wantHolder, wantEpoch)
		}
		return l
	}
	if l, err := s.CurrentLease(ctx); err != nil || l != (Lease{}) {
		t.Fatalf("lease before anyone took it: %+v, %v", l, err)
	}
	l := step("a", t0, true, "a", 1)
	if !l.Expires.Equal(t0.Add(ttl)) {
		t.Errorf("expires %s, want now+ttl", l.Expires)
	}
	step("a", t0.Add(4*time.Second), true, "a", 1)   // renewed: same epoch
	step("b", t0.Add(13*time.Second), false, "a", 1) // a's renewal runs to +14 s
	step("b", t0.Add(14*time.Second), true, "b", 2)  // expired: b takes over
	step("a", t0.Add(15*time.Second), false, "b", 2) // a woke up: not leader
	if err := s.ReleaseLease(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	step("a", t0.Add(16*time.Second), false, "b", 2) // a's release of an old epoch changes nothing
	if err := s.ReleaseLease(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	step("c", t0.Add(17*time.Second), true, "c", 3) // released: c leads at once
	if cur, err := s.CurrentLease(ctx); err != nil || cur.Holder != "c" || cur.Epoch != 3 {
		t.Fatalf("current lease %+v, %v", cur, err)
	}
	if _, _, err := s.AcquireLease(ctx, "", ttl, t0); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("no holder: %v", err)
	}
	if _, _, err := s.AcquireLease(ctx, "a", 0, t0); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("no TTL: %v", err)
	}
}

// TestLeaseOneWinner: processes racing for a free lease, one wins.
func TestLeaseOneWinner(t *testing.T) {
	t.Parallel()
	s := openSchema(t, Options{})
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for _, h := range []string{"a", "b", "c", "d", "e", "f"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, leads, err := s.AcquireLease(context.Background(), h, time.Minute, now)
			if err != nil {
				t.Error(err)
			}
			if leads {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d processes lead, want 1", winners)
	}
}

// TestFencedWritesOfADeposedLeader: once another process took the lease, every leader-only write of
// the old leader's view fails with Conflict and writes nothing; the new leader's go through.
func TestFencedWritesOfADeposedLeader(t *testing.T) {
	t.Parallel()
	s := openSchema(t, Options{})
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	la, _, err := s.AcquireLease(ctx, "a", time.Second, t0)
	if err != nil {
		t.Fatal(err)
	}
	old := s.Fenced("a", la.Epoch)
	decision := func(version int64) store.DecisionWrite {
		d := pcl.Decision{Run: 392671, Version: version, State: pcl.ReadinessReady, Decided: t0, Reason: "all in DB"}
		return store.DecisionWrite{Decision: d, State: pcl.RunState{Run: 392671, Class: "Collisions25"},
			Outbox: []store.OutboxEntry{{Target: "tier0", Payload: []byte(`{"run":392671}`)}},
			Audit:  []store.AuditEntry{{Actor: "agency", Action: "decision"}}}
	}
	if _, err := old.SaveDecision(ctx, decision(1)); err != nil {
		t.Fatalf("the leader's decision: %v", err)
	}
	alert := store.Alert{Fingerprint: "fp", Rule: "source-stale", State: store.AlertFiring, Active: t0, LastSeen: t0}
	if _, err := old.SaveAlerts(ctx, store.AlertWrite{Save: []store.Alert{alert}}); err != nil {
		t.Fatalf("the leader's alert: %v", err)
	}
	pending, err := s.PendingOutbox(ctx, "tier0", t0, 0)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v, %v", pending, err)
	}
	lb, leads, err := s.AcquireLease(ctx, "b", time.Second, t0.Add(2*time.Second))
	if err != nil || !leads {
		t.Fatalf("take-over: %v %v", leads, err)
	}
	refused := func(what string, err error) {
		t.Helper()
		if apperr.CodeOf(err) != apperr.Conflict {
			t.Errorf("%s by the deposed leader: %v, want Conflict", what, err)
		}
	}
	_, err = old.SaveDecision(ctx, decision(2))
	refused("decision", err)
	refused("delivery mark", old.MarkDelivered(ctx, pending[0].ID, t0.Add(3*time.Second)))
	refused("failed attempt", old.MarkFailed(ctx, pending[0].ID, t0, t0.Add(time.Minute), "refused", false))
	_, err = old.SaveAlerts(ctx, store.AlertWrite{Delete: []int64{1}})
	refused("alert state", err)
	if ds, _ := s.Decisions(ctx, 392671); len(ds) != 1 {
		t.Errorf("%d decisions stored, want the leader's 1 only", len(ds))
	}
	if p, _ := s.PendingOutbox(ctx, "tier0", t0, 0); len(p) != 1 || p[0].Attempts != 0 {
		t.Errorf("outbox %+v: the deposed leader's marks must not be stored", p)
	}
	if live, _ := s.LiveAlerts(ctx); len(live) != 1 {
		t.Errorf("%d live alerts, want the one the deposed leader could not delete", len(live))
	}
	// Reads and unfenced writes still work through the old view, and the new leader writes.
	if _, err := old.RunState(ctx, 392671); err != nil {
		t.Errorf("read through the deposed view: %v", err)
	}
	if _, err := s.Fenced("b", lb.Epoch).SaveDecision(ctx, decision(2)); err != nil {
		t.Errorf("the new leader's decision: %v", err)
	}
}

// TestFrozenTransactionHoldsNoLease: a leader frozen (SIGSTOP) inside a fenced write holds the lease
// row FOR SHARE. The server ends its idle session after Options.TxIdleTimeout, and a take-over waits
// for the row no longer than a third of the TTL, so another process leads soon after the lease expired;
// the frozen transaction, when its process wakes, cannot commit.
func TestFrozenTransactionHoldsNoLease(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	open := func(opts Options) *Store {
		s, err := Open(ctx, dsn, opts)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	frozen := open(Options{TxIdleTimeout: 300 * time.Millisecond})
	other := open(Options{})
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ttl := 900 * time.Millisecond
	l, leads, err := frozen.AcquireLease(ctx, "frozen", ttl, t0)
	if err != nil || !leads {
		t.Fatalf("first lease: %+v %v %v", l, leads, err)
	}
	// What checkFence does at the start of a fenced write; then the process stops.
	tx, err := frozen.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := readLease(ctx, tx, "FOR SHARE"); err != nil {
		t.Fatal(err)
	}
	// The other process tries on its ticks, each after the lease expired. Without the idle timeout the
	// row stays locked for as long as the test lives and every try fails.
	var took Lease
	for i := 0; ; i++ {
		took, leads, err = other.AcquireLease(ctx, "other", ttl, t0.Add(ttl+time.Duration(i)*time.Second))
		if err == nil && leads {
			break
		}
		if err != nil && !apperr.Is(err, apperr.Unavailable) && !strings.Contains(err.Error(), "lock") {
			t.Fatalf("try %d: %v", i, err)
		}
		if i == 40 {
			t.Fatalf("no take-over in %d tries while a frozen transaction holds the row: %v", i+1, err)
		}
	}
	if took.Holder != "other" || took.Epoch != 2 {
		t.Fatalf("take-over: %+v", took)
	}
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the frozen transaction committed after the server should have ended its session")
	}
	// The frozen store's pool drops the dead connection and goes on working.
	if _, err := frozen.CurrentLease(ctx); err != nil {
		t.Fatalf("the frozen store after its session ended: %v", err)
	}
}

// TestTxIdleTimeoutFromTheDSN: a DSN that sets idle_in_transaction_session_timeout itself keeps it.
func TestTxIdleTimeoutFromTheDSN(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	ctx := context.Background()
	for _, c := range []struct {
		dsn  string
		opts Options
		want string
	}{
		{dsn, Options{}, "5s"},
		{dsn, Options{TxIdleTimeout: 2 * time.Second}, "2s"},
		{dsn + sep + "idle_in_transaction_session_timeout=7000", Options{TxIdleTimeout: 2 * time.Second}, "7s"},
	} {
		s, err := Open(ctx, c.dsn, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = s.pool.QueryRow(ctx, "SHOW idle_in_transaction_session_timeout").Scan(&got)
		_ = s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%+v: idle_in_transaction_session_timeout %s, want %s", c.opts, got, c.want)
		}
	}
}
