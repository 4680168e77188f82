package postgres

import (
	"context"
	"testing"
	"time"
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
