package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/apperr"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/storetest"
)

const crashRuns = 40

var crashReleased = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// TestRetentionCrash: a process killed (SIGKILL) in the middle of compacting leaves every run either
// compacted whole (summary written, observations gone) or untouched; a later pass finishes the work
// and the summaries count every observation once.
func TestRetentionCrash(t *testing.T) {
	if path := os.Getenv("SPYAGENCY_RETENTION_CHILD"); path != "" {
		crashChild(path)
		return
	}
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spy.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]int{}
	for i := range crashRuns {
		run := uint32(500001 + i)
		obs := benchObservations(60, i*60)
		for j := range obs {
			obs[j].Run = run
		}
		added, err := s.AppendObservations(ctx, obs)
		if err != nil {
			t.Fatal(err)
		}
		want[run] = len(added)
		stop := crashReleased.Add(-time.Hour)
		d := pcl.Decision{Run: run, Version: 1, State: pcl.ReadinessReleased, Releasable: true, Decided: crashReleased}
		if _, err := s.SaveDecision(ctx, store.DecisionWrite{Decision: d,
			State: pcl.RunState{Run: run, Info: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop}, Decision: d}}); err != nil {
			t.Fatal(err)
		}
	}
	// The newest row belongs to an open run, so that no released run holds the largest rowid.
	last := benchObservations(1, 999999)
	last[0].Run = 600000
	if _, err := s.AppendObservations(ctx, last); err != nil {
		t.Fatal(err)
	}
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run", "^TestRetentionCrash$")
	cmd.Env = append(os.Environ(), "SPYAGENCY_RETENTION_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	seen := 0
	for sc.Scan() {
		if seen++; seen == crashRuns/3 {
			break
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if seen < crashRuns/3 {
		t.Fatalf("the child compacted %d runs before it ended", seen)
	}

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(final bool) {
		for run, n := range want {
			obs, err := s.Observations(ctx, store.ObservationQuery{Runs: []uint32{run}})
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.Compaction(ctx, run)
			switch {
			case apperr.CodeOf(err) == apperr.NotFound:
				if final || len(obs) != n {
					t.Errorf("run %d not compacted with %d of its %d observations (final pass %t)", run, len(obs), n, final)
				}
			case err != nil:
				t.Fatal(err)
			case len(obs) != 0 || c.Observations != n:
				t.Errorf("run %d compacted with %d observations left and %d summarised, of %d", run, len(obs), c.Observations, n)
			}
		}
	}
	check(false)
	for {
		got, err := s.CompactReleased(ctx, store.CompactQuery{ReleasedBefore: crashReleased.Add(time.Hour), Now: crashReleased.Add(2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
	}
	check(true)
}

// crashChild compacts one run a call, printing a line after each, until it is killed.
func crashChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	storetest.CompactUntilKilled(ctx, s, crashReleased)
}
