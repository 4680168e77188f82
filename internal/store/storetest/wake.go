package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

func wakeTests() []subtest {
	return []subtest{{"NextWake", testNextWake}}
}

// testNextWake: the earliest wake-up of any run, whatever its decision; zero once no run has one.
func testNextWake(t *testing.T, s store.Store) {
	ctx := context.Background()
	next, err := s.NextWake(ctx)
	must(t, "empty store", err)
	if !next.IsZero() {
		t.Fatalf("next wake of an empty store = %s, want zero", next)
	}
	t0 := epoch().Add(50 * time.Hour)
	must(t, "no wake", s.PutRunState(ctx, stateOf(392669, "Cosmics25", pcl.ReadinessReady, time.Time{})))
	if next, err = s.NextWake(ctx); err != nil || !next.IsZero() {
		t.Fatalf("next wake with no run waking = %s (err %v), want zero", next, err)
	}
	must(t, "later", s.PutRunState(ctx, stateOf(392670, "Collisions25", pcl.ReadinessWaiting, t0.Add(2*time.Hour))))
	must(t, "earlier", s.PutRunState(ctx, stateOf(392671, "Collisions25", pcl.ReadinessWaiting, t0.Add(time.Hour+time.Microsecond))))
	w := decisionWrite(392672, 1, pcl.ReadinessWaiting, "tier0")
	w.State.NextWake = t0.Add(3 * time.Hour)
	saveAt(t, s, w, t0)
	if next, err = s.NextWake(ctx); err != nil || !next.Equal(t0.Add(time.Hour+time.Microsecond)) {
		t.Fatalf("next wake = %s (err %v), want %s", next, err, t0.Add(time.Hour+time.Microsecond))
	}
	// The earliest run is reconciled and needs no wake-up any more: the next one counts.
	must(t, "woken", s.PutRunState(ctx, stateOf(392671, "Collisions25", pcl.ReadinessWaiting, time.Time{})))
	if next, err = s.NextWake(ctx); err != nil || !next.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("next wake after the earliest was cleared = %s (err %v), want %s", next, err, t0.Add(2*time.Hour))
	}
}
