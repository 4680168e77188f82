// Package storetest is the conformance suite of store.Store: every implementation (the embedded SQLite
// store, the PostgreSQL store) runs it from its own tests, so that they behave as one.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... a fresh, empty store ... })
//	}
//
// Every subtest runs in parallel on a store of its own. The open function must return an empty store
// and arrange (t.Cleanup) for it to be closed; the suite may close a store itself first, so a second
// Close must not panic (its error is the cleanup's to ignore).
package storetest

import (
	"context"
	"testing"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

type subtest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run runs the conformance suite; open makes a fresh, empty store for one subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	var all []subtest
	all = append(all, observationTests()...)
	all = append(all, runStateTests()...)
	all = append(all, decisionTests()...)
	all = append(all, outboxTests()...)
	all = append(all, auditTests()...)
	all = append(all, overrideTests()...)
	all = append(all, kvTests()...)
	all = append(all, wakeTests()...)
	all = append(all, accessTests()...)
	all = append(all, alertTests()...)
	all = append(all, openWorkTests()...)
	all = append(all, retentionTests()...)
	all = append(all, subtest{"Closed", testClosed})
	for _, st := range all {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			st.fn(t, open(t))
		})
	}
}

// wantCode fails unless err carries the apperr code.
func wantCode(t *testing.T, what string, err error, code apperr.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, code)
	}
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: error %q has code %s, want %s", what, err, got, code)
	}
}

// must fails the test on an error.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// testClosed: a closed store answers every call with an error, and never panics.
func testClosed(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "close", s.Close())
	if _, err := s.AppendObservations(ctx, fixtureWorld()[:1]); err == nil {
		t.Error("AppendObservations after Close: no error")
	}
	if _, err := s.RunStates(ctx, store.RunQuery{}); err == nil {
		t.Error("RunStates after Close: no error")
	}
	if _, err := s.Cursor(ctx, "tier0"); err == nil {
		t.Error("Cursor after Close: no error")
	}
	if err := s.SetSetting(ctx, "release.in_order", "true"); err == nil {
		t.Error("SetSetting after Close: no error")
	}
	if _, err := s.SaveDecision(ctx, store.DecisionWrite{Decision: decisionOf(392671, 1, "ready")}); err == nil {
		t.Error("SaveDecision after Close: no error")
	}
	o := operatorOverride(392671, pcl.OverrideHold, epoch(), "DT off")
	if _, err := s.AppendOverride(ctx, o, store.AuditEntry{Actor: "jdoe", Action: "hold"}); err == nil {
		t.Error("AppendOverride after Close: no error")
	}
}
