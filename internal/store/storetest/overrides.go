package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func overrideTests() []subtest {
	return []subtest{
		{"OverridesOfOneInstantKeepTheirOrder", testOverrideOrder},
		{"OverrideRepeated", testOverrideRepeated},
		{"OverrideRefusedWritesNothing", testOverrideRefused},
	}
}

// operatorOverride is an operator's action on a run at a time.
func operatorOverride(run uint32, action pcl.OverrideAction, at time.Time, reason string) pcl.Observation {
	return pcl.Observation{Source: pcl.SourceOperator, Kind: pcl.KindOverride, Run: run, At: at, Seen: at,
		Action: action, Actor: "jdoe", Reason: reason}
}

// overridesOf is what the store holds of a run: its overrides, and its audit entries.
func overridesOf(t *testing.T, s store.Store, run uint32) ([]pcl.Observation, []store.AuditEntry) {
	t.Helper()
	ctx := context.Background()
	obs, err := s.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}, Kinds: []pcl.Kind{pcl.KindOverride}})
	must(t, "read overrides", err)
	audit, err := s.Audit(ctx, store.AuditQuery{Run: run})
	must(t, "read audit", err)
	return obs, audit
}

// testOverrideOrder: overrides made in one instant get growing sequence numbers in the order they were
// stored, each with its audit entry, and keep their time as given.
func testOverrideOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	run := fixtureRuns()[0]
	at := epoch().Add(3 * time.Hour)
	var seqs []int64
	for _, o := range []pcl.Observation{
		operatorOverride(run, pcl.OverrideHold, at, "DT off"),
		operatorOverride(run, pcl.OverrideClear, at, "DT back"),
		operatorOverride(run, pcl.OverrideHold, at, "DT off again"),
	} {
		got, err := s.AppendOverride(ctx, o, store.AuditEntry{Actor: o.Actor, Action: string(o.Action), Detail: o.Reason})
		must(t, "append override", err)
		if !got.At.Equal(at) || got.Action != o.Action || got.Reason != o.Reason {
			t.Fatalf("stored override %+v, want %+v as given", got, o)
		}
		if len(seqs) > 0 && got.Seq <= seqs[len(seqs)-1] {
			t.Fatalf("sequence numbers %v then %d: an override stored later must have a larger one", seqs, got.Seq)
		}
		if got.Seq <= 0 {
			t.Fatalf("override stored with Seq %d", got.Seq)
		}
		seqs = append(seqs, got.Seq)
	}
	obs, audit := overridesOf(t, s, run)
	if len(obs) != 3 || len(audit) != 3 {
		t.Fatalf("%d overrides and %d audit entries stored, want 3 and 3", len(obs), len(audit))
	}
	for _, o := range obs {
		found := false
		for i, n := range seqs {
			found = found || (o.Seq == n && o.Reason == []string{"DT off", "DT back", "DT off again"}[i])
		}
		if !found {
			t.Errorf("read back %s %q with Seq %d, not the one it was stored with (%v)", o.Action, o.Reason, o.Seq, seqs)
		}
	}
	for _, e := range audit {
		if e.Run != run || !e.At.Equal(at) || e.Actor != "jdoe" {
			t.Errorf("audit entry %+v: want run %d at %s by jdoe (its run and time default to the override's)", e, run, at)
		}
	}
}

// testOverrideRepeated: the same override again is one fact. Repeated while it stands it is answered
// as stored, without a second audit entry; repeated after a later override it is refused, since it
// could not stand after that one.
func testOverrideRepeated(t *testing.T, s store.Store) {
	ctx := context.Background()
	run := fixtureRuns()[1]
	at := epoch().Add(4 * time.Hour)
	hold := operatorOverride(run, pcl.OverrideHold, at, "DT off")
	entry := store.AuditEntry{Actor: "jdoe", Action: "hold", Detail: "DT off"}
	first, err := s.AppendOverride(ctx, hold, entry)
	must(t, "hold", err)
	again, err := s.AppendOverride(ctx, hold, entry)
	must(t, "the same hold again", err)
	if again.Seq != first.Seq {
		t.Errorf("the same hold again has Seq %d, the first %d", again.Seq, first.Seq)
	}
	if obs, audit := overridesOf(t, s, run); len(obs) != 1 || len(audit) != 1 {
		t.Fatalf("after a repeated hold: %d overrides, %d audit entries, want 1 and 1", len(obs), len(audit))
	}
	_, err = s.AppendOverride(ctx, operatorOverride(run, pcl.OverrideClear, at, "DT back"), store.AuditEntry{Actor: "jdoe", Action: "clear"})
	must(t, "clear", err)
	_, err = s.AppendOverride(ctx, hold, entry)
	wantCode(t, "the first hold again after a clear", err, apperr.Conflict)
	if obs, audit := overridesOf(t, s, run); len(obs) != 2 || len(audit) != 2 {
		t.Errorf("after a refused repetition: %d overrides, %d audit entries, want 2 and 2", len(obs), len(audit))
	}
}

// testOverrideRefused: an override or audit entry the store refuses leaves no trace of either.
func testOverrideRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	run := fixtureRuns()[2]
	at := epoch().Add(5 * time.Hour)
	ok := store.AuditEntry{Actor: "jdoe", Action: "hold", Detail: "DT off"}
	notOverride := operatorOverride(run, pcl.OverrideHold, at, "DT off")
	notOverride.Kind = pcl.KindRelease
	noReason := operatorOverride(run, pcl.OverrideHold, at, " ")
	for _, tc := range []struct {
		name  string
		o     pcl.Observation
		entry store.AuditEntry
	}{
		{"not an override", notOverride, ok},
		{"an override without a reason", noReason, ok},
		{"an audit entry without an actor", operatorOverride(run, pcl.OverrideHold, at, "DT off"), store.AuditEntry{Action: "hold"}},
		{"an audit entry of another run", operatorOverride(run, pcl.OverrideHold, at, "DT off"),
			store.AuditEntry{Run: run + 1, Actor: "jdoe", Action: "hold"}},
	} {
		_, err := s.AppendOverride(ctx, tc.o, tc.entry)
		wantCode(t, tc.name, err, apperr.Invalid)
	}
	if obs, audit := overridesOf(t, s, run); len(obs) != 0 || len(audit) != 0 {
		t.Errorf("refused overrides left %d overrides and %d audit entries", len(obs), len(audit))
	}
	if audit, _ := s.Audit(ctx, store.AuditQuery{Run: run + 1}); len(audit) != 0 {
		t.Errorf("a refused override left an audit entry of run %d", run+1)
	}
}
