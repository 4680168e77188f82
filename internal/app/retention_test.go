package app

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// TestRetentionPass: the app's retention pass compacts the runs released longer ago than
// store.retention, a batch at a time until none is left, and leaves the rest; with retention off the
// loop does nothing and returns.
func TestRetentionPass(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	cfg := config.Default()
	cfg.Store.DSN = "sqlite:" + filepath.Join(t.TempDir(), "spy.db")
	a, err := New(t.Context(), Options{Config: cfg, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := t.Context()
	// More old releases than one store call takes, one recent release, and a last observation of an
	// open run.
	const old = retentionBatch + 3
	runs := make([]uint32, 0, old+1)
	for i := range old + 1 {
		run := uint32(400001 + i)
		runs = append(runs, run)
		released := now.Add(-cfg.Store.Retention - 24*time.Hour)
		if i == old {
			released = now.Add(-time.Hour)
		}
		stop := released.Add(-48 * time.Hour)
		info := &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions26", LastUpdate: stop}
		if _, err := a.Store.AppendObservations(ctx, []pcl.Observation{
			{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: run, At: stop, RunInfo: info},
			{Source: pcl.SourceTier0, Kind: pcl.KindRelease, Run: run, At: released, Dataset: "ZeroBias"},
		}); err != nil {
			t.Fatal(err)
		}
		d := pcl.Decision{Run: run, Version: 1, State: pcl.ReadinessReleased, Releasable: true, Decided: released}
		if _, err := a.Store.SaveDecision(ctx, store.DecisionWrite{Decision: d,
			State: pcl.RunState{Run: run, Class: "Collisions26", Info: info, Decision: d}}); err != nil {
			t.Fatal(err)
		}
	}
	stop := now.Add(-time.Hour)
	if _, err := a.Store.AppendObservations(ctx, []pcl.Observation{{Source: pcl.SourceOMS, Kind: pcl.KindRun, Run: 400100, At: now,
		RunInfo: &pcl.RunInfo{Start: stop, Class: "Collisions26", LastUpdate: now}}}); err != nil {
		t.Fatal(err)
	}

	if n := a.retainPass(ctx, cfg.Store.Retention); n != old {
		t.Fatalf("pass compacted %d runs, want the %d released more than %s ago", n, old, cfg.Store.Retention)
	}
	for i, run := range runs {
		_, err := a.Store.Compaction(ctx, run)
		switch {
		case i < old && err != nil:
			t.Errorf("run %d released long ago: %v", run, err)
		case i == old && apperr.CodeOf(err) != apperr.NotFound:
			t.Errorf("run %d released an hour ago: compaction %v, want NotFound", run, err)
		}
	}
	if n := a.retainPass(ctx, cfg.Store.Retention); n != 0 {
		t.Errorf("a second pass compacted %d runs", n)
	}

	a.o.Config.Store.Retention = 0
	done := make(chan struct{})
	go func() { a.retain(ctx); close(done) }()
	<-done // off: returns without waiting on the clock
}
