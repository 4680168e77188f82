package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func openWorkTests() []subtest {
	return []subtest{
		{"ReleaseView", testReleaseView},
		{"OpenRunStates", testOpenRunStates},
	}
}

// openWorkSet stores runs 392001..392010: odd runs released (a persisted decision), even runs in other
// states, and run 392004 a placeholder whose state says released without any persisted decision (it
// is not a release). It returns the runs that are not persisted releases.
func openWorkSet(t *testing.T, s store.Store) []uint32 {
	t.Helper()
	ctx := context.Background()
	var open []uint32
	others := []pcl.Readiness{pcl.ReadinessWaiting, pcl.ReadinessReady, pcl.ReadinessHeld, pcl.ReadinessBlocked, pcl.ReadinessTimedOut}
	for i := range 10 {
		run := uint32(392001 + i)
		switch {
		case run == 392004:
			must(t, "put placeholder", s.PutRunState(ctx, stateOf(run, "Collisions25", pcl.ReadinessReleased, time.Time{})))
			open = append(open, run)
		case i%2 == 0:
			w := decisionWrite(run, 1, pcl.ReadinessReleased)
			w.Decision.Releasable = true
			_, err := s.SaveDecision(ctx, w)
			must(t, "save release", err)
		default:
			_, err := s.SaveDecision(ctx, decisionWrite(run, 1, others[i%len(others)]))
			must(t, "save decision", err)
			open = append(open, run)
		}
	}
	return open
}

func runsOf(states []pcl.RunState) []uint32 {
	out := make([]uint32, len(states))
	for i, rs := range states {
		out[i] = rs.Run
	}
	return out
}

func testReleaseView(t *testing.T, s store.Store) {
	ctx := context.Background()
	v, err := s.ReleaseView(ctx, store.ReleaseQuery{})
	must(t, "empty store", err)
	if v.Highest != 0 || len(v.Runs) != 0 {
		t.Fatalf("empty store: %+v", v)
	}
	open := openWorkSet(t, s)
	v, err = s.ReleaseView(ctx, store.ReleaseQuery{})
	must(t, "release view", err)
	if !slices.Equal(runsOf(v.Runs), open) || v.Highest != 392010 {
		t.Fatalf("release view: runs %v, highest %d; want the runs not released %v and 392010", runsOf(v.Runs), v.Highest, open)
	}
	for _, rs := range v.Runs {
		if rs.Workflows != nil || rs.Info != nil || rs.Decision.Run != rs.Run {
			t.Errorf("run %d: not a summary state (Run, Class, Decision): %+v", rs.Run, rs)
		}
		if rs.Run != 392004 && (rs.Decision.Version != 1 || rs.Class != "Collisions25") {
			t.Errorf("run %d: decision %+v, class %q", rs.Run, rs.Decision, rs.Class)
		}
	}
	// Bounded: runs above UpTo are not read, and the highest is the highest up to it.
	v, err = s.ReleaseView(ctx, store.ReleaseQuery{UpTo: 392007})
	must(t, "up to", err)
	if want := []uint32{392002, 392004, 392006}; !slices.Equal(runsOf(v.Runs), want) || v.Highest != 392007 {
		t.Errorf("up to 392007: runs %v, highest %d; want %v and 392007", runsOf(v.Runs), v.Highest, want)
	}
	// A range adds every run in it, released or not, each once.
	v, err = s.ReleaseView(ctx, store.ReleaseQuery{From: 392005, UpTo: 392008})
	must(t, "range", err)
	if want := []uint32{392002, 392004, 392005, 392006, 392007, 392008}; !slices.Equal(runsOf(v.Runs), want) || v.Highest != 392008 {
		t.Errorf("range 392005-392008: runs %v, highest %d; want %v and 392008", runsOf(v.Runs), v.Highest, want)
	}
	for _, rs := range v.Runs {
		if rs.Run == 392005 && (rs.Decision.State != pcl.ReadinessReleased || !rs.Decision.Releasable) {
			t.Errorf("released run in the range: %+v", rs.Decision)
		}
	}
	// Below every run: nothing, and no highest.
	v, err = s.ReleaseView(ctx, store.ReleaseQuery{UpTo: 392000})
	must(t, "below", err)
	if len(v.Runs) != 0 || v.Highest != 0 {
		t.Errorf("up to 392000: %+v", v)
	}
}

func testOpenRunStates(t *testing.T, s store.Store) {
	ctx := context.Background()
	states, err := s.OpenRunStates(ctx, epoch())
	must(t, "empty store", err)
	if len(states) != 0 {
		t.Fatalf("empty store: %d states", len(states))
	}
	open := openWorkSet(t, s)
	// stateOf stops run r at epoch + (r-392000)*40min + 38min: since just before run 392007's stop
	// keeps the releases 392007 and 392009.
	since := epoch().Add(7*40*time.Minute + 37*time.Minute)
	states, err = s.OpenRunStates(ctx, since)
	must(t, "open run states", err)
	want := append(slices.Clone(open), 392007, 392009)
	slices.Sort(want)
	if !slices.Equal(runsOf(states), want) {
		t.Fatalf("open run states: %v, want %v", runsOf(states), want)
	}
	for _, rs := range states {
		full, err := s.RunState(ctx, rs.Run)
		must(t, "run state", err)
		sameJSON(t, "open state of a run", full, rs)
	}
	// A release without a stop time may still be open work.
	rs := stateOf(392020, "Collisions25", pcl.ReadinessReleased, time.Time{})
	rs.Info.Stop = nil
	w := decisionWrite(392020, 1, pcl.ReadinessReleased)
	w.Decision.Releasable, w.State = true, rs
	_, err = s.SaveDecision(ctx, w)
	must(t, "save a release without stop", err)
	states, err = s.OpenRunStates(ctx, epoch().Add(1000*time.Hour))
	must(t, "open run states", err)
	if want := append(slices.Clone(open), 392020); !slices.Equal(runsOf(states), want) {
		t.Errorf("open run states, all releases stopped before since: %v, want %v", runsOf(states), want)
	}
}
