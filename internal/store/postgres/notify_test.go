package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestNotifyRun: a listener hears a notification of its schema's store, in order, and not one of
// another schema's; bad payloads are refused at the sender and skipped at the listener.
func TestNotifyRun(t *testing.T) {
	t.Parallel()
	a, other := openSchema(t, Options{}), openSchema(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan RunNote, 10)
	done := make(chan error, 1)
	go func() { done <- a.ListenRuns(ctx, func(n RunNote) { got <- n }, nil) }()
	// Notifications sent before LISTEN ran are lost: send until the first one arrives.
	var first RunNote
	for deadline := time.Now().Add(10 * time.Second); first.Run == 0; {
		if err := a.NotifyRun(t.Context(), RunNote{From: "r1", Run: 1, DecisionChanged: true}); err != nil {
			t.Fatal(err)
		}
		select {
		case first = <-got:
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification heard")
		}
	}
	for len(got) > 0 {
		<-got
	}
	if first != (RunNote{From: "r1", Run: 1, DecisionChanged: true}) {
		t.Errorf("first note %+v", first)
	}
	if err := other.NotifyRun(t.Context(), RunNote{From: "x", Run: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pool.Exec(t.Context(), "SELECT pg_notify('spyagency_runs.' || current_schema(), 'garbage')"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []RunNote{{From: "r1", Run: 2}, {From: "r2", Run: 3, DecisionChanged: true}} {
		if err := a.NotifyRun(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []RunNote{{From: "r1", Run: 2}, {From: "r2", Run: 3, DecisionChanged: true}} {
		select {
		case n := <-got:
			if n != want {
				t.Errorf("note %+v, want %+v (another schema's or garbage heard?)", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("note %+v not heard", want)
		}
	}
	if err := a.NotifyRun(t.Context(), RunNote{From: "two words", Run: 1}); err == nil {
		t.Error("a sender with a space was accepted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenRuns at the end: %v", err)
	}
}

// TestListenRunsRegained: when the listening session breaks, ListenRuns listens again and then calls
// regained, so that its caller can read again what it missed; a note sent while it was not listening
// is not delivered.
func TestListenRunsRegained(t *testing.T) {
	t.Parallel()
	a := openSchema(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan RunNote, 10)
	regained := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() {
		done <- a.ListenRuns(ctx, func(n RunNote) { got <- n }, func() { regained <- struct{}{} })
	}()
	ch, err := a.runsChannel(ctx, a.pool)
	if err != nil {
		t.Fatal(err)
	}
	listen := "LISTEN " + pgx.Identifier{ch}.Sanitize()
	listeners := func() int {
		var n int
		if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = $1", listen).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitListeners := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); listeners() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("want %d listeners of %s, have %d", want, ch, listeners())
			}
		}
	}
	waitListeners(1)
	select {
	case <-regained:
		t.Fatal("regained called on the first LISTEN")
	default:
	}
	if _, err := a.pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1", listen); err != nil {
		t.Fatal(err)
	}
	waitListeners(0)
	if err := a.NotifyRun(ctx, RunNote{From: "r1", Run: 5}); err != nil { // nobody listens
		t.Fatal(err)
	}
	select {
	case <-regained:
	case <-time.After(10 * time.Second):
		t.Fatal("regained not called after the session broke")
	}
	if err := a.NotifyRun(ctx, RunNote{From: "r1", Run: 6}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n.Run != 6 {
			t.Errorf("heard run %d first, want 6 (5 was sent while nobody listened)", n.Run)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no note after listening again")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenRuns at the end: %v", err)
	}
}
