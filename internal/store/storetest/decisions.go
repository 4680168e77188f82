package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func decisionTests() []subtest {
	return []subtest{
		{"DecisionVersions", testDecisionVersions},
		{"DecisionConflictWritesNothing", testDecisionConflictWritesNothing},
		{"DecisionConcurrentSameVersion", testDecisionConcurrent},
		{"DecisionInvalidWritesNothing", testDecisionInvalid},
		{"PutRunStateKeepsDecision", testPutRunStateKeepsDecision},
	}
}

// decisionWrite is what the reconcile writes when run's readiness becomes r: the state, one outbox entry
// per push target, one audit entry. Run, Version and Created of the outbox entries are left to the store.
func decisionWrite(run uint32, version int64, r pcl.Readiness, targets ...string) store.DecisionWrite {
	w := store.DecisionWrite{
		Decision: decisionOf(run, version, r),
		State:    stateOf(run, "Collisions25", r, time.Time{}),
		Audit: []store.AuditEntry{{Actor: "agency", Action: "decision",
			Detail: fmt.Sprintf("run %d is %s (version %d)", run, r, version)}},
	}
	for _, tg := range targets {
		w.Outbox = append(w.Outbox, store.OutboxEntry{Target: tg,
			Payload: fmt.Appendf(nil, `{"run": %d, "ready": %t, "version": %d}`, run, w.Decision.Releasable, version)})
	}
	return w
}

func testDecisionVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	const run = 392671
	d1, err := s.SaveDecision(ctx, decisionWrite(run, 1, pcl.ReadinessWaiting, "tier0"))
	must(t, "save v1", err)
	if d1.Version != 1 || d1.Run != run || d1.Decided.IsZero() {
		t.Fatalf("stored v1 = %+v, want version 1 of run %d with a decision time", d1, run)
	}
	decided := d1.Decided.Add(17 * time.Minute).Truncate(time.Second)
	w2 := decisionWrite(run, 2, pcl.ReadinessReady, "tier0", "webhook")
	w2.Decision.Decided = decided
	w2.Decision.Run = 0 // taken from the state
	d2, err := s.SaveDecision(ctx, w2)
	must(t, "save v2", err)
	if !d2.Decided.Equal(decided) || d2.Run != run {
		t.Fatalf("stored v2 = %+v, want run %d decided at %s as given", d2, run, decided)
	}
	ds, err := s.Decisions(ctx, run)
	must(t, "decisions", err)
	if len(ds) != 2 || ds[0].Version != 1 || ds[1].Version != 2 {
		t.Fatalf("decisions %+v, want versions 1 and 2, oldest first", ds)
	}
	sameJSON(t, "decision 1", d1, ds[0])
	sameJSON(t, "decision 2", d2, ds[1])
	rs, err := s.RunState(ctx, run)
	must(t, "state", err)
	sameJSON(t, "run state's decision", d2, rs.Decision)
	ready, err := s.RunStates(ctx, store.RunQuery{Readiness: pcl.ReadinessReady})
	must(t, "ready runs", err)
	if len(ready) != 1 || ready[0].Run != run {
		t.Fatalf("ready runs %v, want [%d]", runNumbers(ready), run)
	}
	out, err := s.Outbox(ctx, "", 0)
	must(t, "outbox", err)
	if len(out) != 3 {
		t.Fatalf("outbox has %d entries, want 3", len(out))
	}
	for _, e := range out {
		want := d1
		if e.Version == 2 {
			want = d2
		}
		if e.Run != run || !e.Created.Equal(want.Decided) || e.Delivered != nil || e.Dead || e.Attempts != 0 {
			t.Errorf("outbox entry %+v: want run %d, created at its decision (%s), fresh", e, run, want.Decided)
		}
	}
	audit, err := s.Audit(ctx, store.AuditQuery{Run: run})
	must(t, "audit", err)
	if len(audit) != 2 || audit[0].Detail != w2.Audit[0].Detail || !audit[0].At.Equal(decided) {
		t.Fatalf("audit %+v, want the two decision entries, newest first, at their decision time", audit)
	}
	none, err := s.Decisions(ctx, 392000)
	must(t, "decisions of an unknown run", err)
	if len(none) != 0 {
		t.Fatalf("unknown run has decisions %+v", none)
	}
}

// storeCounts is what a refused write must leave unchanged.
type storeCounts struct{ decisions, outbox, audit int }

func countsOf(t *testing.T, s store.Store, run uint32) storeCounts {
	t.Helper()
	ctx := context.Background()
	ds, err := s.Decisions(ctx, run)
	must(t, "decisions", err)
	out, err := s.Outbox(ctx, "", 1000)
	must(t, "outbox", err)
	audit, err := s.Audit(ctx, store.AuditQuery{Limit: 1000})
	must(t, "audit", err)
	return storeCounts{len(ds), len(out), len(audit)}
}

func testDecisionConflictWritesNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	const run = 392672
	_, err := s.SaveDecision(ctx, decisionWrite(run, 1, pcl.ReadinessWaiting, "tier0"))
	must(t, "save v1", err)
	before := countsOf(t, s, run)
	stateBefore, err := s.RunState(ctx, run)
	must(t, "state", err)
	for _, v := range []int64{0, 1, 3, -1} {
		w := decisionWrite(run, v, pcl.ReadinessReady, "tier0", "webhook")
		w.State.Workflows[1].State = pcl.StateInDB
		_, err := s.SaveDecision(ctx, w)
		wantCode(t, fmt.Sprintf("save version %d over version 1", v), err, apperr.Conflict)
	}
	if after := countsOf(t, s, run); after != before {
		t.Fatalf("refused decisions changed the store: %+v, before %+v", after, before)
	}
	stateAfter, err := s.RunState(ctx, run)
	must(t, "state", err)
	sameJSON(t, "run state after refused decisions", stateBefore, stateAfter)
}

func testDecisionConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const run, racers = 392673, 8
	_, err := s.SaveDecision(ctx, decisionWrite(run, 1, pcl.ReadinessWaiting, "tier0"))
	must(t, "save v1", err)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		wins, conflicts int
		other           []error
	)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := decisionWrite(run, 2, pcl.ReadinessReady, "tier0")
			w.Audit[0].Detail = fmt.Sprintf("racer %d", i)
			_, err := s.SaveDecision(ctx, w)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case apperr.Is(err, apperr.Conflict):
				conflicts++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != racers-1 || len(other) > 0 {
		t.Fatalf("%d racers for version 2: %d won, %d conflicts, other errors %v; want exactly one winner",
			racers, wins, conflicts, other)
	}
	if c := countsOf(t, s, run); c != (storeCounts{decisions: 2, outbox: 2, audit: 2}) {
		t.Fatalf("after the race the store holds %+v, want 2 decisions, 2 outbox entries, 2 audit entries", c)
	}
}

func testDecisionInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	const run = 392674
	dup := decisionWrite(run, 1, pcl.ReadinessReady, "tier0", "tier0")
	wrongRun := decisionWrite(run, 1, pcl.ReadinessReady, "tier0")
	wrongRun.State.Run = run + 1
	wrongVersion := decisionWrite(run, 1, pcl.ReadinessReady, "tier0")
	wrongVersion.Outbox[0].Version = 7
	noActor := decisionWrite(run, 1, pcl.ReadinessReady, "tier0")
	noActor.Audit[0].Actor = ""
	noRun := decisionWrite(run, 1, pcl.ReadinessReady)
	noRun.Decision.Run, noRun.State.Run = 0, 0
	for name, w := range map[string]store.DecisionWrite{"duplicate target": dup, "state of another run": wrongRun,
		"outbox of another version": wrongVersion, "audit without actor": noActor, "no run": noRun} {
		_, err := s.SaveDecision(ctx, w)
		if err == nil {
			t.Fatalf("%s: saved", name)
		}
		if c := apperr.CodeOf(err); c != apperr.Invalid && c != apperr.Conflict {
			t.Errorf("%s: error %q has code %s, want invalid (or conflict)", name, err, c)
		}
	}
	if c := countsOf(t, s, run); c != (storeCounts{}) {
		t.Fatalf("refused decisions wrote %+v", c)
	}
	if _, err := s.RunState(ctx, run); !apperr.Is(err, apperr.NotFound) {
		t.Fatalf("refused decisions wrote the run state (err %v)", err)
	}
	// Version 1 is still free.
	_, err := s.SaveDecision(ctx, decisionWrite(run, 1, pcl.ReadinessReady, "tier0"))
	must(t, "save v1 after refusals", err)
}

func testPutRunStateKeepsDecision(t *testing.T, s store.Store) {
	ctx := context.Background()
	const run = 392675
	d, err := s.SaveDecision(ctx, decisionWrite(run, 1, pcl.ReadinessReady, "tier0"))
	must(t, "save", err)
	// The reconcile re-derives the state (a flag appeared) without a new decision.
	rs := stateOf(run, "Collisions25", pcl.ReadinessReady, epoch().Add(90*time.Hour))
	rs.Workflows[0].Flags = append(rs.Workflows[0].Flags, pcl.FlagVetoed)
	rs.Decision = pcl.Decision{}
	must(t, "put", s.PutRunState(ctx, rs))
	got, err := s.RunState(ctx, run)
	must(t, "get", err)
	sameJSON(t, "decision after PutRunState", d, got.Decision)
	sameJSON(t, "workflows after PutRunState", rs.Workflows, got.Workflows)
	ready, err := s.RunStates(ctx, store.RunQuery{Readiness: pcl.ReadinessReady})
	must(t, "query", err)
	if len(ready) != 1 {
		t.Fatalf("run %d no longer listed as ready after PutRunState", run)
	}
}
