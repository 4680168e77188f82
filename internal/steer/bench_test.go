package steer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/store"
)

// BenchmarkFirstUnreadyRunFromStore measures one Tier-0 poll of first_unready_run against a store holding
// a year of runs (3000, each with a state of 18 workflows): the snapshot read and decode dominate.
func BenchmarkFirstUnreadyRunFromStore(b *testing.B) {
	clk := clock.NewFake(t0)
	st := openStoreB(b, clk)
	ctx := context.Background()
	workflows := make([]pcl.WorkflowStatus, 18)
	for i := range workflows {
		workflows[i] = pcl.WorkflowStatus{Name: "Workflow" + string(rune('A'+i)), State: pcl.StateInDB, Required: true, Flags: []pcl.Flag{}}
	}
	for run := uint32(380000); run < 383000; run++ {
		d := pcl.Decision{Run: run, State: pcl.ReadinessReady, Releasable: true, Version: 1, Decided: t0, Blocking: []string{}}
		if run == 382990 {
			d.State, d.Releasable = pcl.ReadinessWaiting, false
		}
		if _, err := st.SaveDecision(ctx, store.DecisionWrite{Decision: d,
			State: pcl.RunState{Run: run, Class: "Collisions25", Workflows: workflows, Decision: d}}); err != nil {
			b.Fatal(err)
		}
	}
	_, first := PullHandlers(StoreSource{Store: st}, pcl.DefaultPolicy())
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		first(rec, httptest.NewRequest(http.MethodGet, "/t0/v1/first_unready_run", nil))
		if rec.Code != 200 || rec.Body.String() != "{\"result\": [\n 382990\n]}\n" {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
