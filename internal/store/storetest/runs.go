package storetest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func runStateTests() []subtest {
	return []subtest{
		{"RunStateRoundTrip", testRunStateRoundTrip},
		{"RunStateNotFound", testRunStateNotFound},
		{"RunStatesFilters", testRunStatesFilters},
		{"RunStatesPaging", testRunStatesPaging},
		{"RunStatesDefaultLimit", testRunStatesDefaultLimit},
		{"DueRuns", testDueRuns},
		{"RunStatesSummary", testRunStatesSummary},
		{"RunStatesAreTheCallers", testRunStatesAreTheCallers},
	}
}

// decisionOf is a decision as the reconcile makes it: Version set, Decided left to the store.
func decisionOf(run uint32, version int64, r pcl.Readiness) pcl.Decision {
	d := pcl.Decision{Run: run, State: r, Version: version, Releasable: r == pcl.ReadinessReady || r == pcl.ReadinessForced}
	if r == pcl.ReadinessWaiting {
		d.Reason = "waiting for SiPixelAli"
		d.Blocking = []string{"SiPixelAli"}
	}
	return d
}

// stateOf is a derived run state with two workflows.
func stateOf(run uint32, class string, r pcl.Readiness, wake time.Time) pcl.RunState {
	start := epoch().Add(time.Duration(run-392000) * 40 * time.Minute)
	stop := start.Add(38 * time.Minute)
	deadline := stop.Add(48 * time.Hour)
	wf := []pcl.WorkflowStatus{
		{Name: "SiStripGains", State: pcl.StateInDB, Quality: pcl.QualityGood, Required: true,
			Flags: []pcl.Flag{pcl.FlagUnchangedPayload}, Updated: stop.Add(44 * time.Minute), Deadline: deadline,
			Files:  []string{fmt.Sprintf("Run%d@SiStripApvGain_pcl@3f9c0001-1b2a-4c3d-9e8f-0000000%d.db", run, run)},
			Hashes: []string{payloadHash(run, "SiStripApvGain_pcl")}},
		{Name: "SiPixelAli", State: pcl.StateHarvested, Quality: pcl.QualityUnknown, Required: true,
			Flags: []pcl.Flag{}, Updated: stop.Add(51 * time.Minute), Deadline: deadline},
	}
	return pcl.RunState{Run: run, Class: class, Workflows: wf, Deadline: deadline, NextWake: wake,
		Info:     &pcl.RunInfo{Start: start, Stop: &stop, Class: class, BField: 3.8, Lumis: 980},
		Decision: decisionOf(run, 0, r)}
}

func testRunStateRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	rs := stateOf(392671, "Collisions25", pcl.ReadinessWaiting, epoch().Add(time.Hour))
	must(t, "put", s.PutRunState(ctx, rs))
	got, err := s.RunState(ctx, rs.Run)
	must(t, "get", err)
	sameJSON(t, "run state", rs, got)
	// A second put replaces the first.
	rs.Workflows[1].State = pcl.StateUploading
	rs.NextWake = time.Time{}
	must(t, "put again", s.PutRunState(ctx, rs))
	got, err = s.RunState(ctx, rs.Run)
	must(t, "get again", err)
	sameJSON(t, "updated run state", rs, got)
	wantCode(t, "put run 0", s.PutRunState(ctx, pcl.RunState{Class: "Collisions25"}), apperr.Invalid)
}

func testRunStateNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, "put", s.PutRunState(ctx, stateOf(392671, "Collisions25", pcl.ReadinessOngoing, time.Time{})))
	_, err := s.RunState(ctx, 392672)
	wantCode(t, "unknown run", err, apperr.NotFound)
}

// runStateSet puts a realistic mix of classes and readinesses over runs from..from+n-1.
func runStateSet(t *testing.T, s store.Store, from uint32, n int) []pcl.RunState {
	t.Helper()
	classes := []string{"Collisions25", "Collisions25", "Cosmics25", "Commissioning25", "Collisions25HI", "Test[1]"}
	var all []pcl.RunState
	for i := range n {
		run := from + uint32(i)
		rs := stateOf(run, classes[i%len(classes)], pcl.Readinesses[i%len(pcl.Readinesses)], time.Time{})
		must(t, "put", s.PutRunState(context.Background(), rs))
		all = append(all, rs)
	}
	return all
}

// runNumbers lists the runs of states.
func runNumbers(states []pcl.RunState) []uint32 {
	out := make([]uint32, len(states))
	for i, rs := range states {
		out[i] = rs.Run
	}
	return out
}

func testRunStatesFilters(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := runStateSet(t, s, 392660, 30)
	sel := func(keep func(rs pcl.RunState) bool) []uint32 {
		var out []uint32
		for _, rs := range all {
			if keep(rs) {
				out = append(out, rs.Run)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
		return out
	}
	cases := []struct {
		name string
		q    store.RunQuery
		want []uint32
	}{
		{"all", store.RunQuery{}, sel(func(pcl.RunState) bool { return true })},
		{"exact class", store.RunQuery{Class: "Collisions25"},
			sel(func(rs pcl.RunState) bool { return rs.Class == "Collisions25" })},
		{"class pattern", store.RunQuery{Class: "Collisions*"},
			sel(func(rs pcl.RunState) bool { return rs.Class == "Collisions25" || rs.Class == "Collisions25HI" })},
		{"class ?", store.RunQuery{Class: "Co?mics25"}, sel(func(rs pcl.RunState) bool { return rs.Class == "Cosmics25" })},
		{"bracket is literal", store.RunQuery{Class: "Test[1]*"}, sel(func(rs pcl.RunState) bool { return rs.Class == "Test[1]" })},
		{"exact class is not a prefix", store.RunQuery{Class: "Collisions"}, nil},
		{"readiness", store.RunQuery{Readiness: pcl.ReadinessHeld},
			sel(func(rs pcl.RunState) bool { return rs.Decision.State == pcl.ReadinessHeld })},
		{"class and readiness", store.RunQuery{Class: "Collisions*", Readiness: pcl.ReadinessWaiting},
			sel(func(rs pcl.RunState) bool {
				return (rs.Class == "Collisions25" || rs.Class == "Collisions25HI") && rs.Decision.State == pcl.ReadinessWaiting
			})},
		{"before", store.RunQuery{Before: 392671}, sel(func(rs pcl.RunState) bool { return rs.Run < 392671 })},
		{"from to", store.RunQuery{From: 392665, To: 392670},
			sel(func(rs pcl.RunState) bool { return rs.Run >= 392665 && rs.Run <= 392670 })},
		{"from", store.RunQuery{From: 392685}, sel(func(rs pcl.RunState) bool { return rs.Run >= 392685 })},
		{"to and before", store.RunQuery{To: 392670, Before: 392668},
			sel(func(rs pcl.RunState) bool { return rs.Run < 392668 })},
		{"limit", store.RunQuery{Limit: 7}, sel(func(pcl.RunState) bool { return true })[:7]},
	}
	for _, c := range cases {
		got, err := s.RunStates(ctx, c.q)
		must(t, c.name, err)
		if !slices.Equal(runNumbers(got), c.want) {
			t.Errorf("%s: got runs %v, want %v", c.name, runNumbers(got), c.want)
		}
	}
}

func testRunStatesPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := runStateSet(t, s, 392640, 23)
	var pages [][]uint32
	var seen []uint32
	before := uint32(0)
	for {
		page, err := s.RunStates(ctx, store.RunQuery{Before: before, Limit: 5})
		must(t, "page", err)
		if len(page) == 0 {
			break
		}
		pages = append(pages, runNumbers(page))
		seen = append(seen, runNumbers(page)...)
		before = page[len(page)-1].Run
		if len(pages) > 10 {
			t.Fatal("paging does not end")
		}
	}
	want := runNumbers(all)
	slices.Reverse(want)
	if !slices.Equal(seen, want) || len(pages) != 5 {
		t.Fatalf("paging by 5 gave %v, want %v in 5 pages", pages, want)
	}
}

func testRunStatesDefaultLimit(t *testing.T, s store.Store) {
	runStateSet(t, s, 392500, 104)
	got, err := s.RunStates(context.Background(), store.RunQuery{})
	must(t, "query", err)
	if len(got) != 100 || got[0].Run != 392603 || got[99].Run != 392504 {
		t.Fatalf("default limit returned %d runs (%v...), want the newest 100", len(got), runNumbers(got[:min(3, len(got))]))
	}
}

func testDueRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := epoch().Add(72 * time.Hour)
	wakes := map[uint32]time.Time{
		392671: now.Add(-time.Hour),
		392669: now.Add(-3 * time.Hour),
		392673: now,                      // due: not after now
		392670: now.Add(time.Nanosecond), // not yet
		392672: {},                       // nothing to wait for
		392674: now.Add(-2 * time.Hour),
	}
	for run, wake := range wakes {
		must(t, "put", s.PutRunState(ctx, stateOf(run, "Collisions25", pcl.ReadinessWaiting, wake)))
	}
	got, err := s.DueRuns(ctx, now, 0)
	must(t, "due", err)
	if want := []uint32{392669, 392674, 392671, 392673}; !slices.Equal(got, want) {
		t.Fatalf("due runs %v, want %v (oldest wake first)", got, want)
	}
	got, err = s.DueRuns(ctx, now, 2)
	must(t, "due limit", err)
	if want := []uint32{392669, 392674}; !slices.Equal(got, want) {
		t.Fatalf("due runs with limit 2: %v, want %v", got, want)
	}
	// Once reconciled with nothing left to wait for, a run is no longer due.
	must(t, "put", s.PutRunState(ctx, stateOf(392669, "Collisions25", pcl.ReadinessReady, time.Time{})))
	got, err = s.DueRuns(ctx, now.Add(time.Hour), 0)
	must(t, "due later", err)
	if want := []uint32{392674, 392671, 392673, 392670}; !slices.Equal(got, want) {
		t.Fatalf("due runs an hour later %v, want %v", got, want)
	}
}

// testRunStatesSummary: a summary read gives each run's number, class and current decision (the one
// SaveDecision stored, with its version and time), and nothing else, under the same filters.
func testRunStatesSummary(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, r := range []pcl.Readiness{pcl.ReadinessWaiting, pcl.ReadinessReady, pcl.ReadinessHeld} {
		run := uint32(392671 + i)
		rs := stateOf(run, "Collisions25", r, time.Time{})
		d := decisionOf(run, 1, r)
		_, err := s.SaveDecision(ctx, store.DecisionWrite{Decision: d, State: rs})
		must(t, "save", err)
	}
	must(t, "put without decision", s.PutRunState(ctx, stateOf(392680, "Cosmics25", pcl.ReadinessOngoing, time.Time{})))
	full, err := s.RunStates(ctx, store.RunQuery{Limit: 10})
	must(t, "full", err)
	sum, err := s.RunStates(ctx, store.RunQuery{Limit: 10, Summary: true})
	must(t, "summary", err)
	if len(sum) != len(full) || len(sum) != 4 {
		t.Fatalf("summary has %d runs, full %d", len(sum), len(full))
	}
	for i := range sum {
		if sum[i].Run != full[i].Run || sum[i].Class != full[i].Class || sum[i].Workflows != nil || sum[i].Info != nil {
			t.Errorf("summary %d: %+v", i, sum[i])
		}
		sameJSON(t, fmt.Sprintf("decision of run %d", sum[i].Run), full[i].Decision, sum[i].Decision)
	}
	held, err := s.RunStates(ctx, store.RunQuery{Readiness: pcl.ReadinessHeld, Summary: true})
	must(t, "filtered summary", err)
	if len(held) != 1 || held[0].Decision.State != pcl.ReadinessHeld || held[0].Decision.Version != 1 || held[0].Decision.Decided.IsZero() {
		t.Errorf("held summary: %+v", held)
	}
}

// testRunStatesAreTheCallers: a state read is the caller's to change, and every read after a write
// has what was written, however often the same state was read before (a store may keep decoded
// states, never stale or shared ones).
func testRunStatesAreTheCallers(t *testing.T, s store.Store) {
	ctx := context.Background()
	rs := stateOf(392671, "Collisions25", pcl.ReadinessWaiting, time.Time{})
	must(t, "put", s.PutRunState(ctx, rs))
	reads := map[string]func() pcl.RunState{
		"RunState": func() pcl.RunState {
			got, err := s.RunState(ctx, rs.Run)
			must(t, "run state", err)
			return got
		},
		"RunStates": func() pcl.RunState {
			got, err := s.RunStates(ctx, store.RunQuery{})
			must(t, "run states", err)
			if len(got) != 1 {
				t.Fatalf("run states: %d", len(got))
			}
			return got[0]
		},
		"OpenRunStates": func() pcl.RunState {
			got, err := s.OpenRunStates(ctx, epoch())
			must(t, "open run states", err)
			if len(got) != 1 {
				t.Fatalf("open run states: %d", len(got))
			}
			return got[0]
		},
	}
	for _, name := range []string{"RunState", "RunStates", "OpenRunStates"} {
		read := reads[name]
		for range 2 {
			got := read()
			sameJSON(t, name, rs, got)
			got.Workflows[0].Files[0], got.Workflows[0].Flags[0] = "changed", "changed"
			got.Info.Stop = nil
		}
	}
	rs.Workflows[0].State, rs.Decision.Reason = pcl.StateUploadFailed, "written after the reads"
	must(t, "put again", s.PutRunState(ctx, rs))
	for _, name := range []string{"RunState", "RunStates", "OpenRunStates"} {
		sameJSON(t, name+" after a write", rs, reads[name]())
	}
}
