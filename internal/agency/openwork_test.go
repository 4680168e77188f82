package agency

import (
	"context"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
	"github.com/cms-pcl/spyagency/internal/store/sqlite"
)

// noHistoryScan is a store on which reading run states by query fails the test: start-up must read
// the open runs, not page through every stored run.
type noHistoryScan struct {
	store.Store
	t *testing.T
}

func (s noHistoryScan) RunStates(ctx context.Context, q store.RunQuery) ([]pcl.RunState, error) {
	s.t.Errorf("RunStates(%+v) read: the agency paged through the stored runs", q)
	return s.Store.RunStates(ctx, q)
}

// storeReleased stores runs from..from+n-1 as released, started 4 hours apart and the last 15 days
// before t0 (out of the lookback), each with a state of every catalogue workflow.
func storeReleased(t testing.TB, st *sqlite.Store, from uint32, n int) {
	t.Helper()
	var wfs []pcl.WorkflowStatus
	for _, w := range pcl.DefaultCatalogue().Workflows() {
		wfs = append(wfs, pcl.WorkflowStatus{Name: w.Name, State: pcl.StateInDB, Quality: pcl.QualityGood, Required: true,
			Flags: []pcl.Flag{}, Updated: t0, Deadline: t0,
			Files:  []string{"Run" + w.Name + "@" + w.Inputs[0].Tag + "@3f9c0001-1b2a-4c3d-9e8f-000000000001.db"},
			Hashes: []string{hash}})
	}
	for i := range n {
		r := from + uint32(i)
		start := t0.Add(-15*24*time.Hour - time.Duration(n-1-i)*4*time.Hour)
		stop := start.Add(40 * time.Minute)
		d := pcl.Decision{Run: r, State: pcl.ReadinessReleased, Releasable: true, Version: 1, Blocking: []string{}}
		rs := pcl.RunState{Run: r, Class: "Collisions25", Decision: d,
			Info:      &pcl.RunInfo{Start: start, Stop: &stop, Class: "Collisions25"},
			Workflows: wfs}
		if _, err := st.SaveDecision(context.Background(), store.DecisionWrite{Decision: d, State: rs}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStartupReadsOpenRunsOnly: a restart over a released history reads the open runs from the store's
// open run states, and finds the same open runs.
func TestStartupReadsOpenRunsOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	storeReleased(t, h.st, 380000, 50)
	h.ingest(pcl.SourceOMS, stoppedRun())
	if open := h.ag.OpenRuns(); len(open) != 1 || open[0] != run {
		t.Fatalf("open runs %v, want [%d]", open, run)
	}
	ag, err := New(h.ctx, Options{Store: noHistoryScan{Store: h.st, t: t}, Catalogue: pcl.DefaultCatalogue(), Policy: onlyGains(), Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	if open := ag.OpenRuns(); len(open) != 1 || open[0] != run {
		t.Errorf("open runs after a restart: %v, want [%d]", open, run)
	}
}

// TestFactOfAReleasedRunKeepsItsState: the agency no longer loads released history, so a fact about a
// released run it has not met since start-up must not make it write a placeholder over the run's state.
func TestFactOfAReleasedRunKeepsItsState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const old = 380007
	storeReleased(t, h.st, 380000, 10)
	h.open() // a restart: the released runs are not loaded
	o := stoppedRun()
	o.Run = old
	info := *o.RunInfo
	info.Start, info.LastUpdate = t0.Add(-30*24*time.Hour), t0
	o.RunInfo = &info
	o.Seen = h.clk.Now()
	if err := h.ag.Ingest(h.ctx, pcl.SourceOMS, []pcl.Observation{o}); err != nil {
		t.Fatal(err)
	}
	rs, err := h.st.RunState(h.ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Workflows) == 0 || rs.Decision.State != pcl.ReadinessReleased || rs.Decision.Version != 1 {
		t.Errorf("released run %d after a new fact: %+v; a placeholder was written over it", old, rs)
	}
	if len(h.ag.OpenRuns()) != 0 {
		t.Errorf("open runs %v: a released run older than the lookback was reopened", h.ag.OpenRuns())
	}
}

// BenchmarkStartup measures building the agency (its load from the store) over an empty store and over
// 20 open runs after a year (2,000) and ten years (20,000) of released runs, each with a state of every
// catalogue workflow (docs/benchmarks.md).
func BenchmarkStartup(b *testing.B) {
	for _, c := range []struct {
		name     string
		released int
	}{{"empty", 0}, {"year", 2000}, {"decade", 20000}} {
		b.Run(c.name, func(b *testing.B) {
			st, err := sqlite.Open(b.Context(), b.TempDir()+"/spy.db", sqlite.Options{Now: func() time.Time { return t0 }})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			clk := clock.NewFake(t0)
			storeReleased(b, st, 300000, c.released)
			if c.released > 0 {
				for i := range 20 {
					ag, err := New(b.Context(), Options{Store: st, Catalogue: pcl.DefaultCatalogue(), Policy: onlyGains(), Clock: clk})
					if err != nil {
						b.Fatal(err)
					}
					o := stoppedRun()
					o.Run, o.Seen = 400000+uint32(i), t0
					if err := ag.Ingest(b.Context(), pcl.SourceOMS, []pcl.Observation{o}); err != nil {
						b.Fatal(err)
					}
				}
			}
			for b.Loop() {
				if _, err := New(b.Context(), Options{Store: st, Catalogue: pcl.DefaultCatalogue(), Policy: onlyGains(), Clock: clk}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
