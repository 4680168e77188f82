package storetest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func retentionTests() []subtest {
	return []subtest{
		{"CompactReleased", testCompactReleased},
		{"CompactReleasedConcurrent", testCompactConcurrent},
		{"LateObservations", testLateObservations},
		{"LateObservationsRaceCompaction", testLateRaceCompaction},
	}
}

// retentionSet stores the fixture world and gives its runs decisions: 392669 released at epoch+30d,
// 392670 released at epoch+200d, 392671 waiting (open), 392672 released then held (its current
// decision is no release), 392673 a state that says released without any persisted decision. A last
// observation of an unknown run comes after all of them. It returns the release times.
func retentionSet(t *testing.T, s store.Store) (old, recent time.Time) {
	t.Helper()
	ctx := context.Background()
	_, err := s.AppendObservations(ctx, fixtureWorld())
	must(t, "append world", err)
	old, recent = epoch().Add(30*24*time.Hour), epoch().Add(200*24*time.Hour)
	release := func(run uint32, version int64, at time.Time, r pcl.Readiness) {
		w := decisionWrite(run, version, r)
		w.Decision.Decided = at
		w.Decision.Releasable = r == pcl.ReadinessReleased
		_, err := s.SaveDecision(ctx, w)
		must(t, "save decision", err)
	}
	release(392669, 1, old, pcl.ReadinessReleased)
	release(392670, 1, recent, pcl.ReadinessReleased)
	release(392671, 1, old, pcl.ReadinessWaiting)
	release(392672, 1, old, pcl.ReadinessReleased)
	release(392672, 2, old.Add(time.Hour), pcl.ReadinessHeld)
	must(t, "put placeholder", s.PutRunState(ctx, stateOf(392673, "Collisions25", pcl.ReadinessReleased, time.Time{})))
	_, err = s.AppendObservations(ctx, []pcl.Observation{dqmObs(392699, "SiStripGains", pcl.QualityGood, recent)})
	must(t, "append last", err)
	return old, recent
}

func countObs(t *testing.T, s store.Store, run uint32) int {
	t.Helper()
	obs, err := s.Observations(context.Background(), store.ObservationQuery{Runs: []uint32{run}})
	must(t, "observations", err)
	return len(obs)
}

func testCompactReleased(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Compaction(ctx, 392669); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("Compaction of an unknown run: %v, want NotFound", err)
	}
	_, err := s.CompactReleased(ctx, store.CompactQuery{})
	wantCode(t, "compact without a cut-off", err, apperr.Invalid)
	old, recent := retentionSet(t, s)
	before := map[uint32]int{}
	states := map[uint32]pcl.RunState{}
	for _, run := range append(fixtureRuns(), 392699) {
		before[run] = countObs(t, s, run)
		if rs, err := s.RunState(ctx, run); err == nil {
			states[run] = rs
		}
	}
	decisions, err := s.Decisions(ctx, 392669)
	must(t, "decisions", err)
	audit, err := s.Audit(ctx, store.AuditQuery{Run: 392669})
	must(t, "audit", err)
	now := recent.Add(24 * time.Hour)

	// A cut-off before every release compacts nothing.
	got, err := s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: old, Now: now})
	must(t, "compact early", err)
	if len(got) != 0 {
		t.Fatalf("cut-off at the first release compacted %v", got)
	}
	// 90 days after the old release: only 392669 (392670 is recent, 392671 open, 392672 held now,
	// 392673 has no persisted release).
	cut := old.Add(90 * 24 * time.Hour)
	got, err = s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: cut, Now: now})
	must(t, "compact", err)
	if !slices.Equal(got, []uint32{392669}) {
		t.Fatalf("compacted %v, want [392669]", got)
	}
	if n := countObs(t, s, 392669); n != 0 {
		t.Errorf("run 392669 keeps %d raw observations after compaction", n)
	}
	for run, n := range before {
		if run != 392669 && countObs(t, s, run) != n {
			t.Errorf("run %d: %d observations, had %d: compaction touched a run it must not", run, countObs(t, s, run), n)
		}
	}
	c, err := s.Compaction(ctx, 392669)
	must(t, "compaction", err)
	if c.Run != 392669 || !c.At.Equal(now) || c.Observations != before[392669] || c.Observations != len(loopOf(0, 392669)) {
		t.Fatalf("compaction %+v: want run 392669 at %v with %d observations", c, now, before[392669])
	}
	sum := 0
	for i, g := range c.Groups {
		sum += g.Count
		if g.Count <= 0 || g.First.After(g.Last) || g.Source == "" || g.Kind == "" {
			t.Errorf("group %+v", g)
		}
		if i > 0 && (c.Groups[i-1].Source > g.Source || c.Groups[i-1].Source == g.Source && c.Groups[i-1].Kind >= g.Kind) {
			t.Errorf("groups out of order: %+v then %+v", c.Groups[i-1], g)
		}
	}
	if sum != c.Observations {
		t.Errorf("groups count %d observations, the compaction %d", sum, c.Observations)
	}
	// Kept: the final state, every decision version, the audit.
	rs, err := s.RunState(ctx, 392669)
	must(t, "state after", err)
	sameJSON(t, "final state", states[392669], rs)
	d2, err := s.Decisions(ctx, 392669)
	must(t, "decisions after", err)
	sameJSON(t, "decisions", decisions, d2)
	a2, err := s.Audit(ctx, store.AuditQuery{Run: 392669})
	must(t, "audit after", err)
	sameJSON(t, "audit", audit, a2)

	// Idempotent: again, nothing; the summary is unchanged.
	got, err = s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: cut, Now: now.Add(time.Hour)})
	must(t, "compact again", err)
	if len(got) != 0 {
		t.Fatalf("second pass compacted %v", got)
	}
	c2, err := s.Compaction(ctx, 392669)
	must(t, "compaction again", err)
	sameJSON(t, "compaction after a second pass", c, c2)
	if _, err := s.Compaction(ctx, 392670); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("Compaction of a run not compacted: %v, want NotFound", err)
	}
	// A cancelled call writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	late := recent.Add(91 * 24 * time.Hour)
	if _, err := s.CompactReleased(cctx, store.CompactQuery{ReleasedBefore: late, Now: now}); err == nil {
		t.Error("cancelled compaction: no error")
	}
	if countObs(t, s, 392670) != before[392670] {
		t.Error("a cancelled compaction removed observations")
	}
	// Limit 1 takes one run a call; later the recent release is due too.
	got, err = s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: late, Now: now, Limit: 1})
	must(t, "compact late", err)
	if !slices.Equal(got, []uint32{392670}) {
		t.Fatalf("late pass compacted %v, want [392670]", got)
	}
	for _, run := range []uint32{392671, 392672, 392673, 392699} {
		if countObs(t, s, run) != before[run] {
			t.Errorf("run %d lost observations", run)
		}
	}
}

// testCompactConcurrent: two passes at once compact each run once, and the summary counts each
// observation once.
func testCompactConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, recent := retentionSet(t, s)
	n := countObs(t, s, 392669)
	q := store.CompactQuery{ReleasedBefore: recent.Add(100 * 24 * time.Hour), Now: recent.Add(101 * 24 * time.Hour)}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []uint32
	)
	for range 3 {
		wg.Go(func() {
			got, err := s.CompactReleased(ctx, q)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	if !slices.Equal(all, []uint32{392669, 392670}) {
		t.Fatalf("concurrent passes compacted %v, want each of 392669 and 392670 once", all)
	}
	c, err := s.Compaction(ctx, 392669)
	must(t, "compaction", err)
	if c.Observations != n {
		t.Errorf("summary counts %d observations, the run had %d", c.Observations, n)
	}
}

// CompactUntilKilled is the child of a store's crash test of retention: it compacts one run a call,
// everything released before released+1h, printing "compacted [RUN]" after each call, and waits to be
// killed once nothing is left (or a call failed, which it reports on stderr).
func CompactUntilKilled(ctx context.Context, s store.Store, released time.Time) {
	for {
		got, err := s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: released.Add(time.Hour), Now: released.Add(time.Hour), Limit: 1})
		if err != nil || len(got) == 0 {
			fmt.Fprintln(os.Stderr, "child:", got, err)
			time.Sleep(time.Hour) // wait for the kill
		}
		fmt.Println("compacted", got)
	}
}
