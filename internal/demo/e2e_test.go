package demo

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cms-pcl/spyagency/internal/clock"
	"github.com/cms-pcl/spyagency/internal/pcl"
	"github.com/cms-pcl/spyagency/internal/sim"
)

// stepped builds a demo driven in simulated time: the simulator's services and the agency's HTTP API on
// loopback, the agency reaching the simulator only through its spies.
func stepped(t *testing.T, faults string, seed uint64) *Demo {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	clk := clock.NewFake(sim.DefaultStart)
	d, err := New(ctx, Options{DataDir: t.TempDir(), Seed: seed, Faults: faults, Clock: clk, Stepped: true, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.ServeSim(ctx) }()
	agency := httptest.NewServer(d.App.Handler)
	d.SetAgencyURL(agency.URL)
	t.Cleanup(func() {
		agency.Close()
		cancel()
		<-served
		d.Close()
	})
	return d
}

// TestEndToEndSafety runs the whole loop for three simulated days with the default faults. Every run that
// stopped on the first day must reach a final readiness, and no run may be released by the simulated
// Tier-0 (on the agency's word) before every calibration it needs is in the condition DB, unless its
// deadline passed under the release-on-timeout policy.
func TestEndToEndSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("three simulated days")
	}
	t.Parallel()
	d := stepped(t, "default", 7)
	ctx := t.Context()
	start := sim.DefaultStart
	end := start.Add(72 * time.Hour)
	for now := start.Add(5 * time.Minute); !now.After(end); now = now.Add(5 * time.Minute) {
		if err := d.Step(ctx, now); err != nil {
			t.Fatalf("step at %s: %v", now, err)
		}
	}
	policy := pcl.DefaultPolicy()
	checked := 0
	for _, r := range d.Sim.Runs() {
		if r.Stop.IsZero() || r.Stop.After(start.Add(24*time.Hour)) {
			continue
		}
		rs, err := d.App.Store.RunState(ctx, r.Number)
		if err != nil {
			t.Errorf("run %d (%s, stopped %s) unknown to the agency: %v", r.Number, r.Class, r.Stop.Format("Jan 2 15:04"), err)
			continue
		}
		checked++
		switch rs.Decision.State {
		case pcl.ReadinessReleased, pcl.ReadinessTimedOut, pcl.ReadinessReady:
		default:
			t.Errorf("run %d (%s, stopped %s) is still %s after two days: %s", r.Number, r.Class, r.Stop.Format("Jan 2 15:04"), rs.Decision.State, rs.Decision.Reason)
		}
	}
	if checked < 5 {
		t.Fatalf("only %d runs stopped on the first day", checked)
	}
	releases := 0
	for _, rel := range d.Sim.Releases() {
		if !rel.ByAgency {
			t.Errorf("run %d released by the fixed delay: the agency was unreachable", rel.Run)
			continue
		}
		releases++
		truth, _ := d.Sim.Truth(rel.Run)
		for _, v := range CheckRelease(truth, rel, policy) {
			t.Error(v)
		}
	}
	if releases == 0 {
		t.Fatal("the agency released nothing in three days")
	}
	t.Logf("%d runs of the first day checked, %d releases on the agency's word", checked, releases)
}
