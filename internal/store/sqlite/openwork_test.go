package sqlite

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestOpenWorkQueriesUseIndexes: the pull API's and the start-up's reads go through the partial
// indexes of open work, not through every run ever stored.
func TestOpenWorkQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTemp(t, Options{})
	wantQueryPlan(t, s, unreleasedSummaryQuery, []any{1}, "COVERING INDEX run_states_unreleased")
	wantQueryPlan(t, s, openRunStatesQuery, []any{1}, "run_states_unreleased")
	wantQueryPlan(t, s, openRunStatesQuery, []any{1}, "run_states_released_stop")
}

// The release view remembers the decisions it decoded: a second view gives the same states, a
// decision saved since is read anew, a run released since is forgotten, and what a caller does to the
// slices it got changes nothing of the next view.
func TestReleaseViewRemembersDecisions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t, Options{})
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	save := func(run uint32, version int64, r pcl.Readiness, blocking ...string) {
		t.Helper()
		d := pcl.Decision{Run: run, State: r, Reason: string(r), Blocking: blocking, Version: version, Decided: at,
			Releasable: r == pcl.ReadinessReleased || r == pcl.ReadinessReady, Evidence: []int64{1, 2, int64(version)}}
		rs := pcl.RunState{Run: run, Class: "Collisions26", Decision: d}
		if _, err := s.SaveDecision(ctx, store.DecisionWrite{Decision: d, State: rs}); err != nil {
			t.Fatal(err)
		}
	}
	save(400001, 1, pcl.ReadinessWaiting, "SiStripGains")
	save(400002, 1, pcl.ReadinessBlocked, "SiPixelAli")
	first, err := s.ReleaseView(ctx, store.ReleaseQuery{})
	if err != nil || len(first.Runs) != 2 {
		t.Fatalf("first view: %+v, %v", first, err)
	}
	again, err := s.ReleaseView(ctx, store.ReleaseQuery{})
	if err != nil || !reflect.DeepEqual(first, again) {
		t.Fatalf("second view differs:\n%+v\n%+v (%v)", first, again, err)
	}
	again.Runs[0].Decision.Blocking[0] = "changed by a caller"
	again.Runs[0].Decision.Evidence[0] = -1
	if after, err := s.ReleaseView(ctx, store.ReleaseQuery{}); err != nil || after.Runs[0].Decision.Blocking[0] != "SiStripGains" || after.Runs[0].Decision.Evidence[0] != 1 {
		t.Fatalf("a caller's change to its view reached the next one: %+v, %v", after.Runs[0].Decision, err)
	}
	save(400002, 2, pcl.ReadinessReady)
	save(400001, 2, pcl.ReadinessReleased)
	third, err := s.ReleaseView(ctx, store.ReleaseQuery{})
	if err != nil || len(third.Runs) != 1 {
		t.Fatalf("after a release: %+v, %v; want only run 400002", third, err)
	}
	if d := third.Runs[0].Decision; d.Run != 400002 || d.Version != 2 || d.State != pcl.ReadinessReady || len(d.Blocking) != 0 {
		t.Fatalf("run 400002 after its new decision: %+v", d)
	}
	ranged, err := s.ReleaseView(ctx, store.ReleaseQuery{From: 400001, UpTo: 400002})
	if err != nil || len(ranged.Runs) != 2 {
		t.Fatalf("ranged view: %+v, %v", ranged, err)
	}
	if d := ranged.Runs[0].Decision; d.Run != 400001 || d.Version != 2 || d.Blocking != nil || !slices.Equal(d.Evidence, []int64{1, 2, 2}) {
		t.Fatalf("the released run in the range: %+v", d)
	}
	save(400003, 1, pcl.ReadinessWaiting, "BeamSpot")
	fourth, err := s.ReleaseView(ctx, store.ReleaseQuery{})
	if err != nil || len(fourth.Runs) != 2 || fourth.Runs[1].Decision.Blocking[0] != "BeamSpot" || fourth.Runs[0].Decision.Evidence[0] != 1 {
		t.Fatalf("fourth view: %+v, %v", fourth, err)
	}
}

// A state stored before migration 0002 has no decision column: the release view reads its summary
// from the body, in run order among the others, and the covering read of the rest is unaffected.
func TestReleaseViewReadsOldRowsFromTheirBody(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTemp(t, Options{})
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, run := range []uint32{400001, 400002, 400003} {
		d := pcl.Decision{Run: run, State: pcl.ReadinessWaiting, Reason: "waiting", Blocking: []string{"SiStripGains"}, Version: 1, Decided: at}
		if _, err := s.SaveDecision(ctx, store.DecisionWrite{Decision: d, State: pcl.RunState{Run: run, Class: "Collisions26", Decision: d}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.writer.ExecContext(ctx, "UPDATE run_states SET decision = '' WHERE run = 400002"); err != nil {
		t.Fatal(err)
	}
	v, err := s.ReleaseView(ctx, store.ReleaseQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Runs) != 3 || v.Highest != 400003 {
		t.Fatalf("view %+v", v)
	}
	for i, rs := range v.Runs {
		if want := uint32(400001 + i); rs.Run != want || rs.Class != "Collisions26" || rs.Decision.Run != want ||
			rs.Decision.State != pcl.ReadinessWaiting || !slices.Equal(rs.Decision.Blocking, []string{"SiStripGains"}) {
			t.Errorf("run %d of the view: %+v", want, rs)
		}
	}
}
