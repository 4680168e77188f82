package steer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// storeHistory writes released runs of history (each with a state of 18 workflows, as the agency
// stores them) and then open runs after them: one waiting, the others ready and not yet released.
// It returns the first unready run.
func storeHistory(b *testing.B, st store.Store, released, open int) uint32 {
	b.Helper()
	ctx := context.Background()
	workflows := make([]pcl.WorkflowStatus, 18)
	for i := range workflows {
		workflows[i] = pcl.WorkflowStatus{Name: "Workflow" + string(rune('A'+i)), State: pcl.StateInDB, Required: true, Flags: []pcl.Flag{}}
	}
	first := uint32(0)
	for i := range released + open {
		run := uint32(300000 + i)
		d := pcl.Decision{Run: run, State: pcl.ReadinessReleased, Releasable: true, Version: 1, Decided: t0, Blocking: []string{}}
		switch {
		case i == released+open/2:
			d.State, d.Releasable, first = pcl.ReadinessWaiting, false, run
		case i >= released:
			d.State = pcl.ReadinessReady
		}
		stop := t0.Add(time.Duration(i) * 4 * time.Hour)
		if _, err := st.SaveDecision(ctx, store.DecisionWrite{Decision: d,
			State: pcl.RunState{Run: run, Class: "Collisions25", Workflows: workflows, Decision: d,
				Info: &pcl.RunInfo{Start: stop.Add(-time.Hour), Stop: &stop, Class: "Collisions25"}}}); err != nil {
			b.Fatal(err)
		}
	}
	return first
}

// reportLatency reports the median and the 99th percentile of the iterations' times.
func reportLatency(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	if len(took) == 0 {
		return
	}
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkFirstUnreadyRunHistory measures one Tier-0 poll of first_unready_run against an empty store
// and against a store holding 20 open runs after a year (2,000) and ten years (20,000) of released
// runs: the cost must follow the open work, not the history (docs/benchmarks.md).
func BenchmarkFirstUnreadyRunHistory(b *testing.B) {
	for _, c := range []struct {
		name           string
		released, open int
	}{{"empty", 0, 0}, {"open=20", 0, 20}, {"year+open=20", 2000, 20}, {"decade+open=20", 20000, 20}} {
		b.Run(c.name, func(b *testing.B) {
			st := openStoreB(b, clock.NewFake(t0))
			want := storeHistory(b, st, c.released, c.open)
			if want == 0 {
				want = 1
			}
			_, first := PullHandlers(StoreSource{Store: st}, pcl.DefaultPolicy())
			wantBody := fmt.Sprintf("{\"result\": [\n %d\n]}\n", want)
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				rec := httptest.NewRecorder()
				first(rec, httptest.NewRequest(http.MethodGet, "/t0/v1/first_unready_run", nil))
				took = append(took, time.Since(start))
				if rec.Code != 200 || rec.Body.String() != wantBody {
					b.Fatalf("%d %s, want %s", rec.Code, rec.Body, wantBody)
				}
			}
			reportLatency(b, took)
		})
	}
}
