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

func lateCount(t *testing.T, s store.Store) uint64 {
	t.Helper()
	lc, ok := s.(store.LateCounter)
	if !ok {
		t.Fatalf("%T is no store.LateCounter", s)
	}
	return lc.LateObservations()
}

// testLateObservations: facts of a compacted run are neither stored nor returned nor an error; each
// distinct one is counted once in the run's compaction (delivered again, it is not counted again); the
// summary is otherwise unchanged, and facts of other runs in the same batch are stored as ever.
func testLateObservations(t *testing.T, s store.Store) {
	ctx := context.Background()
	old, recent := retentionSet(t, s)
	now := recent.Add(24 * time.Hour)
	got, err := s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: old.Add(90 * 24 * time.Hour), Now: now})
	must(t, "compact", err)
	if len(got) != 1 || got[0] != 392669 {
		t.Fatalf("compacted %v, want [392669]", got)
	}
	c0, err := s.Compaction(ctx, 392669)
	must(t, "compaction", err)
	if c0.LateObservations != 0 {
		t.Fatalf("a fresh compaction counts %d late facts", c0.LateObservations)
	}
	counted := lateCount(t, s)

	// A backfill over released history delivers the run's facts again, with a late DQM result, twice
	// in the batch, beside a new fact of an open run.
	newLate := dqmObs(392669, "SiPixelAli", pcl.QualityBad, recent.Add(time.Hour))
	other := dqmObs(392670, "SiPixelAli", pcl.QualityGood, recent.Add(time.Hour))
	batch := append(loopOf(0, 392669), newLate, other, newLate)
	wantLate := len(loopOf(0, 392669)) + 1
	added, err := s.AppendObservations(ctx, batch)
	must(t, "append late facts", err)
	if len(added) != 1 || added[0].Run != 392670 || added[0].Seq <= 0 {
		t.Fatalf("appended %d facts (%+v), want the one of run 392670", len(added), added)
	}
	if n := countObs(t, s, 392669); n != 0 {
		t.Fatalf("the compacted run regrew %d raw observations", n)
	}
	c1, err := s.Compaction(ctx, 392669)
	must(t, "compaction after", err)
	if c1.LateObservations != wantLate {
		t.Errorf("late_observations %d, want %d", c1.LateObservations, wantLate)
	}
	c1.LateObservations = 0
	sameJSON(t, "the summary besides the late count", c0, c1)
	if d := lateCount(t, s) - counted; d != uint64(wantLate) {
		t.Errorf("the store's late counter moved by %d, want %d", d, wantLate)
	}

	// Again: nothing stored, nothing counted twice.
	added, err = s.AppendObservations(ctx, batch)
	must(t, "append late facts again", err)
	if len(added) != 0 {
		t.Errorf("the repeat appended %d facts", len(added))
	}
	c2, err := s.Compaction(ctx, 392669)
	must(t, "compaction after the repeat", err)
	if c2.LateObservations != wantLate || lateCount(t, s)-counted != uint64(wantLate) {
		t.Errorf("after the repeat: late_observations %d, counter +%d; want %d", c2.LateObservations, lateCount(t, s)-counted, wantLate)
	}
	// One more late fact counts one more.
	_, err = s.AppendObservations(ctx, []pcl.Observation{newLate, dqmObs(392669, "SiStripGains", pcl.QualityBad, recent.Add(2*time.Hour))})
	must(t, "append one more", err)
	c3, err := s.Compaction(ctx, 392669)
	must(t, "compaction after one more", err)
	if c3.LateObservations != wantLate+1 {
		t.Errorf("late_observations %d, want %d", c3.LateObservations, wantLate+1)
	}
	// A bad batch with a late fact in it writes nothing and counts nothing.
	bad := dqmObs(392669, "SiStripGains", pcl.QualityBad, recent.Add(3*time.Hour))
	broken := bad
	broken.Source = ""
	_, err = s.AppendObservations(ctx, []pcl.Observation{bad, broken})
	wantCode(t, "a bad batch", err, apperr.Invalid)
	c4, err := s.Compaction(ctx, 392669)
	must(t, "compaction after a bad batch", err)
	if c4.LateObservations != wantLate+1 {
		t.Errorf("a failed batch counted: late_observations %d, want %d", c4.LateObservations, wantLate+1)
	}
	if n := countObs(t, s, 392669); n != 0 {
		t.Fatalf("the compacted run has %d raw observations", n)
	}
}

// testLateRaceCompaction: spies append facts of a run while it is compacted. Each fact is either stored
// (returned with its Seq) before the compaction and then summarised by it, or late after it: the
// summary counts exactly the facts stored, the late count the others, and no raw row is left.
func testLateRaceCompaction(t *testing.T, s store.Store) {
	ctx := context.Background()
	old, _ := retentionSet(t, s)
	initial := countObs(t, s, 392669)
	const writers, batches = 4, 30
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		stored   int
		halfway  sync.WaitGroup
		compDone = make(chan error, 1)
	)
	halfway.Add(writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				if b == batches/2 {
					halfway.Done()
				}
				at := old.Add(time.Duration(w*batches+b) * time.Second)
				// The open run's fact last: in SQLite it holds the largest rowid, which retention never
				// deletes, so the compacted run can be compacted at any moment.
				batch := []pcl.Observation{dqmObs(392669, fmt.Sprintf("Late%d_%d", w, b), pcl.QualityGood, at),
					dqmObs(392699, fmt.Sprintf("Open%d_%d", w, b), pcl.QualityGood, at)}
				added, err := s.AppendObservations(ctx, batch)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				for _, o := range added {
					if o.Run == 392669 {
						stored++
					}
				}
				mu.Unlock()
			}
		})
	}
	go func() {
		halfway.Wait()
		for range 100 {
			got, err := s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: old.Add(90 * 24 * time.Hour), Now: old.Add(91 * 24 * time.Hour)})
			if err != nil {
				compDone <- err
				return
			}
			for _, r := range got {
				if r == 392669 {
					compDone <- nil
					return
				}
			}
		}
		compDone <- fmt.Errorf("run 392669 not compacted in 100 passes")
	}()
	wg.Wait()
	must(t, "compaction during the appends", <-compDone)
	c, err := s.Compaction(ctx, 392669)
	must(t, "compaction", err)
	if n := countObs(t, s, 392669); n != 0 {
		t.Errorf("run 392669 keeps %d raw observations: an append slipped past the compaction", n)
	}
	if c.Observations != initial+stored {
		t.Errorf("the summary counts %d observations; %d were stored before it and %d appended and returned", c.Observations, initial, stored)
	}
	if c.Observations+c.LateObservations != initial+writers*batches {
		t.Errorf("summarised %d + late %d, want every one of the %d facts once", c.Observations, c.LateObservations, initial+writers*batches)
	}
}
